//! The `prism` binary end to end: edits, adapters, and every kind of bad input answered with one
//! clear line, a non-zero exit, no panic and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prism_engine::fixtures::{synthetic_photo, write_tiny_model_dir};
use prism_engine::imageio::{Picture, png_text_chunks, save_picture};
use prism_engine::tensorfile::{RawTensor, TensorFile};

struct Setup {
    dir: tempfile::TempDir,
    model: PathBuf,
    photo: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    write_tiny_model_dir(&model, 31).unwrap();
    let photo = dir.path().join("photo.png");
    let picture = Picture { rgb: synthetic_photo(48, 40, 3), alpha: None, sixteen_bit: false };
    save_picture(&photo, &picture, &[]).unwrap();
    Setup { dir, model, photo }
}

fn prism(setup: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(args)
        .env("PRISM_HOME", setup.dir.path().join("home"))
        .env("PRISM_MODEL", &setup.model)
        .output()
        .unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Fails with exactly one `error:` line and no panic.
fn assert_clean_failure(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected failure, got success: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].to_lowercase().contains(&expected.to_lowercase()), "expected '{expected}' in: {stderr}");
}

#[test]
fn edit_writes_a_png_that_records_the_edit() {
    let setup = setup();
    let out = setup.dir.path().join("out.png");
    let output = prism(&setup, &["edit", s(&setup.photo), "--tool", "tone", "-o", s(&out)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let chunks = png_text_chunks(&out).unwrap();
    let get = |k: &str| chunks.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("prism:tool"), "tone");
    assert_eq!(get("prism:backend"), "reference");
    assert_eq!(get("prism:precision"), "int8");
    assert_eq!(get("prism:strength"), "1");
    assert_eq!(get("prism:adapters"), r#"[["tone",1.0]]"#);
    assert_eq!(get("prism:version"), env!("CARGO_PKG_VERSION"));
    assert!(get("prism:model").len() == 16 && get("prism:profile").len() == 16);

    // A blend and a masked local edit, through the float reference.
    let mask = setup.dir.path().join("mask.png");
    let mut m = prism_engine::imageio::RgbImage::new(48, 40);
    for y in 10..20 {
        for x in 10..30 {
            m.data[(y * 48 + x) * 3..(y * 48 + x) * 3 + 3].fill(1.0);
        }
    }
    save_picture(&mask, &Picture { rgb: m, alpha: None, sixteen_bit: false }, &[]).unwrap();
    let blended = setup.dir.path().join("blend.webp");
    let output = prism(
        &setup,
        &["edit", s(&setup.photo), "--mix", "tone=0.5,fill=0.5", "--mask", s(&mask), "--precision", "float", "-o", s(&blended)],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(blended.exists());
}

#[test]
fn a_prompt_chooses_tools_by_meaning_and_the_file_records_it() {
    let setup = setup();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let out = setup.dir.path().join("prompted.png");
    let run = |prompt: &str, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["edit", s(&setup.photo), "--prompt", prompt, "-o", s(out)])
            .env("PRISM_HOME", setup.dir.path().join("home"))
            .env("PRISM_MODEL", &shipped)
            .output()
            .unwrap()
    };
    let output = run("get rid of the grain", &out);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("chose Denoise"));
    let chunks = png_text_chunks(&out).unwrap();
    let get = |k: &str| chunks.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("prism:tool"), "denoise");
    assert_eq!(get("prism:prompt"), "get rid of the grain");
    let history: Vec<prism_engine::record::EditRecord> = serde_json::from_str(&get("prism:history")).unwrap();
    let prompt = history[0].prompt.as_ref().expect("the prompt is in the history");
    assert_eq!(prompt.chosen[0].0, "denoise");

    let nothing = setup.dir.path().join("nothing.png");
    assert_clean_failure(&run("order a pizza", &nothing), "no tool fits");
    assert_clean_failure(&run("   ", &nothing), "type what you want");
    assert!(!nothing.exists());
    // A model folder without the encoder says so.
    assert_clean_failure(
        &prism(&setup, &["edit", s(&setup.photo), "--prompt", "remove the noise", "-o", s(&nothing)]),
        "no prompt encoder",
    );
}

#[test]
fn bad_inputs_fail_with_one_clear_line_and_write_nothing() {
    let setup = setup();
    let d = setup.dir.path();
    let out = d.join("result.png");

    assert_clean_failure(&prism(&setup, &["edit", s(&d.join("missing.png")), "--tool", "tone", "-o", s(&out)]), "no such file");

    let png_bytes = std::fs::read(&setup.photo).unwrap();
    let truncated_png = d.join("truncated.png");
    std::fs::write(&truncated_png, &png_bytes[..png_bytes.len() / 2]).unwrap();
    assert_clean_failure(&prism(&setup, &["edit", s(&truncated_png), "--tool", "tone", "-o", s(&out)]), "truncated.png");

    let mut jpeg = Vec::new();
    let rgb: Vec<u8> = synthetic_photo(64, 64, 1).data.iter().map(|v| (v * 255.0) as u8).collect();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode(&rgb, 64, 64, image::ExtendedColorType::Rgb8).unwrap();
    let truncated_jpeg = d.join("truncated.jpg");
    std::fs::write(&truncated_jpeg, &jpeg[..jpeg.len() / 3]).unwrap();
    assert_clean_failure(&prism(&setup, &["edit", s(&truncated_jpeg), "--tool", "tone", "-o", s(&out)]), "truncated.jpg");

    let bomb = d.join("bomb.png");
    std::fs::write(&bomb, png_header_only(60000, 60000)).unwrap();
    assert_clean_failure(&prism(&setup, &["edit", s(&bomb), "--tool", "tone", "-o", s(&out)]), "60000x60000");

    assert_clean_failure(&prism(&setup, &["edit", s(&setup.photo), "--tool", "nope", "-o", s(&out)]), "no tool named 'nope'");
    assert_clean_failure(&prism(&setup, &["edit", s(&setup.photo), "--tool", "fill", "-o", s(&out)]), "paint");
    assert_clean_failure(&prism(&setup, &["edit", s(&setup.photo), "--tool", "tone", "-o", s(&d.join("x.gif"))]), "extension");

    let before = std::fs::read(&setup.photo).unwrap();
    assert_clean_failure(&prism(&setup, &["edit", s(&setup.photo), "--tool", "tone", "-o", s(&setup.photo)]), "input");
    assert_eq!(std::fs::read(&setup.photo).unwrap(), before, "the input was touched");

    let no_model = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["edit", s(&setup.photo), "--tool", "tone", "--model", s(&d.join("empty")), "-o", s(&out)])
        .output()
        .unwrap();
    assert_clean_failure(&no_model, "no model installed");

    assert!(!out.exists(), "a failed command wrote its output");
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());
}

/// A PNG whose header claims `w x h` pixels followed by an empty image stream.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.finalize().to_be_bytes());
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn adapters_are_listed_inspected_and_garbage_is_refused() {
    let setup = setup();
    let d = setup.dir.path();
    let list = prism(&setup, &["adapters", "list"]);
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success() && stdout.contains("fill") && stdout.contains("tone"), "{stdout}");

    let inspect = prism(&setup, &["adapters", "inspect", s(&setup.model.join("adapters/fill.prism-lora"))]);
    let stdout = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success() && stdout.contains("fits model"), "{stdout}");

    // Bad header length.
    let bad_header = d.join("bad-header.prism-lora");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(&bad_header, bytes).unwrap();
    assert_clean_failure(&prism(&setup, &["adapters", "install", s(&bad_header)]), "not a valid safetensors");

    // Huge declared sizes: a header promising far more data than the file has.
    let huge = d.join("huge.prism-lora");
    let header = br#"{"stem.lora_A":{"dtype":"I8","shape":[1000000,1000000],"data_offsets":[0,1000000000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    std::fs::write(&huge, bytes).unwrap();
    assert_clean_failure(&prism(&setup, &["adapters", "install", s(&huge)]), "not a valid safetensors");

    // NaN values in an otherwise valid float adapter.
    let good = TensorFile::read(&setup.model.join("adapters/tone.prism-lora")).unwrap();
    let mut nan = TensorFile { metadata: good.metadata.clone(), ..Default::default() };
    nan.metadata.insert("precision".into(), "float".into());
    for (name, raw) in &good.tensors {
        let mut values = vec![0.01f32; raw.element_count()];
        values[0] = f32::NAN;
        nan.tensors.insert(name.clone(), RawTensor::from_f32(raw.shape.clone(), &values));
    }
    let nan_path = d.join("nan.prism-lora");
    nan.write(&nan_path).unwrap();
    assert_clean_failure(&prism(&setup, &["adapters", "install", s(&nan_path)]), "NaN");

    // An adapter quantized for another profile.
    let mut other = TensorFile::read(&setup.model.join("adapters/fill.prism-lora")).unwrap();
    other.metadata.insert("profile".into(), "ffffffffffffffff".into());
    let other_path = d.join("other.prism-lora");
    other.write(&other_path).unwrap();
    assert_clean_failure(&prism(&setup, &["adapters", "install", s(&other_path)]), "profile ffffffffffffffff");

    assert!(
        !d.join("home").join("adapters").exists()
            || std::fs::read_dir(d.join("home/adapters"))
                .unwrap()
                .all(|e| { std::fs::read_dir(e.unwrap().path()).unwrap().next().is_none() })
    );

    // A float version installs, converted, and is then listed.
    let mut float = good.clone();
    float.metadata.insert("name".into(), "tone2".into());
    float.metadata.insert("precision".into(), "float".into());
    for raw in float.tensors.values_mut() {
        *raw = RawTensor::from_f32(raw.shape.clone(), &vec![0.01; raw.element_count()]);
    }
    let float_path = d.join("tone2.prism-lora");
    float.write(&float_path).unwrap();
    let install = prism(&setup, &["adapters", "install", s(&float_path)]);
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    assert!(String::from_utf8_lossy(&prism(&setup, &["adapters", "list"]).stdout).contains("tone2"));
}

/// `prism edit --backend ort` on Linux through ONNX Runtime's CPU provider (the runtime from the
/// `onnxruntime` wheel), and `prism export-onnx` writing the graph it runs.
#[cfg(feature = "ort")]
#[test]
fn edit_runs_on_onnx_runtime_and_export_onnx_writes_the_graph() {
    let ready = Command::new("python3").args(["-c", "import onnxruntime"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        assert!(std::env::var_os("PRISM_REQUIRE_ORT").is_none(), "python3 cannot import onnxruntime");
        eprintln!("skipped: no onnxruntime");
        return;
    }
    let setup = setup();
    let out = setup.dir.path().join("out.png");
    let output = prism(
        &setup,
        &["edit", s(&setup.photo), "--tool", "tone", "--backend", "ort", "--model", s(&setup.model), "-o", s(&out)],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ONNX Runtime (CPU execution provider"), "{stderr}");
    let record = png_text_chunks(&out).unwrap();
    assert!(record.iter().any(|(k, v)| k == "prism:backend" && v == "ort"), "{record:?}");

    // A provider asked for by name: the CPU one runs and is recorded with the device; QNN is not
    // in the PyPI wheel's build and is refused with what it does offer, nothing written.
    let cpu = setup.dir.path().join("cpu.png");
    let edit_on = |provider: &str, out: &Path| {
        let args = ["edit", s(&setup.photo), "--tool", "tone", "--backend", "ort", "--provider", provider, "-o", s(out)];
        prism(&setup, &args)
    };
    let output = edit_on("cpu", &cpu);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let record = png_text_chunks(&cpu).unwrap();
    assert!(record.iter().any(|(k, v)| k == "prism:device" && v.contains("CPU execution provider")), "{record:?}");
    let qnn = setup.dir.path().join("qnn.png");
    assert_clean_failure(&edit_on("qnn", &qnn), "without the qnn provider (QNNExecutionProvider); it offers: cpu");
    assert!(!qnn.exists());
    let not_ort = prism(&setup, &["edit", s(&setup.photo), "--tool", "tone", "--provider", "qnn", "-o", s(&qnn)]);
    assert_clean_failure(&not_ort, "add --backend ort");

    let graph = setup.dir.path().join("model.onnx");
    let output = prism(&setup, &["export-onnx", "-o", s(&graph), "--model", s(&setup.model)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(std::fs::metadata(&graph).unwrap().len() > 1000);
    // Never over an existing file without --overwrite.
    let again = prism(&setup, &["export-onnx", "-o", s(&graph), "--model", s(&setup.model)]);
    assert_clean_failure(&again, "already exists");
}

#[test]
fn a_tools_setting_is_used_recorded_and_checked() {
    let setup = setup();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let out = setup.dir.path().join("bright.png");
    let edit = |tool: &str, flag: &str, value: &str, out: &Path| {
        prism(&setup, &["edit", s(&setup.photo), "--model", s(&shipped), "--tool", tool, flag, value, "-o", s(out)])
    };
    let output = edit("lowlight", "--exposure", "2.5", &out);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let chunks = png_text_chunks(&out).unwrap();
    let get = |k: &str| chunks.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get("prism:exposure").as_deref(), Some("2.50"));
    assert_eq!(get("prism:blur_size"), None, "lowlight takes no blur size");

    let sharp = setup.dir.path().join("sharp.png");
    let output = edit("sharpen", "--blur-size", "2", &sharp);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let chunks = png_text_chunks(&sharp).unwrap();
    assert!(chunks.iter().any(|(k, v)| k == "prism:blur_size" && v == "2.00"), "{chunks:?}");

    let refused = setup.dir.path().join("refused.png");
    assert_clean_failure(&edit("lowlight", "--exposure", "20", &refused), "exposure (stops) 20 is outside");
    assert_clean_failure(&edit("denoise", "--texture", "3", &refused), "texture 3 is outside 0..2");
    assert!(!refused.exists());
}

/// `PRISM_CPU_KERNEL` forces the CPU's int8 kernels; the edit says which ran and, with no
/// precision given, runs the faster one: int8 on a SIMD path, float on the portable one.
#[test]
fn the_cpu_kernel_path_can_be_forced_and_is_reported() {
    let setup = setup();
    let run = |kernel: &str| {
        let out = setup.dir.path().join(format!("out-{kernel}.png"));
        let output = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["edit", s(&setup.photo), "--tool", "tone", "--backend", "reference", "-o", s(&out)])
            .env("PRISM_HOME", setup.dir.path().join("home"))
            .env("PRISM_MODEL", &setup.model)
            .env("PRISM_CPU_KERNEL", kernel)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{kernel}: {stderr}");
        stderr
    };
    let portable = run("portable");
    assert!(portable.contains("int8 portable") && portable.contains("[float]"), "{portable}");
    let detected = prism_engine::int8::KernelPath::detect();
    if detected.beats_float() {
        let fast = run(detected.name());
        assert!(fast.contains(detected.describe()) && fast.contains("[int8]"), "{fast}");
    }
}

/// `prism doctor` names the software adapter, finds ONNX Runtime or says why not (both ways),
/// names the CPU kernels, and exits non-zero when no model loads.
#[test]
fn doctor_reports_the_machine_and_exits_by_whether_an_edit_can_run() {
    let setup = setup();
    let doctor = |envs: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prism"));
        command.arg("doctor").env("PRISM_HOME", setup.dir.path().join("home")).env("PRISM_MODEL", &setup.model);
        for (key, value) in envs {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let output = doctor(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("An edit can run") && stdout.contains(prism_engine::int8::KernelPath::detect().describe()),
        "{stdout}"
    );
    if std::env::var_os("PRISM_REQUIRE_WGPU").is_some() {
        assert!(stdout.contains("llvmpipe") && stdout.contains("software"), "lavapipe is a software adapter: {stdout}");
    }
    if std::env::var_os("PRISM_REQUIRE_ORT").is_some() {
        assert!(stdout.contains("found:") && stdout.contains("onnxruntime"), "{stdout}");
    }
    let missing_ort = doctor(&[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")]);
    let stdout = String::from_utf8_lossy(&missing_ort.stdout);
    assert!(missing_ort.status.success(), "no ONNX Runtime still leaves the CPU: {stdout}");
    assert!(stdout.contains("not usable") && stdout.contains("/nonexistent"), "{stdout}");

    let empty = setup.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let no_model = doctor(&[("PRISM_MODEL", empty.to_str().unwrap())]);
    assert_clean_failure(&no_model, "no edit can run");
}

/// `prism demo --json` runs every shipped tool, each round in turn, on the reference backend and
/// (when ONNX Runtime is there) on ort, with a switch, a forward and the resident memory each.
#[test]
fn demo_runs_every_tool_on_each_backend_and_reports_json() {
    let setup = setup();
    let demo = |backend: &str| {
        let output = prism(&setup, &["demo", "--json", "--rounds", "2", "--backend", backend, "--image", s(&setup.photo)]);
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{backend}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let mut backends = vec!["reference"];
    let has_ort = Command::new("python3").args(["-c", "import onnxruntime"]).output().is_ok_and(|o| o.status.success());
    if cfg!(feature = "ort") && (has_ort || std::env::var_os("PRISM_REQUIRE_ORT").is_some()) {
        backends.push("ort");
    }
    for backend in backends {
        let report = demo(backend);
        assert_eq!(report["backend"], backend);
        let summary = report["summary"].as_array().unwrap();
        let tools: Vec<_> = summary.iter().map(|row| row["tool"].as_str().unwrap()).collect();
        assert_eq!(tools, ["fill", "tone"], "{backend}: every shipped tool once in the summary");
        assert_eq!(report["runs"].as_array().unwrap().len(), 4, "two rounds of two tools");
        for row in summary {
            assert!(row["forward_ms"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["switch_ms"].as_f64().unwrap() >= 0.0, "{row}");
            assert!(row["resident_bytes"].as_u64().unwrap() > row["adapter_bytes"].as_u64().unwrap(), "{row}");
        }
        assert!(!report["device"].as_str().unwrap().is_empty());
    }
    let none = prism(&setup, &["demo", "--rounds", "0"]);
    assert_clean_failure(&none, "--rounds must be at least 1");
}
