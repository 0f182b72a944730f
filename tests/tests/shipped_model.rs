//! The model shipped in `assets/`: it loads, every tool is there with its metadata, and each tool
//! does its job on a held-out sample photo better than doing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;

use prism_engine::adapter::{AdapterPrecision, Region};
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::deblur_prepass::SharpenPass;
use prism_engine::imageio::{Mask, RgbImage, load_picture};
use prism_engine::job::{EditJob, run_edit};
use prism_engine::model::Model;
use prism_engine::settings::gaussian_blur;

/// Colorize is left out of the shipped tools (it does not beat the gray photo by 1 dB: the model
/// card says why).
const TOOLS: [&str; 6] = ["dejpeg", "denoise", "lowlight", "remove", "sharpen", "upscale"];

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

fn sample(name: &str, side: usize) -> RgbImage {
    let picture = load_picture(&assets().join("samples").join(name), 64_000_000).unwrap();
    let image = picture.rgb;
    image.crop_clamped(((image.width - side) / 2) as isize, ((image.height - side) / 2) as isize, side, side)
}

fn psnr(a: &RgbImage, b: &RgbImage, mask: Option<&Mask>) -> f64 {
    let (mut sum, mut count) = (0f64, 0usize);
    for (i, (pa, pb)) in a.data.chunks_exact(3).zip(b.data.chunks_exact(3)).enumerate() {
        if mask.is_some_and(|m| m.data[i] < 0.5) {
            continue;
        }
        for c in 0..3 {
            sum += ((pa[c] - pb[c]) as f64).powi(2);
        }
        count += 3;
    }
    10.0 * (1.0 / (sum / count as f64).max(1e-12)).log10()
}

fn backend() -> ReferenceBackend {
    let model = Model::load(&assets()).unwrap();
    let mut backend = ReferenceBackend::new(model.clone());
    for path in model.shipped_adapters() {
        backend.install(&model.read_adapter(&path).unwrap()).unwrap();
    }
    backend
}

/// An int8 job of `tool` on the whole of `image`, its setting (if any) at the default.
fn job(tool: &str, image: &RgbImage) -> EditJob {
    EditJob {
        id: 1,
        image: Arc::new(image.clone()),
        mask: None,
        mix: prism_engine::mix::Mix::single(tool),
        strength: 1.0,
        precision: Some(Precision::Int8),
        exposure: None,
        blur_size: None,
        noise_level: None,
        context: prism_engine::job::DEFAULT_CONTEXT,
        texture: prism_engine::job::DEFAULT_TEXTURE,
    }
}

fn edit(backend: &mut ReferenceBackend, tool: &str, image: &RgbImage, mask: Option<Mask>) -> RgbImage {
    let job = EditJob { mask: mask.map(Arc::new), ..job(tool, image) };
    run_edit(backend, &job, &mut |_, _| true).unwrap().0
}

#[test]
fn every_tool_is_shipped_int8_on_the_shared_profile_with_its_float_teacher() {
    let backend = backend();
    let model = backend.model();
    let infos = backend.installed();
    let names: Vec<&str> = infos.iter().map(|i| i.meta.name.as_str()).collect();
    assert_eq!(names, TOOLS);
    for info in &infos {
        let meta = &info.meta;
        assert_eq!(meta.precision, AdapterPrecision::Int8, "{}", meta.name);
        assert_eq!(meta.profile, model.profile.id, "{}", meta.name);
        assert!(!info.quantized_on_load, "{} was not QUAD-quantized", meta.name);
        assert!(!meta.title.is_empty() && meta.title != meta.name, "{} has no human name", meta.name);
        assert!(!meta.description.is_empty() && !meta.example_prompts.is_empty(), "{} lacks its description", meta.name);
        let teacher = model.dir.join("adapters/float").join(format!("{}.prism-lora", meta.name));
        assert_eq!(model.read_adapter(&teacher).unwrap().meta.precision, AdapterPrecision::Float);
    }
    assert_eq!(infos.iter().find(|i| i.meta.name == "remove").unwrap().meta.region, Region::Local);
    assert_eq!(infos.iter().find(|i| i.meta.name == "upscale").unwrap().meta.scale, 2);
}

#[test]
fn denoise_and_remove_beat_doing_nothing_on_a_held_out_photo() {
    let mut backend = backend();
    let clean = sample("coffee.jpg", 128);

    // Noise of sigma 20/255 from a fixed pseudo-random sequence.
    let mut state = 12345u64;
    let mut noise = || {
        let mut sum = 0f32;
        for _ in 0..12 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            sum += (state >> 40) as f32 / (1u64 << 24) as f32;
        }
        (sum - 6.0) * 20.0 / 255.0
    };
    let noisy = RgbImage {
        width: clean.width,
        height: clean.height,
        data: clean.data.iter().map(|v| ((v + noise()).clamp(0.0, 1.0) * 255.0).round() / 255.0).collect(),
    };
    let denoised = edit(&mut backend, "denoise", &noisy, None);
    let (before, after) = (psnr(&noisy, &clean, None), psnr(&denoised, &clean, None));
    assert!(after > before + 1.0, "denoise: {before:.2} dB in, {after:.2} dB out");

    // A 24x24 hole: the fill must be closer to the photo than the grey a blank fill would give.
    let mut mask = Mask::filled(128, 128, 0.0);
    for y in 52..76 {
        for x in 52..76 {
            mask.data[y * 128 + x] = 1.0;
        }
    }
    let filled = edit(&mut backend, "remove", &clean, Some(mask.clone()));
    let grey = RgbImage { width: 128, height: 128, data: vec![0.5; 128 * 128 * 3] };
    let (fill, blank) = (psnr(&filled, &clean, Some(&mask)), psnr(&grey, &clean, Some(&mask)));
    assert!(fill > blank + 3.0, "remove: fill {fill:.2} dB vs grey {blank:.2} dB inside the hole");
    let outside = mask.data.iter().map(|m| 1.0 - m).collect();
    let far = Mask { width: 128, height: 128, data: outside };
    assert!(psnr(&filled, &clean, Some(&far)) > 40.0, "remove changed pixels far outside the mask");
}

#[test]
fn lowlight_brightens_by_the_estimated_or_the_given_exposure() {
    let mut backend = backend();
    let clean = sample("astronaut.jpg", 128);
    // Three stops under and a crushing gamma, as an 8-bit file holds it.
    let dark = RgbImage {
        width: clean.width,
        height: clean.height,
        data: clean.data.iter().map(|v| ((v.powf(1.3) / 8.0) * 255.0).round() / 255.0).collect(),
    };
    let mut job = job("lowlight", &dark);
    let (bright, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    let estimated = stats.exposure.expect("lowlight takes an exposure");
    assert!((1.5..=4.5).contains(&estimated), "estimated {estimated} stops for a photo 3 stops under");
    let (before, after) = (psnr(&dark, &clean, None), psnr(&bright, &clean, None));
    assert!(after > before + 6.0, "lowlight: {before:.2} dB in, {after:.2} dB out");

    job.exposure = Some(1.0);
    let (dimmer, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.exposure, Some(1.0));
    let mean = |image: &RgbImage| image.data.iter().sum::<f32>() / image.data.len() as f32;
    assert!(mean(&dimmer) < mean(&bright), "one stop brightens less than {estimated}");
    job.exposure = Some(20.0);
    assert!(run_edit(&mut backend, &job, &mut |_, _| true).is_err(), "20 stops is refused");
    job.exposure = Some(1.0);
    job.mix = prism_engine::mix::Mix::single("denoise");
    assert_eq!(run_edit(&mut backend, &job, &mut |_, _| true).unwrap().1.exposure, None, "denoise takes no exposure");
}

#[test]
fn sharpen_takes_the_blur_size() {
    let mut backend = backend();
    let clean = sample("coffee.jpg", 128);
    let blurred =
        RgbImage { data: gaussian_blur(&clean, 2.0).data.iter().map(|v| (v * 255.0).round() / 255.0).collect(), ..clean.clone() };
    let mut job = EditJob { blur_size: Some(2.0), ..job("sharpen", &blurred) };
    let (sharp, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.sharpen, Some(SharpenPass::Deconvolve(2.0)), "a given blur size is deconvolved");
    let (before, after) = (psnr(&blurred, &clean, None), psnr(&sharp, &clean, None));
    assert!(after > before + 1.0, "sharpen: {before:.2} dB in, {after:.2} dB out");
    job.blur_size = None;
    let (read, stats) = run_edit(&mut backend, &job, &mut |_, _| true).unwrap();
    assert_eq!(stats.sharpen, Some(SharpenPass::for_photo(&blurred, None)), "without a size the photo's own reading chooses");
    assert!(psnr(&read, &clean, None) > before + 1.0, "sharpen at the size it reads: {:.2} dB", psnr(&read, &clean, None));
    job.blur_size = Some(0.0);
    assert!(run_edit(&mut backend, &job, &mut |_, _| true).is_err(), "a blur size of 0 is refused");
}

#[test]
fn upscale_doubles_the_size() {
    let mut backend = backend();
    let small = sample("chelsea.jpg", 64);
    let big = edit(&mut backend, "upscale", &small, None);
    assert_eq!((big.width, big.height), (128, 128));
}
