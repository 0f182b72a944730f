//! The ONNX export checked by an independent runtime: the shipped model is exported once, and
//! Python's `onnxruntime` runs it with two different adapters' int8 tensors fed into the same
//! session. The outputs differ, and each matches Prism's reference backend. CI installs
//! onnxruntime from PyPI and sets `PRISM_REQUIRE_ORT=1`, so a missing runtime fails there.

use std::path::{Path, PathBuf};
use std::process::Command;

use prism_engine::adapter::Adapter;
use prism_engine::backends::{Backend, Precision, Provider, ReferenceBackend};
use prism_engine::imageio::{Mask, load_picture};
use prism_engine::job::model_input;
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use serde_json::json;

fn python() -> Option<String> {
    let python = std::env::var("PRISM_PYTHON").unwrap_or_else(|_| "python3".into());
    let ready = Command::new(&python).args(["-c", "import onnxruntime, numpy"]).output().is_ok_and(|o| o.status.success());
    if ready {
        return Some(python);
    }
    assert!(
        std::env::var_os("PRISM_REQUIRE_ORT").is_none(),
        "{python} cannot import onnxruntime and numpy (pip install onnxruntime)"
    );
    eprintln!("skipped: {python} has no onnxruntime (pip install onnxruntime)");
    None
}

fn write_raw(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).expect("write");
    path.to_path_buf()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// NHWC `[h, w, c]` to NCHW.
fn to_nchw(values: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[(ch * h + y) * w + x] = values[(y * w + x) * c + ch];
            }
        }
    }
    out
}

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    // The residual spans [-1, 1]: peak-to-peak 2.
    10.0 * (4.0 / mse.max(1e-30)).log10()
}

#[test]
fn onnx_runtime_runs_the_export_with_two_adapters_fed_into_one_session() {
    let Some(python) = python() else { return };
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let model = Model::load(&assets).expect("shipped model");
    let dir = tempfile::tempdir().expect("temp dir");
    let rank = model.config().max_rank;
    let onnx = dir.path().join("prism.onnx");
    std::fs::write(&onnx, prism_engine::onnx::export(&model, Precision::Int8, rank).expect("export")).expect("write");

    let photo = load_picture(&assets.join("samples/coffee.jpg"), 1 << 26).expect("sample").rgb;
    let (w, h) = (96, 64);
    let crop = photo.crop_clamped(240, 120, w, h);
    let input = model_input(&crop, &Mask::filled(w, h, 1.0), None).expect("input");
    let nhwc = input.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
    let image = write_raw(&dir.path().join("image.bin"), &f32_bytes(&to_nchw(&nhwc, h, w, 4)));

    let tools = ["denoise", "lowlight"];
    let mut reference = ReferenceBackend::quantsim(model.clone());
    let mut runs = Vec::new();
    for tool in tools {
        let adapter = Adapter::read(&assets.join("adapters").join(format!("{tool}.prism-lora"))).expect("adapter");
        reference
            .install(&model.read_adapter(&assets.join("adapters").join(format!("{tool}.prism-lora"))).expect("read"))
            .expect("install");
        let r = adapter.meta.rank;
        let mut tensors = Vec::new();
        for (layer, lora) in &adapter.layers {
            let (a, b) = lora.codes.clone().expect("an int8 adapter has codes");
            let grid = model.profile.lora[layer];
            let (cout, cin, k) = (lora.b_shape[0], lora.a_shape[1], lora.a_shape[2]);
            // Pad to the export's rank with rows whose value is zero (the grid's zero point).
            let mut a_padded = a.clone();
            a_padded.resize(rank * cin * k * k, grid.a.zero_point as i8);
            let mut b_padded = Vec::with_capacity(cout * rank);
            for row in b.chunks(r) {
                b_padded.extend_from_slice(row);
                b_padded.extend(std::iter::repeat_n(grid.b.zero_point as i8, rank - r));
            }
            let as_bytes = |v: &[i8]| v.iter().map(|x| *x as u8).collect::<Vec<u8>>();
            let a_file = write_raw(&dir.path().join(format!("{tool}.{layer}.A.bin")), &as_bytes(&a_padded));
            let b_file = write_raw(&dir.path().join(format!("{tool}.{layer}.B.bin")), &as_bytes(&b_padded));
            tensors.push(json!({"name": format!("{layer}.lora_A"), "file": a_file, "shape": [rank, cin, k, k], "dtype": "int8"}));
            tensors
                .push(json!({"name": format!("{layer}.lora_B"), "file": b_file, "shape": [cout, rank, 1, 1], "dtype": "int8"}));
        }
        let output = dir.path().join(format!("{tool}.out.bin"));
        runs.push(json!({"name": tool, "alpha": adapter.meta.alpha, "tensors": tensors, "output": output}));
    }
    let manifest = json!({
        "model": onnx,
        "image": {"file": image, "shape": [1, 4, h, w], "dtype": "float32"},
        "runs": runs,
    });
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_run.py");
    let out = Command::new(&python).arg(&script).arg(&manifest_path).output().expect("run python");
    assert!(out.status.success(), "onnx_run.py failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());

    let mut outputs = Vec::new();
    let mut worst = f64::INFINITY;
    for tool in tools {
        let bytes = std::fs::read(dir.path().join(format!("{tool}.out.bin"))).expect("output");
        let got: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        reference.bind(&Mix::single(tool), 1.0, Precision::Int8).expect("bind");
        let expected = reference.forward(&input).and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?)).expect("forward");
        let expected = to_nchw(&expected, h, w, 3);
        let agreement = psnr(&expected, &got);
        eprintln!("{tool}: ONNX Runtime vs Prism's reference backend {agreement:.1} dB");
        assert!(agreement >= 40.0, "{tool}: {agreement:.1} dB");
        worst = worst.min(agreement);
        outputs.push(got);
    }
    // The two tools' outputs are far further apart than either is from the reference.
    let between = psnr(&outputs[0], &outputs[1]);
    assert!(between < worst - 20.0, "the two adapters' outputs are only {between:.1} dB apart (agreement {worst:.1} dB)");
}

#[cfg(feature = "ort")]
mod ort_backend {
    use super::*;
    use prism_engine::backends::ort::OrtBackend;

    /// The ort backend (ONNX Runtime from the Python wheel, CPU provider) against the reference
    /// backend, switching between two tools on one session.
    #[test]
    fn the_ort_backend_matches_the_reference_and_switches_without_a_rebuild() {
        if python().is_none() {
            return;
        }
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
        let model = Model::load(&assets).expect("shipped model");
        let mut ort = OrtBackend::new(model.clone(), Provider::Cpu).expect("ONNX Runtime starts");
        assert!(ort.device().contains("CPU execution provider"), "{}", ort.device());
        let mut reference = ReferenceBackend::quantsim(model.clone());
        for tool in ["denoise", "lowlight"] {
            let adapter = model.read_adapter(&assets.join("adapters").join(format!("{tool}.prism-lora"))).expect("read");
            ort.install(&adapter).expect("install on ort");
            reference.install(&adapter).expect("install on reference");
        }
        let photo = load_picture(&assets.join("samples/astronaut.jpg"), 1 << 26).expect("sample").rgb;
        let input = model_input(&photo.crop_clamped(100, 100, 64, 64), &Mask::filled(64, 64, 1.0), None).expect("input");
        let values = |t: candle_core::Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
        for tool in ["denoise", "lowlight", "denoise"] {
            let mix = Mix::single(tool);
            let start = std::time::Instant::now();
            ort.bind(&mix, 1.0, Precision::Int8).expect("bind");
            let switch = start.elapsed();
            reference.bind(&mix, 1.0, Precision::Int8).expect("bind");
            let agreement =
                psnr(&values(reference.forward(&input).expect("reference")), &values(ort.forward(&input).expect("ort")));
            eprintln!("{tool} on ort: {agreement:.1} dB against the reference, switch {:?}", switch);
            assert!(agreement >= 40.0, "{tool}: {agreement:.1} dB");
        }
        let error = ort
            .bind(&Mix::new([("denoise", 0.5), ("lowlight", 0.5)]).unwrap(), 1.0, Precision::Int8)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("one adapter at a time")));
    }

    /// The adapter a prompt makes (the look tool) goes through the same session as any other.
    #[test]
    fn an_adapter_made_from_a_prompt_runs_on_ort_as_on_the_reference() {
        if python().is_none() {
            return;
        }
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
        let model = Model::load(&assets).expect("shipped model");
        let looks = prism_text::look::LookMaker::load(&assets).expect("look files").expect("the shipped model has a look tool");
        let encoder = prism_text::SentenceEncoder::load(&assets).expect("encoder");
        let mut ort = OrtBackend::new(model.clone(), Provider::Cpu).expect("ONNX Runtime starts");
        let mut reference = ReferenceBackend::quantsim(model.clone());
        let photo = load_picture(&assets.join("samples/astronaut.jpg"), 1 << 26).expect("sample").rgb;
        let input = model_input(&photo.crop_clamped(100, 100, 64, 64), &Mask::filled(64, 64, 1.0), None).expect("input");
        let values = |t: candle_core::Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
        for prompt in ["golden hour light", "faded film with more contrast"] {
            let mut made = looks.make(&encoder.encode(prompt).expect("encode")).expect("make");
            made.meta.name = prompt.replace(' ', "-");
            ort.install(&made).expect("install on ort");
            reference.install(&made).expect("install on reference");
            let mix = Mix::single(made.meta.name.clone());
            ort.bind(&mix, 1.0, Precision::Int8).expect("bind");
            reference.bind(&mix, 1.0, Precision::Int8).expect("bind");
            let agreement =
                psnr(&values(reference.forward(&input).expect("reference")), &values(ort.forward(&input).expect("ort")));
            eprintln!("\"{prompt}\" on ort: {agreement:.1} dB against the reference");
            assert!(agreement >= 40.0, "{prompt}: {agreement:.1} dB");
        }
    }
}
