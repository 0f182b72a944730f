//! The editor driven through egui_kittest, by accessible labels, on the shipped model: rendering
//! goes through wgpu (lavapipe in CI). Photos are small crops so every edit takes a moment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui::{self, Key, Modifiers, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use prism::editor::{EditorOptions, PrismApp};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("assets")
}

/// A 160x120 crop of a shipped sample, written as a PNG.
fn small_photo(dir: &Path) -> PathBuf {
    let photo = image::open(assets().join("samples").join("coffee.jpg")).expect("shipped sample").to_rgb8();
    let crop = image::imageops::crop_imm(&photo, 200, 120, 160, 120).to_image();
    let path = dir.join("cup.png");
    crop.save(&path).expect("write the test photo");
    path
}

fn editor(image: Option<PathBuf>, config: &Path) -> Harness<'static, PrismApp> {
    let options = EditorOptions { image, model_dir: assets(), config_dir: Some(config.to_path_buf()) };
    Harness::builder().with_size(egui::vec2(1100.0, 720.0)).wgpu().build_eframe(move |cc| PrismApp::new(&cc.egui_ctx, options))
}

/// Steps the UI until `done` holds (the engine and loader answer from other threads).
fn wait_for(harness: &mut Harness<'_, PrismApp>, what: &str, done: impl Fn(&PrismApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; notices: {:?}", harness.state().notices);
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
}

/// The tools in `assets/adapters/` (colorize is left out: the model card says why).
const SHIPPED_TOOLS: usize = 6;

fn ready(harness: &mut Harness<'_, PrismApp>) {
    wait_for(harness, "the photo and the shipped tools", |app| {
        app.document.is_some() && app.tools.len() == SHIPPED_TOOLS && !app.is_loading()
    });
}

fn canvas_point(harness: &Harness<'_, PrismApp>, fx: f32, fy: f32) -> Pos2 {
    // Where image fraction (fx, fy) is on screen: the canvas fits the image, centred.
    let rect = harness.get_by_label("Canvas").rect();
    let app = harness.state();
    let image = app.document.as_ref().expect("a document").image();
    let zoom = (rect.width() / image.width as f32).min(rect.height() / image.height as f32) * 0.96;
    rect.center() + egui::vec2((fx - 0.5) * image.width as f32 * zoom, (fy - 0.5) * image.height as f32 * zoom)
}

fn drag(harness: &mut Harness<'_, PrismApp>, points: &[Pos2]) {
    harness.hover_at(points[0]);
    harness.step();
    harness.drag_at(points[0]);
    harness.step();
    for p in &points[1..] {
        harness.hover_at(*p);
        harness.step();
    }
    harness.drop_at(*points.last().expect("a point"));
    harness.step();
    harness.step();
}

/// Clicks the widget labelled `label`, giving a window or menu that is opening a few frames.
fn click(harness: &mut Harness<'_, PrismApp>, label: &str) {
    for _ in 0..20 {
        if harness.query_by_label(label).is_some() {
            break;
        }
        harness.step();
    }
    harness.get_by_label(label).click();
    harness.step();
    harness.step();
}

fn mean_abs_difference(a: &[f32], b: &[f32], pixels: impl Iterator<Item = usize>) -> f32 {
    let (mut sum, mut n) = (0.0, 0);
    for p in pixels {
        for c in 0..3 {
            sum += (a[p * 3 + c] - b[p * 3 + c]).abs();
        }
        n += 3;
    }
    sum / n.max(1) as f32
}

#[test]
fn paint_run_undo_switch_and_lightbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let mut harness = editor(Some(photo), &dir.path().join("config"));
    ready(&mut harness);

    // ] and [ size the brush.
    let radius = harness.state().settings.brush_radius;
    harness.key_press(Key::CloseBracket);
    harness.step();
    assert!(harness.state().settings.brush_radius > radius);
    harness.key_press(Key::OpenBracket);
    harness.step();
    assert!((harness.state().settings.brush_radius - radius).abs() < 1e-3);

    // Pick the object-removal tool and paint a stroke across the middle of the photo.
    click(&mut harness, "Remove object");
    assert_eq!(harness.state().tool.mix, vec![("remove".to_string(), 1.0)]);
    let stroke: Vec<Pos2> = (0..=6).map(|i| canvas_point(&harness, 0.35 + 0.05 * i as f32, 0.5)).collect();
    drag(&mut harness, &stroke);
    let (original, mask) = {
        let doc = harness.state().document.as_ref().expect("document");
        assert_eq!(doc.steps().last().map(|s| s.label.as_str()), Some("Brush stroke"));
        (doc.image().clone(), doc.mask.clone())
    };
    let painted: Vec<usize> = (0..mask.data.len()).filter(|&p| mask.data[p] == 255).collect();
    assert!(painted.len() > 500, "the stroke painted {} pixels", painted.len());
    // Far from the stroke: more than 12 pixels from any painted pixel (feathering reaches 3).
    let far: Vec<usize> = (0..mask.data.len())
        .filter(|&p| {
            let (x, y) = ((p % mask.width) as i64, (p / mask.width) as i64);
            painted.iter().all(|&q| ((q % mask.width) as i64 - x).abs() > 12 || ((q / mask.width) as i64 - y).abs() > 12)
        })
        .collect();
    assert!(far.len() > 5000);

    click(&mut harness, "Run");
    assert!(harness.state().is_busy());
    wait_for(&mut harness, "the removal", |app| !app.is_busy());
    let edited = harness.state().document.as_ref().expect("document").image().clone();
    let inside = mean_abs_difference(&edited.data, &original.data, painted.iter().copied());
    let outside = mean_abs_difference(&edited.data, &original.data, far.iter().copied());
    assert!(inside > 0.01, "pixels under the mask changed: {inside}");
    assert_eq!(outside, 0.0, "pixels away from the mask stay exactly as they were");
    let steps = harness.state().document.as_ref().expect("document").steps().len();
    assert_eq!(steps, 3);

    // Undo restores the photo; the mask stays for another try.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    harness.step();
    let doc = harness.state().document.as_ref().expect("document");
    assert_eq!(doc.image().data, original.data);
    assert!(!doc.mask.is_empty());

    // Switch to another tool and run again: a new edit step replaces the undone one.
    click(&mut harness, "Denoise");
    click(&mut harness, "Run");
    wait_for(&mut harness, "the denoise", |app| !app.is_busy());
    let doc = harness.state().document.as_ref().expect("document");
    assert_eq!(doc.steps().len(), 3);
    assert_eq!(doc.steps()[2].record.as_ref().map(|r| r.adapters.parts()[0].0.as_str()), Some("denoise"));
    assert!(mean_abs_difference(&doc.image().data, &original.data, painted.iter().copied()) > 0.0);
    assert_eq!(mean_abs_difference(&doc.image().data, &original.data, far.iter().copied()), 0.0);
    let switch_shown = harness.query_by_label_contains("Switch ").is_some();
    assert!(switch_shown, "the status bar reports switch and forward times");

    // The lightbox: baseline plus the ticked tools; number keys flip between them.
    click(&mut harness, "Lightbox");
    click(&mut harness, "Run lightbox");
    wait_for(&mut harness, "the lightbox", |app| {
        !app.is_busy()
            && app.lightbox.as_ref().is_some_and(|l| l.entries.len() > 2 && l.entries.iter().all(|e| e.result.is_some()))
    });
    let entries = harness.state().lightbox.as_ref().map(|l| l.entries.len()).unwrap_or(0);
    assert_eq!(entries, 1 + 4, "baseline + the four same-size global tools");
    harness.key_press(Key::Num2);
    harness.step();
    assert_eq!(harness.state().lightbox.as_ref().map(|l| l.selected), Some(2));
    let lightbox = harness.state().lightbox.as_ref().expect("lightbox");
    let (base, two) =
        (lightbox.entries[0].result.clone().expect("baseline"), lightbox.entries[2].result.clone().expect("result"));
    assert_ne!(base.data, two.data, "an adapter changes the base model's output");

    // Removal variants (how much context the model sees around the hole) and a typed request,
    // side by side; the request waits for the prompt encoder, then runs.
    {
        let lightbox = harness.state_mut().lightbox.as_mut().expect("lightbox");
        lightbox.chosen = ["remove".to_string()].into_iter().collect();
        lightbox.prompts = "make it warmer".into();
    }
    click(&mut harness, "Run lightbox");
    wait_for(&mut harness, "the removal variants and the request", |app| {
        !app.is_busy()
            && app.lightbox.as_ref().is_some_and(|l| l.entries.len() == 7 && l.entries.iter().all(|e| e.result.is_some()))
    });
    // The shipped model fills from a smooth guess and takes the surroundings' texture: three
    // contexts, then none of the texture and twice it, then the request.
    let lightbox = harness.state().lightbox.as_ref().expect("lightbox");
    let labels: Vec<&str> = lightbox.entries.iter().map(|e| e.label.as_str()).collect();
    assert!(labels[1].contains("tight context") && labels[3].contains("wide context"), "{labels:?}");
    assert!(labels[4].contains("smooth fill") && labels[5].contains("texture ×2"), "{labels:?}");
    assert!(labels[6].contains("make it warmer") && labels[6].contains("Describe a look"), "{labels:?}");
    let result = |i: usize| lightbox.entries[i].result.clone().expect("result");
    assert_ne!(result(1).data, result(3).data, "more context gives the model more to fill from");
    assert_ne!(result(4).data, result(5).data, "the fill's texture follows the setting");
    assert!(lightbox.entries[6].prompt.is_some(), "the request's entry keeps the request");
}

#[test]
fn a_bad_adapter_file_gets_a_plain_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("broken.prism-lora");
    std::fs::write(&bad, b"this is not a safetensors file").expect("write");
    // Installed adapters go under PRISM_HOME; keep them out of the user's folder.
    let mut harness = editor(None, &dir.path().join("config"));
    wait_for(&mut harness, "the tools", |app| app.tools.len() == SHIPPED_TOOLS);
    click(&mut harness, "Adapters");
    click(&mut harness, "Adapter manager…");
    click(&mut harness, "Adapter file");
    harness.get_by_label("Adapter file").type_text(&bad.display().to_string());
    harness.step();
    click(&mut harness, "Install");
    let error = harness.state().notices.iter().find(|n| n.error).map(|n| n.text.clone()).unwrap_or_default();
    assert!(error.contains("was not installed"), "{error}");
    assert!(harness.query_by_label_contains("was not installed").is_some(), "the error is on screen");
    assert_eq!(harness.state().tools.len(), SHIPPED_TOOLS, "nothing was installed");
}

#[test]
fn a_killed_session_is_offered_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let config = dir.path().join("config");
    {
        let mut harness = editor(Some(photo), &config);
        ready(&mut harness);
        harness.key_press(Key::R);
        harness.step();
        let corners = [canvas_point(&harness, 0.2, 0.2), canvas_point(&harness, 0.6, 0.7)];
        drag(&mut harness, &corners);
        let steps = harness.state().document.as_ref().map(|d| d.steps().len());
        assert_eq!(steps, Some(2));
        let manifest = config.join("autosave").join("document.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("Rectangle")) {
            assert!(Instant::now() < deadline, "no autosave");
            harness.step();
            std::thread::sleep(Duration::from_millis(20));
        }
        // Dropped without on_exit: what a kill leaves behind.
    }
    let mut harness = editor(None, &config);
    harness.step();
    assert!(harness.query_by_label("Restore").is_some(), "the restart offers the autosaved document");
    click(&mut harness, "Restore");
    wait_for(&mut harness, "the restored document", |app| app.document.is_some());
    let doc = harness.state().document.as_ref().expect("document");
    assert_eq!(doc.steps().len(), 2);
    assert_eq!(doc.steps()[1].label, "Rectangle");
    assert!(doc.mask.coverage() > 0.1);
}

#[test]
fn a_typed_request_chooses_the_tools_runs_them_and_is_recorded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let mut harness = editor(Some(photo), &dir.path().join("config"));
    ready(&mut harness);
    let prompt = harness.get_by_label("Describe the edit");
    prompt.click();
    harness.step();
    harness.get_by_label("Describe the edit").type_text("get rid of the grain");
    harness.step();
    harness.key_press(Key::Enter);
    wait_for(&mut harness, "the prompted edit", |app| app.document.as_ref().is_some_and(|d| d.edit_records().len() == 1));
    let app = harness.state();
    assert_eq!(app.tool.mix, vec![("denoise".to_string(), 1.0)]);
    let records = app.document.as_ref().expect("document").edit_records();
    let recorded = records[0].prompt.as_ref().expect("the edit records the prompt");
    assert_eq!(recorded.text, "get rid of the grain");
    assert!(harness.query_all_by_label_contains("Chosen: Denoise").next().is_some(), "the choice is shown");

    // Nothing fits: said under the box, the tools stay as they were, nothing runs.
    harness.state_mut().tool.prompt = "order a pizza".into();
    harness.state_mut().act(prism::editor::Action::ApplyPrompt { run: true });
    harness.run_steps(3);
    assert!(harness.query_all_by_label_contains("no tool fits").next().is_some());
    assert_eq!(harness.state().tool.mix, vec![("denoise".to_string(), 1.0)]);
    assert_eq!(harness.state().document.as_ref().expect("document").edit_records().len(), 1);
}

#[test]
fn tools_offer_their_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let mut harness = editor(Some(photo), &dir.path().join("config"));
    ready(&mut harness);
    assert!(harness.query_by_label("Auto exposure").is_none(), "only tools that take an exposure show it");
    click(&mut harness, "Brighten low light");
    assert_eq!(harness.state().tool.exposure, None, "estimated unless the user sets it");
    click(&mut harness, "Auto exposure");
    harness.step();
    let set = harness.state().tool.exposure.expect("unticking auto sets the exposure by hand");
    assert!((0.0..=6.0).contains(&set), "it starts from the estimate: {set}");
    assert!(harness.query_all_by_label_contains("Exposure (stops)").next().is_some(), "the slider is shown");
    click(&mut harness, "Sharpen");
    assert!(harness.query_by_label("Auto exposure").is_none());
    assert_eq!(harness.state().tool.blur_size, None, "sharpen reads the blur from the photo unless the user sets it");
    click(&mut harness, "Auto blur size");
    harness.step();
    assert!(harness.state().tool.blur_size.is_some(), "unticking auto sets the blur size by hand");
    assert!(harness.query_all_by_label_contains("Blur size (px)").next().is_some(), "the slider is shown");
}

/// Puts a fixed name in the status bar's device field once the engine has stopped announcing
/// its backend (it does so at start and again after the settings' backend is applied, which
/// waits behind the float teachers' installs).
fn name_the_test_machine(harness: &mut Harness<'_, PrismApp>) {
    const NAME: &str = "CPU (the test machine)";
    wait_for(harness, "the float teachers", |app| app.teachers.len() >= app.tools.len());
    let mut quiet = 0;
    while quiet < 25 {
        if harness.state().status.device == NAME {
            quiet += 1;
        } else {
            harness.state_mut().status.device = NAME.into();
            quiet = 0;
        }
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lavapipe's generated code differs between CPUs: at a texel boundary the photo's nearest-texel
/// sampling can pick the neighbouring row (273 pixels of one row, seen between two machines).
/// A layout change moves thousands of pixels; these snapshots are of the layout.
fn layout_only() -> egui_kittest::SnapshotOptions {
    egui_kittest::SnapshotOptions::new().max_failed_pixels(400)
}

#[test]
fn layout_snapshots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let mut harness = editor(Some(photo), &dir.path().join("config"));
    ready(&mut harness);
    wait_for(&mut harness, "the engine's backend", |app| app.status.backend.is_some());
    // The status bar names the CPU kernels the int8 model runs on (on a machine without a GPU)...
    let status = &harness.state().status;
    if status.backend == Some(prism_engine::backends::BackendKind::Reference) {
        let path = prism_engine::int8::KernelPath::detect();
        assert!(status.device.contains(path.describe()), "{}", status.device);
    }
    // ...which differ between machines; the snapshots are of the layout.
    name_the_test_machine(&mut harness);
    harness.remove_cursor();
    harness.step();
    harness.snapshot_options("editor_with_photo", &layout_only());
    harness.event(egui::Event::Text("?".into()));
    // A new window sizes itself over a few frames.
    harness.run_steps(6);
    assert!(harness.state().show_shortcuts);
    name_the_test_machine(&mut harness);
    harness.snapshot_options("shortcut_sheet", &layout_only());
}

#[test]
fn quantized_against_float_and_saving_without_losing_the_original() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let original_bytes = std::fs::read(&photo).expect("read");
    let mut harness = editor(Some(photo.clone()), &dir.path().join("config"));
    ready(&mut harness);

    // The same denoise through the int8 model and through its float teacher.
    click(&mut harness, "Denoise");
    click(&mut harness, "Quantized vs float");
    wait_for(&mut harness, "both precisions", |app| {
        app.quantized.as_ref().is_some_and(|q| q.agreement.is_some() || q.error.is_some())
    });
    let view = harness.state().quantized.as_ref().expect("the comparison");
    assert!(view.error.is_none(), "{:?}", view.error);
    assert!(view.notes.is_empty(), "every shipped tool has a float teacher: {:?}", view.notes);
    let agreement = view.agreement.expect("measured");
    let psnr = agreement.psnr_outside.expect("whole image");
    assert!(agreement.psnr_inside.is_none(), "no mask painted: one region");
    assert!(psnr > 30.0 && psnr < 99.0, "int8 and float differ a little: {psnr:.1} dB");
    assert!(harness.query_by_label_contains("Whole image").is_some());
    assert_ne!(view.int8.as_ref().map(|i| i.data.clone()), view.float.as_ref().map(|i| i.data.clone()));

    click(&mut harness, "Run");
    wait_for(&mut harness, "the denoise", |app| !app.is_busy());

    // Saving over the opened photo asks first, and "Keep the original" keeps it.
    harness.state_mut().act(prism::editor::Action::Save);
    harness.run_steps(6);
    assert!(harness.query_by_label("Overwrite the original?").is_some(), "a confirmation is shown");
    assert_eq!(std::fs::read(&photo).expect("read"), original_bytes);
    click(&mut harness, "Keep the original");
    assert_eq!(std::fs::read(&photo).expect("read"), original_bytes);

    // Save as another file: the PNG records the edit.
    let copy = dir.path().join("cup-denoised.png");
    harness.state_mut().act(prism::editor::Action::SaveTo { path: copy.clone(), confirmed: false });
    harness.run_steps(2);
    let record = prism_engine::imageio::png_text_chunks(&copy).expect("written");
    let tool = record.iter().find(|(k, _)| k == "prism:tool").map(|(_, v)| v.as_str());
    assert_eq!(tool, Some("denoise"));
    assert!(record.iter().any(|(k, v)| k == "prism:history" && v.contains("Denoise")));

    // Overwriting after the explicit confirmation replaces the original.
    harness.state_mut().act(prism::editor::Action::Save);
    harness.run_steps(3);
    click(&mut harness, "Overwrite");
    assert_ne!(std::fs::read(&photo).expect("read"), original_bytes);
    assert!(harness.state().document.as_ref().is_some_and(|d| !d.has_unsaved_changes()));
}

/// The `prism:*` entries of a saved PNG, the history parsed and its timings zeroed (they are the
/// one thing two runs of the same edit do not share).
fn saved_record(path: &Path) -> (Vec<(String, String)>, Vec<prism_engine::record::EditRecord>) {
    let entries = prism_engine::imageio::png_text_chunks(path).expect("a PNG with text chunks");
    let history = entries.iter().find(|(k, _)| k == "prism:history").map(|(_, v)| v.clone()).expect("a history");
    let mut history: Vec<prism_engine::record::EditRecord> = serde_json::from_str(&history).expect("the history parses");
    for record in &mut history {
        (record.switch_ms, record.forward_ms, record.total_ms) = (0.0, 0.0, 0.0);
    }
    (entries.into_iter().filter(|(k, _)| k.starts_with("prism:") && k != "prism:history").collect(), history)
}

/// Picks `tool`, sets its setting, runs it (the edit becomes history step `edits`) and saves to
/// `path`.
fn run_and_save(
    harness: &mut Harness<'_, PrismApp>,
    tool: &str,
    set: impl FnOnce(&mut prism::editor::ToolChoice),
    edits: usize,
    path: &Path,
) {
    click(harness, tool);
    set(&mut harness.state_mut().tool);
    // A setting's slider can appear and move the Run button: let the layout settle first.
    harness.run_steps(2);
    click(harness, "Run");
    wait_for(harness, tool, |app| app.document.as_ref().is_some_and(|d| d.edit_records().len() == edits));
    harness.state_mut().act(prism::editor::Action::SaveTo { path: path.to_path_buf(), confirmed: false });
    harness.run_steps(2);
}

#[test]
fn saved_files_record_the_tools_settings_as_the_command_line_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = small_photo(dir.path());
    let mut harness = editor(Some(photo.clone()), &dir.path().join("config"));
    ready(&mut harness);

    // Low light at an exposure set by hand, then sharpen at a blur size set by hand.
    let after_lowlight = dir.path().join("editor-lowlight.png");
    run_and_save(&mut harness, "Brighten low light", |tool| tool.exposure = Some(1.5), 1, &after_lowlight);
    let after_both = dir.path().join("editor-both.png");
    run_and_save(&mut harness, "Sharpen", |tool| tool.blur_size = Some(2.0), 2, &after_both);

    let (entries, history) = saved_record(&after_lowlight);
    let get = |entries: &[(String, String)], key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(get(&entries, "prism:exposure").as_deref(), Some("1.50"), "{entries:?}");
    assert_eq!(history.last().and_then(|r| r.exposure), Some(1.5));
    let (both, both_history) = saved_record(&after_both);
    assert_eq!(get(&both, "prism:blur_size").as_deref(), Some("2.00"), "{both:?}");
    assert_eq!(get(&both, "prism:exposure"), None, "the last step was sharpen");
    let settings: Vec<(Option<f32>, Option<f32>)> = both_history.iter().map(|r| (r.exposure, r.blur_size)).collect();
    assert_eq!(settings, [(Some(1.5), None), (None, Some(2.0))], "the history keeps each step's setting");

    // The same low-light edit from the command line writes the same record and the same pixels.
    use clap::Parser;
    let from_cli = dir.path().join("cli-lowlight.png");
    let args = ["prism", "edit", photo.to_str().expect("utf-8 path"), "--tool", "lowlight", "--exposure", "1.5"];
    let args =
        prism::cli::Args::parse_from(args.into_iter().chain(["--backend", "auto", "-o", from_cli.to_str().expect("utf-8")]));
    prism::cli::run(args).expect("the CLI edit");
    let (cli_entries, cli_history) = saved_record(&from_cli);
    assert_eq!(cli_entries, entries, "the CLI and the editor record the same edit alike");
    assert_eq!(cli_history, history);
    let pixels = |path: &Path| image::open(path).expect("decode").to_rgb16().into_raw();
    assert_eq!(pixels(&from_cli), pixels(&after_lowlight), "and it is the same edit");
}

/// View → Demo with no photo open: the model's sample opens, every tool runs twice on it, and
/// the window fills in each tool's switch, forward time and memory; "Run again" starts afresh.
#[test]
fn the_demo_runs_every_tool_on_the_sample() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = editor(None, &dir.path().join("config"));
    wait_for(&mut harness, "the shipped tools", |app| app.tools.len() == SHIPPED_TOOLS);
    click(&mut harness, "View");
    click(&mut harness, "Demo: every tool in turn");
    wait_for(&mut harness, "the demo", |app| app.demo.as_ref().is_some_and(|d| d.finished()));
    let view = harness.state().demo.as_ref().expect("the demo");
    assert!(view.failures.is_empty(), "{:?}", view.failures);
    assert_eq!(view.runs.len(), 2 * SHIPPED_TOOLS, "every tool, two rounds");
    let report = view.report();
    assert!(report.photo.ends_with("coffee.jpg"), "{}", report.photo.display());
    assert_eq!(report.summary.len(), SHIPPED_TOOLS);
    for row in &report.summary {
        assert!(row.forward_ms > 0.0 && row.resident_bytes > row.adapter_bytes, "{row:?}");
        // Once in the tool list, once in the demo's table.
        assert!(harness.query_all_by_label(&row.title).count() >= 2, "{} is in the demo's table", row.title);
    }
    assert!(!report.device.is_empty());
    harness.run_steps(2);
    click(&mut harness, "Run again");
    let view = harness.state().demo.as_ref().expect("the demo");
    assert!(view.runs.len() < 14, "a new run starts from nothing");
}
