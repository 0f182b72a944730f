//! The reference backend's integer kernels against QuantSim, on every kernel path this CPU can
//! run (the portable one runs everywhere, so CI always checks it):
//! - layer by layer: every op, fed QuantSim's stored inputs, stores every element within one
//!   quantization step of QuantSim's value;
//! - end to end: ≥ 60 dB against QuantSim's residual, on random models of odd sizes (both
//!   activation widths, blends) and on the shipped model with every shipped tool.

use std::path::Path;

use candle_core::Tensor;
use prism_engine::adapter::{Region, ResidentAdapter, bind_mix};
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::calibrate::build_profile;
use prism_engine::fixtures::{photo_input, random_adapter, random_model, synthetic_photo};
use prism_engine::int8::KernelPath;
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use prism_engine::quant::{QuantSim, Recorder, StoredTensors};
use prism_engine::unet::UnetConfig;

const STRENGTH: f32 = 0.8;

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32 tensor")
}

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (4.0 / mse.max(1e-30)).log10()
}

fn quantsim_points(model: &Model, input: &Tensor, mix: &Mix) -> StoredTensors {
    let adapters: Vec<ResidentAdapter> = mix
        .names()
        .map(|name| {
            let file = model.dir.join("adapters").join(format!("{name}.prism-lora"));
            ResidentAdapter::new(&model.read_adapter(&file).expect("read"), Some(&model.profile), &candle_core::Device::Cpu)
                .expect("resident")
        })
        .collect();
    let parts: Vec<(&ResidentAdapter, f32)> = adapters.iter().zip(mix.parts()).map(|(a, (_, w))| (a, *w)).collect();
    let set = bind_mix(&parts, STRENGTH, true).expect("bind");
    let mut recorder = Recorder::new(Some(QuantSim { profile: &model.profile }));
    model.quantized().expect("QuantSim model").forward(input, (!mix.is_empty()).then_some(&set), &mut recorder).expect("forward");
    recorder.values
}

fn install_all(model: &Model, backend: &mut dyn Backend) {
    for file in model.shipped_adapters() {
        backend.install(&model.read_adapter(&file).expect("read")).expect("install");
    }
}

fn paths() -> Vec<KernelPath> {
    let paths: Vec<KernelPath> = KernelPath::ALL.into_iter().filter(|p| p.supported()).collect();
    eprintln!("kernel paths on this CPU: {paths:?}");
    assert!(paths.contains(&KernelPath::Portable));
    paths
}

/// Layer by layer within one step, and end to end against QuantSim: returns the end-to-end PSNR.
fn check(model: &Model, path: KernelPath, quantsim: &mut ReferenceBackend, input: &Tensor, mix: &Mix) -> f64 {
    let mut integer = ReferenceBackend::on_kernel(model.clone(), path).expect("kernels");
    install_all(model, &mut integer);
    integer.bind(mix, STRENGTH, Precision::Int8).expect("bind");
    let report = integer.layerwise_check(input, &quantsim_points(model, input, mix)).expect("layerwise");
    assert!(report.len() > 5, "every stored point is checked: {report:?}");
    let (worst, steps) = report.iter().fold(("", 0.0f32), |w, (p, s)| if *s > w.1 { (p.as_str(), *s) } else { w });
    assert!(steps <= 1.0, "{path:?} {mix:?}: '{worst}' is {steps} steps from QuantSim");
    quantsim.bind(mix, STRENGTH, Precision::Int8).expect("bind");
    let expected = values(&quantsim.forward(input).expect("QuantSim"));
    let got = values(&integer.forward(input).expect("integer"));
    psnr(&expected, &got)
}

#[test]
fn random_models_match_quantsim_on_every_path() {
    for (case, (channels, blocks, ranks, bits, size)) in [
        (vec![6, 10], vec![1, 2], vec![3, 5], 16, (20, 28)),
        (vec![5, 7, 9], vec![1, 1, 1], vec![2, 8], 16, (24, 40)),
        (vec![8, 12], vec![2, 1], vec![4, 1], 8, (16, 24)),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = UnetConfig::new(channels, blocks, 8).expect("config");
        let float = random_model(&config, 7).expect("model");
        let adapters: Vec<_> = ranks
            .iter()
            .enumerate()
            .map(|(i, rank)| random_adapter(&float, &format!("tool{i}"), *rank, 20 + i as u64, Region::Global).expect("adapter"))
            .collect();
        let samples: Vec<Tensor> = (0..2).map(|i| photo_input(&synthetic_photo(24, 40, 30 + i)).expect("input")).collect();
        let profile = build_profile(&float, &samples, &adapters.iter().collect::<Vec<_>>(), bits, "ptq-pooled").expect("profile");
        let model = Model::save(dir.path(), &float, &profile).expect("model dir");
        std::fs::create_dir_all(dir.path().join("adapters")).expect("adapters dir");
        for adapter in &adapters {
            let file = dir.path().join("adapters").join(format!("{}.prism-lora", adapter.meta.name));
            adapter.quantize(&profile).expect("quantize").write(&file).expect("write");
        }
        let mut quantsim = ReferenceBackend::quantsim(model.clone());
        install_all(&model, &mut quantsim);
        let input = photo_input(&synthetic_photo(size.1, size.0, 40 + case as u64)).expect("input");
        let mixes = [Mix::none(), Mix::single("tool1"), Mix::new([("tool0", 0.7), ("tool1", 0.4)]).expect("mix")];
        for path in paths() {
            for mix in &mixes {
                let agreement = check(&model, path, &mut quantsim, &input, mix);
                assert!(agreement >= 60.0, "case {case} {path:?} {mix:?}: {agreement:.1} dB end to end");
            }
        }
    }
}

#[test]
fn the_shipped_tools_match_quantsim_on_every_path() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let model = Model::load(&assets).expect("shipped model");
    let photo = prism_engine::imageio::load_picture(&assets.join("samples/coffee.jpg"), 1 << 26).expect("sample").rgb;
    let input = photo_input(&photo.crop_clamped(240, 120, 96, 64)).expect("input");
    let mut quantsim = ReferenceBackend::quantsim(model.clone());
    install_all(&model, &mut quantsim);
    let tools: Vec<String> = quantsim.installed().into_iter().map(|info| info.meta.name).collect();
    assert!(tools.len() >= 6, "{tools:?}");
    for path in paths() {
        let mut worst = f64::INFINITY;
        for tool in &tools {
            let agreement = check(&model, path, &mut quantsim, &input, &Mix::single(tool.clone()));
            worst = worst.min(agreement);
            assert!(agreement >= 60.0, "{path:?} {tool}: {agreement:.1} dB end to end");
        }
        eprintln!("{path:?}: every shipped tool ≥ {worst:.1} dB against QuantSim end to end");
    }
}

/// An edit that names no precision runs the faster one for the kernels (int8 on the SIMD paths,
/// float on the portable one) and records which, with the kernels in the device's words.
#[test]
fn an_edit_without_a_precision_runs_the_faster_one() {
    use std::sync::Arc;

    use prism_engine::job::{EditJob, run_edit};
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let model = Model::load(&assets).expect("shipped model");
    let image = Arc::new(synthetic_photo(64, 48, 3));
    for path in paths() {
        let mut backend = ReferenceBackend::on_kernel(model.clone(), path).expect("kernels");
        install_all(&model, &mut backend);
        let job = EditJob {
            id: 1,
            image: image.clone(),
            mask: None,
            mix: Mix::single("denoise"),
            strength: 1.0,
            precision: None,
            exposure: None,
            blur_size: None,
            noise_level: None,
            context: prism_engine::job::DEFAULT_CONTEXT,
            texture: prism_engine::job::DEFAULT_TEXTURE,
        };
        let (_, stats) = run_edit(&mut backend, &job, &mut |_, _| true).expect("edit");
        let expected = if path.beats_float() { Precision::Int8 } else { Precision::Float };
        assert_eq!(stats.precision, expected, "{path:?}");
        assert!(stats.device.contains(path.describe()), "{}", stats.device);
    }
}
