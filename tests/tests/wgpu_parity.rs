//! The wgpu backend against the reference backend (QuantSim), for random small models of odd
//! sizes, several ranks, blends and both swap modes, and for the shipped model on a real photo:
//! - layer by layer: every kernel, fed the reference's stored inputs, writes every element
//!   within one quantization step of the reference's value at that point;
//! - end to end: the residual agrees to a high PSNR (rounding flips of single elements travel
//!   through the following layers, so end to end is measured, not held to one step).
//!
//! CI runs these on lavapipe and sets `PRISM_REQUIRE_WGPU=1`, so a missing adapter fails there.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use prism_engine::adapter::{Region, ResidentAdapter, bind_mix};
use prism_engine::backends::gpu::{Gpu, SwapMode, WgpuBackend};
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::calibrate::build_profile;
use prism_engine::fixtures::{photo_input, random_adapter, random_model, synthetic_photo};
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use prism_engine::quant::{QuantSim, Recorder, StoredTensors};
use prism_engine::unet::UnetConfig;

/// The reference's stored tensors for `mix` on `input`, and its residual under `residual`.
fn reference_points(model: &Model, input: &Tensor, mix: &Mix, precision: Precision) -> StoredTensors {
    let adapters: Vec<ResidentAdapter> = mix
        .names()
        .map(|name| {
            let file = model.dir.join("adapters").join(format!("{name}.prism-lora"));
            ResidentAdapter::new(&model.read_adapter(&file).expect("read"), Some(&model.profile), &candle_core::Device::Cpu)
                .expect("resident")
        })
        .collect();
    let parts: Vec<(&ResidentAdapter, f32)> = adapters.iter().zip(mix.parts()).map(|(a, (_, w))| (a, *w)).collect();
    let set = bind_mix(&parts, STRENGTH, precision == Precision::Int8).expect("bind");
    let quantized = precision == Precision::Int8;
    let mut recorder = Recorder::new(quantized.then_some(QuantSim { profile: &model.profile }));
    let unet = if quantized { model.quantized().expect("the QuantSim model") } else { model.float().expect("the float base") };
    let residual = unet.forward(input, (!mix.is_empty()).then_some(&set), &mut recorder).expect("forward");
    recorder.values.insert("residual".into(), values(&residual));
    recorder.values
}

const STRENGTH: f32 = 0.8;

/// Every kernel of the bound model within one step of the reference at every stored point.
fn check_layerwise(model: &Model, gpu: &mut WgpuBackend, input: &Tensor, mix: &Mix, precision: Precision) {
    let reference = reference_points(model, input, mix, precision);
    gpu.bind(mix, STRENGTH, precision).expect("bind");
    let (_, h, w, _) = input.dims4().expect("4d");
    let report = gpu.layerwise_check(h, w, &values(input), &reference).expect("layerwise");
    assert!(report.len() > 10, "every op is checked: {report:?}");
    let worst =
        report.iter().fold(("", 0.0f32), |worst, (point, steps)| if *steps > worst.1 { (point.as_str(), *steps) } else { worst });
    let limit = if precision == Precision::Int8 { 1.0 } else { 1e-4 };
    assert!(worst.1 <= limit, "{mix:?} {precision:?}: '{}' is {} steps off (limit {limit})", worst.0, worst.1);
}

fn gpu() -> Option<Arc<Gpu>> {
    match Gpu::open(true) {
        Ok(gpu) => Some(Arc::new(gpu)),
        Err(error) => {
            assert!(std::env::var_os("PRISM_REQUIRE_WGPU").is_none(), "no wgpu adapter on a machine that must have one: {error}");
            eprintln!("skipped: {error}");
            None
        }
    }
}

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32 tensor")
}

/// Largest |a - b| and PSNR (on the [-1, 1] range of the residual).
fn compare(a: &[f32], b: &[f32]) -> (f32, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    let mse = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    (max, 10.0 * (4.0 / mse.max(1e-30)).log10())
}

fn random_model_dir(dir: &Path, channels: Vec<usize>, blocks: Vec<usize>, ranks: &[usize], bits: u32) -> Model {
    let config = UnetConfig::new(channels, blocks, 8).expect("config");
    let float = random_model(&config, 7).expect("model");
    let adapters: Vec<_> = ranks
        .iter()
        .enumerate()
        .map(|(i, rank)| random_adapter(&float, &format!("tool{i}"), *rank, 20 + i as u64, Region::Global).expect("adapter"))
        .collect();
    let samples: Vec<Tensor> = (0..2).map(|i| photo_input(&synthetic_photo(24, 40, 30 + i)).expect("input")).collect();
    let refs: Vec<_> = adapters.iter().collect();
    let profile = build_profile(&float, &samples, &refs, bits, "ptq-pooled").expect("profile");
    let model = Model::save(dir, &float, &profile).expect("model dir");
    std::fs::create_dir_all(dir.join("adapters")).expect("adapters dir");
    for adapter in &adapters {
        adapter
            .quantize(&profile)
            .expect("quantize")
            .write(&dir.join("adapters").join(format!("{}.prism-lora", adapter.meta.name)))
            .expect("write");
    }
    model
}

fn install_all(model: &Model, backend: &mut dyn Backend) {
    for file in model.shipped_adapters() {
        backend.install(&model.read_adapter(&file).expect("read")).expect("install");
    }
}

/// Runs `mix` on both backends and checks every element against the output step.
fn check(
    model: &Model,
    reference: &mut ReferenceBackend,
    gpu: &mut WgpuBackend,
    input: &Tensor,
    mix: &Mix,
    precision: Precision,
) -> (f32, f64) {
    reference.bind(mix, STRENGTH, precision).expect("bind reference");
    gpu.bind(mix, STRENGTH, precision).expect("bind wgpu");
    let expected = values(&reference.forward(input).expect("reference forward"));
    let got = values(&gpu.forward(input).expect("wgpu forward"));
    let (max, psnr) = compare(&expected, &got);
    let step = model.profile.activations["head.out"];
    let within =
        expected.iter().zip(&got).filter(|(a, b)| (*a - *b).abs() <= step * 1.001 + 1e-6).count() as f64 / expected.len() as f64;
    eprintln!(
        "{mix:?} {precision:?}: end to end max {:.1} output steps, {:.2}% within one step, {psnr:.1} dB",
        max / step,
        within * 100.0
    );
    (max, psnr)
}

#[test]
fn random_models_match_quantsim() {
    let Some(gpu) = gpu() else { return };
    for (case, (channels, blocks, ranks, bits, size)) in [
        (vec![6, 10], vec![1, 2], vec![3, 5], 16, (20, 28)),
        (vec![5, 7, 9], vec![1, 1, 1], vec![2, 8], 16, (24, 40)),
        (vec![8, 12], vec![2, 1], vec![4, 1], 8, (16, 24)),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let model = random_model_dir(dir.path(), channels, blocks, &ranks, bits);
        let mut reference = ReferenceBackend::quantsim(model.clone());
        let mut wgpu = WgpuBackend::on(gpu.clone(), model.clone()).expect("compile");
        install_all(&model, &mut reference);
        install_all(&model, &mut wgpu);
        let input = photo_input(&synthetic_photo(size.1, size.0, 40 + case as u64)).expect("input");
        let mixes =
            [Mix::none(), Mix::single("tool0"), Mix::single("tool1"), Mix::new([("tool0", 0.7), ("tool1", 0.4)]).expect("mix")];
        for precision in [Precision::Int8, Precision::Float] {
            for mix in &mixes {
                check_layerwise(&model, &mut wgpu, &input, mix, precision);
                let (_, psnr) = check(&model, &mut reference, &mut wgpu, &input, mix, precision);
                assert!(psnr >= 60.0, "case {case} {precision:?} {mix:?}: {psnr:.1} dB end to end");
            }
        }
        // The single-slot variant computes the same thing as rebinding.
        wgpu.bind(&mixes[1], 0.8, Precision::Int8).expect("bind");
        let rebound = values(&wgpu.forward(&input).expect("forward"));
        wgpu.swap = SwapMode::SingleSlot;
        wgpu.bind(&mixes[1], 0.8, Precision::Int8).expect("bind");
        let slotted = values(&wgpu.forward(&input).expect("forward"));
        assert_eq!(rebound, slotted, "single-slot and rebind agree exactly");
        check_layerwise(&model, &mut wgpu, &input, &mixes[3], Precision::Int8);
    }
}

#[test]
fn the_shipped_model_matches_on_a_real_photo() {
    let Some(gpu) = gpu() else { return };
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let model = Model::load(&assets).expect("shipped model");
    let photo = prism_engine::imageio::load_picture(&assets.join("samples/coffee.jpg"), 1 << 26).expect("sample").rgb;
    let crop = photo.crop_clamped(240, 120, 96, 64);
    let input = photo_input(&crop).expect("input");
    let mut reference = ReferenceBackend::quantsim(model.clone());
    let mut wgpu = WgpuBackend::on(gpu, model.clone()).expect("compile");
    install_all(&model, &mut reference);
    install_all(&model, &mut wgpu);
    for tool in ["denoise", "lowlight"] {
        let mix = Mix::single(tool);
        check_layerwise(&model, &mut wgpu, &input, &mix, Precision::Int8);
        let (_, psnr) = check(&model, &mut reference, &mut wgpu, &input, &mix, Precision::Int8);
        assert!(psnr >= 45.0, "{tool}: {psnr:.1} dB");
    }
    // A blend of three shipped tools (rank channels side by side in the slot).
    let blend = Mix::new([("denoise", 0.6), ("sharpen", 0.5), ("lowlight", 0.4)]).expect("mix");
    let (_, psnr) = check(&model, &mut reference, &mut wgpu, &input, &blend, Precision::Int8);
    assert!(psnr >= 45.0, "blend of three: {psnr:.1} dB");
}

/// The adapter a prompt makes (the look tool) is bound like any other: wgpu matches QuantSim on it
/// end to end, and two prompts make two different edits.
#[test]
fn an_adapter_made_from_a_prompt_matches() {
    let Some(gpu) = gpu() else { return };
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let model = Model::load(&assets).expect("shipped model");
    let looks = prism_text::look::LookMaker::load(&assets).expect("look files").expect("the shipped model has a look tool");
    let encoder = prism_text::SentenceEncoder::load(&assets).expect("encoder");
    let photo = prism_engine::imageio::load_picture(&assets.join("samples/coffee.jpg"), 1 << 26).expect("sample").rgb;
    let input = photo_input(&photo.crop_clamped(240, 120, 96, 64)).expect("input");
    let mut reference = ReferenceBackend::quantsim(model.clone());
    let mut wgpu = WgpuBackend::on(gpu, model.clone()).expect("compile");
    let mut outputs = Vec::new();
    for prompt in ["make it warmer", "black and white"] {
        let mut made = looks.make(&encoder.encode(prompt).expect("encode")).expect("make");
        made.meta.name = prompt.replace(' ', "-");
        reference.install(&made).expect("install on the reference");
        wgpu.install(&made).expect("install on wgpu");
        let mix = Mix::single(made.meta.name.clone());
        let (_, psnr) = check(&model, &mut reference, &mut wgpu, &input, &mix, Precision::Int8);
        assert!(psnr >= 45.0, "{prompt}: {psnr:.1} dB");
        reference.bind(&mix, 1.0, Precision::Int8).expect("bind");
        outputs.push(values(&reference.forward(&input).expect("forward")));
    }
    let (_, between) = compare(&outputs[0], &outputs[1]);
    assert!(between < 35.0, "two prompts made nearly the same edit ({between:.1} dB apart)");
}
