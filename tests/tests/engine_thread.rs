//! The engine thread: jobs, progress, cancellation, failures and panics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candle_core::Tensor;
use prism_engine::adapter::Adapter;
use prism_engine::backends::{AdapterInfo, Backend, BackendKind, MemoryReport, Precision, Provider, ReferenceBackend};
use prism_engine::engine::{Command, EngineHandle, Event};
use prism_engine::fixtures::{shapes_photo, synthetic_photo, write_tiny_model_dir};
use prism_engine::imageio::Mask;
use prism_engine::job::EditJob;
use prism_engine::mix::Mix;
use prism_engine::model::Model;

fn next_event(engine: &EngineHandle, wanted: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = engine.recv_timeout(Duration::from_secs(120)).expect("the engine answered");
        if wanted(&event) {
            return event;
        }
    }
}

fn is_final(event: &Event) -> bool {
    matches!(event, Event::Done { .. } | Event::Failed { .. } | Event::Cancelled { .. })
}

fn job(id: u64, width: usize, height: usize, mask: Option<Mask>, tool: &str) -> EditJob {
    EditJob {
        id,
        image: Arc::new(synthetic_photo(width, height, id)),
        mask: mask.map(Arc::new),
        mix: Mix::single(tool),
        strength: 1.0,
        precision: Some(Precision::Int8),
        exposure: None,
        blur_size: None,
        noise_level: None,
        context: prism_engine::job::DEFAULT_CONTEXT,
        texture: prism_engine::job::DEFAULT_TEXTURE,
    }
}

fn setup() -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny_model_dir(dir.path(), 21).unwrap();
    (dir, model)
}

#[test]
fn edits_change_the_mask_only_and_failures_keep_the_engine_serving() {
    let (dir, model) = setup();
    let bad = dir.path().join("bad.prism-lora");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    let adapters = [model.shipped_adapters(), vec![bad.clone()]].concat();
    let engine = EngineHandle::spawn(model, adapters, None).unwrap();
    let rejected = next_event(&engine, |e| matches!(e, Event::AdapterRejected { .. }));
    let Event::AdapterRejected { path, error } = rejected else { unreachable!() };
    assert_eq!(path, bad);
    assert!(error.contains("not a valid safetensors"), "{error}");

    // A local tool with no mask fails with a readable message...
    engine.send(Command::Edit(job(1, 40, 36, None, "fill"))).unwrap();
    match next_event(&engine, is_final) {
        Event::Failed { job: 1, error } => assert!(error.contains("paint"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    // ...and the engine serves the next job: a painted square changes, the rest does not.
    let mut mask = Mask::filled(40, 36, 0.0);
    for y in 10..20 {
        for x in 12..24 {
            mask.data[y * 40 + x] = 1.0;
        }
    }
    let edit = job(2, 40, 36, Some(mask.clone()), "fill");
    let original = edit.image.clone();
    engine.send(Command::Edit(edit)).unwrap();
    let Event::Done { job: 2, image, stats } = next_event(&engine, is_final) else { panic!("job 2 did not finish") };
    assert_eq!((image.width, image.height), (40, 36));
    let mut changed_inside = 0;
    for y in 0..36 {
        for x in 0..40 {
            let (a, b) = (original.pixel(x, y), image.pixel(x, y));
            if mask.at(x, y) <= prism_engine::job::HIDDEN {
                assert_eq!(a, b, "pixel ({x},{y}) outside the mask changed");
            } else if a != b {
                changed_inside += 1;
            }
        }
    }
    assert!(changed_inside > 100, "only {changed_inside} masked pixels changed");
    // A mask of the whole photo leaves nothing to fill from, and a mask of another size is not
    // this photo's: both are refused with the reason.
    engine.send(Command::Edit(job(41, 40, 36, Some(Mask::filled(40, 36, 1.0)), "fill"))).unwrap();
    match next_event(&engine, is_final) {
        Event::Failed { job: 41, error } => assert!(error.contains("whole photo"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    engine.send(Command::Edit(job(42, 40, 36, Some(Mask::filled(20, 36, 1.0)), "fill"))).unwrap();
    match next_event(&engine, is_final) {
        Event::Failed { job: 42, error } => assert!(error.contains("the mask is 20x36 but the image is 40x36"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    // Context around the hole outside what a job may ask for.
    let mut wide = job(43, 40, 36, Some(Mask::filled(40, 36, 0.0)), "fill");
    wide.context = 50.0;
    engine.send(Command::Edit(wide)).unwrap();
    match next_event(&engine, is_final) {
        Event::Failed { job: 43, error } => assert!(error.contains("context 50 is outside"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    // A texture that is no number, or more than a fill may take.
    for (id, texture) in [(44, f32::NAN), (45, 3.0)] {
        let mut textured = job(id, 40, 36, Some(Mask::filled(40, 36, 0.0)), "fill");
        textured.texture = texture;
        engine.send(Command::Edit(textured)).unwrap();
        match next_event(&engine, is_final) {
            Event::Failed { job, error } => {
                assert!(job == id && error.contains("texture") && error.contains("outside"), "{error}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    assert_eq!(stats.backend, BackendKind::Reference);
    assert_eq!(stats.memory.adapters, 2);

    // Unknown tool: a clear failure, then removal and a switch still work.
    engine.send(Command::Edit(job(3, 16, 16, None, "nope"))).unwrap();
    match next_event(&engine, is_final) {
        Event::Failed { job: 3, error } => assert!(error.contains("no tool named 'nope'"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    engine.send(Command::Edit(job(4, 20, 20, None, "tone"))).unwrap();
    assert!(matches!(next_event(&engine, is_final), Event::Done { job: 4, .. }));
    // ONNX Runtime (from the onnxruntime wheel in CI): the edit runs there; where the runtime is
    // missing the engine stays on the backend it had and says so.
    engine.send(Command::SetBackend(BackendKind::Ort, Provider::Auto)).unwrap();
    match next_event(&engine, |e| matches!(e, Event::BackendReady { .. } | Event::BackendUnavailable { .. })) {
        Event::BackendReady { backend, .. } => {
            assert_eq!(backend, BackendKind::Ort);
            engine.send(Command::Edit(job(6, 24, 24, None, "tone"))).unwrap();
            match next_event(&engine, is_final) {
                Event::Done { job: 6, stats, .. } => assert_eq!(stats.backend, BackendKind::Ort),
                other => panic!("expected the edit on ort, got {other:?}"),
            }
        }
        Event::BackendUnavailable { reason, .. } => {
            assert!(std::env::var_os("PRISM_REQUIRE_ORT").is_none(), "{reason}");
            assert!(reason.contains("staying on the reference backend"), "{reason}");
        }
        _ => unreachable!(),
    }
    // The wgpu backend (lavapipe in CI): the adapters move with it and the next edit runs there.
    engine.send(Command::SetBackend(BackendKind::Wgpu, Provider::Auto)).unwrap();
    match next_event(&engine, |e| matches!(e, Event::BackendReady { .. } | Event::BackendUnavailable { .. })) {
        Event::BackendReady { backend, .. } => {
            assert_eq!(backend, BackendKind::Wgpu);
            engine.send(Command::Edit(job(5, 20, 20, None, "tone"))).unwrap();
            match next_event(&engine, is_final) {
                Event::Done { job: 5, stats, .. } => assert_eq!((stats.backend, stats.memory.adapters), (BackendKind::Wgpu, 2)),
                other => panic!("expected the edit on wgpu, got {other:?}"),
            }
        }
        Event::BackendUnavailable { reason, .. } => {
            assert!(std::env::var_os("PRISM_REQUIRE_WGPU").is_none(), "{reason}");
            assert!(reason.contains("--backend reference"), "{reason}");
        }
        _ => unreachable!(),
    }
    engine.send(Command::RemoveAdapter("tone".into())).unwrap();
    assert!(matches!(next_event(&engine, |e| matches!(e, Event::AdapterRemoved { .. })), Event::AdapterRemoved { .. }));
}

#[test]
fn a_long_job_can_be_cancelled_and_reports_progress() {
    let (_dir, model) = setup();
    let engine = EngineHandle::spawn(model.clone(), model.shipped_adapters(), None).unwrap();
    // 1100 x 1100 is 9 tiles; cancel as soon as the first progress event arrives.
    engine.send(Command::Edit(job(7, 1100, 1100, None, "tone"))).unwrap();
    let Event::Progress { total, .. } = next_event(&engine, |e| matches!(e, Event::Progress { .. })) else { unreachable!() };
    assert_eq!(total, 9);
    // A second job queued behind it is cancelled before it starts; a third still runs.
    engine.send(Command::Edit(job(8, 32, 32, None, "tone"))).unwrap();
    engine.send(Command::Edit(job(9, 32, 32, None, "tone"))).unwrap();
    engine.send(Command::Cancel(8)).unwrap();
    engine.send(Command::Cancel(7)).unwrap();
    let mut finals = Vec::new();
    while finals.len() < 3 {
        match next_event(&engine, is_final) {
            Event::Cancelled { job } => finals.push((job, "cancelled")),
            Event::Done { job, .. } => finals.push((job, "done")),
            other => panic!("unexpected {other:?}"),
        }
    }
    finals.sort();
    assert_eq!(finals, vec![(7, "cancelled"), (8, "cancelled"), (9, "done")]);
}

/// A backend whose forward panics, standing in for a bug deep in a kernel.
struct PanickingBackend(ReferenceBackend);

impl Backend for PanickingBackend {
    fn kind(&self) -> BackendKind {
        self.0.kind()
    }
    fn device(&self) -> String {
        "panicking test device".into()
    }
    fn install(&mut self, adapter: &Adapter) -> prism_engine::Result<AdapterInfo> {
        self.0.install(adapter)
    }
    fn remove(&mut self, name: &str) -> bool {
        self.0.remove(name)
    }
    fn installed(&self) -> Vec<AdapterInfo> {
        self.0.installed()
    }
    fn bind(&mut self, mix: &Mix, strength: f32, precision: Precision) -> prism_engine::Result<()> {
        self.0.bind(mix, strength, precision)
    }
    fn forward(&mut self, input: &Tensor) -> prism_engine::Result<Tensor> {
        if input.dim(1)? > 16 {
            panic!("kernel blew up");
        }
        self.0.forward(input)
    }
    fn memory(&self) -> MemoryReport {
        self.0.memory()
    }
    fn config(&self) -> &prism_engine::unet::UnetConfig {
        self.0.config()
    }
}

#[test]
fn a_panicking_job_becomes_failed_and_the_engine_keeps_serving() {
    let (_dir, model) = setup();
    let backend = Box::new(PanickingBackend(ReferenceBackend::new(model.clone())));
    let adapters: Vec<PathBuf> = model.shipped_adapters();
    let engine = EngineHandle::spawn_with_backend(model, backend, adapters, None).unwrap();
    engine.send(Command::Edit(job(1, 64, 64, None, "tone"))).unwrap();
    match next_event(&engine, is_final) {
        Event::Failed { job: 1, error } => assert!(error.contains("kernel blew up"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    engine.send(Command::Edit(job(2, 16, 16, None, "tone"))).unwrap();
    assert!(matches!(next_event(&engine, is_final), Event::Done { job: 2, .. }));
}

/// A tool that takes a noise level sees the photo shrunk at it: at the level estimated from the
/// photo when the job gives none, at the job's otherwise; a level out of range is refused.
#[test]
fn a_noise_level_tool_sees_the_photo_shrunk_at_the_level() {
    use prism_engine::adapter::Region;
    use prism_engine::fixtures::random_adapter;
    use prism_engine::job::run_edit;
    use prism_engine::settings::ToolSetting;

    let (_dir, model) = setup();
    let mut backend = ReferenceBackend::new(model.clone());
    let mut grain = random_adapter(model.float().unwrap(), "grain", 4, 9, Region::Global).unwrap();
    grain.meta.setting = Some(ToolSetting::NoiseLevel);
    backend.install(&grain).unwrap();
    // Uniform noise of standard deviation 20 levels from a xorshift (what the median estimate reads
    // of it is close to a Gaussian's: each diagonal difference sums four values).
    let mut state = 0x9e37_79b9_u32;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32 - 0.5) * 2.0 * 3f32.sqrt() * 20.0 / 255.0
    };
    let clean = synthetic_photo(96, 64, 4);
    let noisy = prism_engine::imageio::RgbImage {
        data: clean.data.iter().map(|v| (v * 0.8 + 0.1 + noise()).clamp(0.0, 1.0)).collect(),
        ..clean.clone()
    };
    let mut job = EditJob { image: Arc::new(noisy), ..job(1, 96, 64, None, "grain") };
    let (estimated, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    let level = stats.noise_level.expect("the tool takes a noise level");
    assert!((level - 20.0).abs() < 3.0, "estimated {level} for noise of 20");
    job.noise_level = Some(0.0);
    let (unshrunk, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.noise_level, Some(0.0));
    assert!(estimated.data != unshrunk.data, "the level changes what the model sees");
    job.noise_level = Some(500.0);
    assert!(run_edit(&mut backend, &job, &mut |_, _| true).is_err(), "a level of 500 is refused");
    // Mixed with a tool that brightens first, the photo is shrunk and then brightened.
    let mut dark = random_adapter(model.float().unwrap(), "dark", 4, 10, Region::Global).unwrap();
    dark.meta.setting = Some(ToolSetting::Exposure);
    backend.install(&dark).unwrap();
    job.mix = Mix::new([("grain", 0.5), ("dark", 0.5)]).unwrap();
    job.exposure = Some(1.0);
    let outputs: Vec<_> = [0.0, 20.0]
        .into_iter()
        .map(|level| {
            job.noise_level = Some(level);
            let (out, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
            assert_eq!((stats.noise_level, stats.exposure), (Some(level), Some(1.0)));
            out.data
        })
        .collect();
    assert!(outputs[0] != outputs[1], "the brightened view is the shrunk photo's");
}

/// A deblurring tool sees the photo deconvolved: at the blur size read from the photo when the job
/// gives none, at the job's otherwise; a photo with too few edges to read the blur's shape is
/// unsharp-masked at the default instead; an unsharp-masking tool keeps its default; a size out of
/// range is refused.
#[test]
fn a_deblur_tool_sees_the_photo_deconvolved_at_the_size_read() {
    use prism_engine::adapter::Region;
    use prism_engine::deblur_prepass::{BlurShape, SharpenPass, read_blur};
    use prism_engine::fixtures::random_adapter;
    use prism_engine::job::run_edit;
    use prism_engine::settings::{DEFAULT_BLUR_SIZE, ToolSetting, gaussian_blur};

    let (_dir, model) = setup();
    let mut backend = ReferenceBackend::new(model.clone());
    let mut deblur = random_adapter(model.float().unwrap(), "deblur", 4, 11, Region::Global).unwrap();
    deblur.meta.setting = Some(ToolSetting::DeblurSize);
    backend.install(&deblur).unwrap();
    let mut soften = random_adapter(model.float().unwrap(), "soften", 4, 11, Region::Global).unwrap();
    soften.meta.setting = Some(ToolSetting::BlurSize);
    backend.install(&soften).unwrap();
    let small = gaussian_blur(&synthetic_photo(96, 64, 5), 2.0);
    assert_eq!(read_blur(&small).shape, BlurShape::Unread);
    let job_on = |image: prism_engine::imageio::RgbImage| {
        let (width, height) = (image.width, image.height);
        EditJob { image: Arc::new(image), ..job(1, width, height, None, "deblur") }
    };
    let (_, stats) = run_edit(&mut backend, &job_on(small), &mut |_, _| true).unwrap();
    assert_eq!(stats.sharpen, Some(SharpenPass::Unsharp(DEFAULT_BLUR_SIZE)));
    let blurred = gaussian_blur(&shapes_photo(480, 384), 2.0);
    let reading = read_blur(&blurred);
    assert_eq!(reading.shape, BlurShape::Even);
    let read = reading.size;
    let mut job = job_on(blurred);
    let (at_read, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.sharpen, Some(SharpenPass::Deconvolve(read)));
    job.blur_size = Some(read + 1.0);
    let (at_given, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.sharpen, Some(SharpenPass::Deconvolve(read + 1.0)));
    assert!(at_read.data != at_given.data, "the size changes what the model sees");
    // The same weights as an unsharp-masking tool: its default size, and another view.
    job.mix = Mix::single("soften");
    job.blur_size = None;
    let (unsharp_masked, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.sharpen, Some(SharpenPass::Unsharp(DEFAULT_BLUR_SIZE)));
    job.mix = Mix::single("deblur");
    job.blur_size = Some(DEFAULT_BLUR_SIZE);
    assert!(run_edit(&mut backend, &job, &mut |_, _| true).unwrap().0.data != unsharp_masked.data);
    job.blur_size = Some(9.0);
    assert!(run_edit(&mut backend, &job, &mut |_, _| true).is_err(), "a size of 9 px is refused");
}
