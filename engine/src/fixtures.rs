//! Small random models, adapters and synthetic photos for tests and benchmarks. Nothing here is
//! ever presented as the product: the editor and CLI only load models from a model directory.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_distr::Distribution;

use crate::adapter::{Adapter, LoraTensors, Region, float_meta};
use crate::calibrate::build_profile;
use crate::error::{EngineError, Result};
use crate::graph::LoraPlacement;
use crate::imageio::RgbImage;
use crate::model::{ADAPTERS_DIR, Model};
use crate::unet::{Unet, UnetConfig};

/// A config small enough for unit tests (two levels).
pub fn tiny_config() -> UnetConfig {
    UnetConfig {
        arch: crate::unet::ARCH_NAME.into(),
        version: crate::unet::ARCH_VERSION,
        channels: vec![8, 12],
        blocks: vec![1, 1],
        max_rank: 4,
        hole_fill: crate::hole_fill::HoleFill::Blank,
        head_sees_input: false,
    }
}

pub fn random_model(config: &UnetConfig, seed: u64) -> Result<Unet> {
    Unet::new(config, &Unet::random_tensors(config, seed, &Device::Cpu)?)
}

/// A float adapter with random A and B on every conv of `model`.
pub fn random_adapter(model: &Unet, name: &str, rank: usize, seed: u64, region: Region) -> Result<Adapter> {
    random_placed_adapter(model, name, rank, seed, region, LoraPlacement::EVERY_CONV)
}

/// A float adapter with random A and B on the convs `placement` covers.
pub fn random_placed_adapter(
    model: &Unet,
    name: &str,
    rank: usize,
    seed: u64,
    region: Region,
    placement: LoraPlacement,
) -> Result<Adapter> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0f32, 1.0).map_err(|e| EngineError::Model(e.to_string()))?;
    let mut layers = BTreeMap::new();
    for spec in model.convs().filter(|spec| placement.covers(spec)) {
        let fan_in = (spec.cin * spec.k * spec.k) as f32;
        let a: Vec<f32> = (0..rank * spec.cin * spec.k * spec.k).map(|_| normal.sample(&mut rng) / fan_in.sqrt()).collect();
        let b: Vec<f32> = (0..spec.cout * rank).map(|_| normal.sample(&mut rng) * 0.05).collect();
        layers.insert(
            spec.name.clone(),
            LoraTensors { a_shape: vec![rank, spec.cin, spec.k, spec.k], b_shape: vec![spec.cout, rank], a, b, codes: None },
        );
    }
    let mut meta = float_meta(name, &model.content_hash()?, rank, 1.0);
    meta.region = region;
    meta.task = name.into();
    meta.description = format!("random test adapter '{name}'");
    Ok(Adapter { meta, layers })
}

/// Discs and bars of several sizes and brightnesses on a mid-grey ground, each pixel the mean of
/// 4x4 samples (as a camera's pixel integrates light): edges in every direction, apart enough that
/// each reads on its own (`deblur_prepass` reads a blur's size and shape from them).
pub fn shapes_photo(w: usize, h: usize) -> RgbImage {
    let colour = |x: f32, y: f32| -> [f32; 3] {
        let (cx, cy) = (x.rem_euclid(48.0) - 24.0, y.rem_euclid(48.0) - 24.0);
        let cell = ((x / 48.0) as usize + 3 * (y / 48.0) as usize) % 4;
        let inside = match cell {
            0 => cx * cx + cy * cy < 14.0 * 14.0,
            1 => cx.abs() < 6.0,
            2 => cy.abs() < 9.0 && cx.abs() < 16.0,
            _ => (cx + cy).abs() < 10.0 && (cx - cy).abs() < 20.0,
        };
        let level = [0.9, 0.1, 0.7, 0.25][cell];
        if inside { [level, level * 0.8, 1.0 - level] } else { [0.45; 3] }
    };
    let mut image = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0f32; 3];
            for (i, j) in (0..16).map(|k| (k % 4, k / 4)) {
                let c = colour(x as f32 + (i as f32 + 0.5) / 4.0, y as f32 + (j as f32 + 0.5) / 4.0);
                sum.iter_mut().zip(c).for_each(|(s, v)| *s += v / 16.0);
            }
            image.data[(y * w + x) * 3..][..3].copy_from_slice(&sum);
        }
    }
    image
}

/// A smooth synthetic photo (gradients, discs and a little texture) with values in [0, 1].
pub fn synthetic_photo(width: usize, height: usize, seed: u64) -> RgbImage {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
        .map(|_| {
            (
                rng.random::<f32>() * width as f32,
                rng.random::<f32>() * height as f32,
                4.0 + rng.random::<f32>() * width as f32 / 4.0,
                [rng.random(), rng.random(), rng.random()],
            )
        })
        .collect();
    let mut image = RgbImage::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
            let mut p = [0.2 + 0.6 * u, 0.3 + 0.4 * v, 0.5 + 0.3 * (u * 6.0).sin() * (v * 4.0).cos()];
            for (cx, cy, r, color) in &discs {
                if (x as f32 - cx).hypot(y as f32 - cy) < *r {
                    p = *color;
                }
            }
            let i = (y * width + x) * 3;
            for (dst, value) in image.data[i..i + 3].iter_mut().zip(p) {
                *dst = (value + 0.02 * (rng.random::<f32>() - 0.5)).clamp(0.0, 1.0);
            }
        }
    }
    image
}

/// `[1,H,W,4]` model input from a photo with an all-ones mask.
pub fn photo_input(image: &RgbImage) -> Result<Tensor> {
    let data: Vec<f32> =
        image.data.chunks_exact(3).flat_map(|p| [p[0] * 2.0 - 1.0, p[1] * 2.0 - 1.0, p[2] * 2.0 - 1.0, 1.0]).collect();
    Ok(Tensor::from_vec(data, (1, image.height, image.width, 4), &Device::Cpu)?)
}

/// [`write_model_dir`] with [`tiny_config`].
pub fn write_tiny_model_dir(dir: &Path, seed: u64) -> Result<Model> {
    write_model_dir(dir, &tiny_config(), seed)
}

/// Writes a complete random model directory of `config`: base, int8 base, a profile calibrated
/// on synthetic photos, and int8 adapters `fill` (local) and `tone` (global) quantized onto it.
pub fn write_model_dir(dir: &Path, config: &UnetConfig, seed: u64) -> Result<Model> {
    let float = random_model(config, seed)?;
    let fill = random_adapter(&float, "fill", 4, seed + 1, Region::Local)?;
    let tone = random_adapter(&float, "tone", 2, seed + 2, Region::Global)?;
    let samples: Vec<Tensor> = (0..2).map(|i| photo_input(&synthetic_photo(32, 32, seed + 10 + i))).collect::<Result<_>>()?;
    let profile = build_profile(&float, &samples, &[&fill, &tone], 16, "ptq-pooled")?;
    let model = Model::save(dir, &float, &profile)?;
    for adapter in [&fill, &tone] {
        adapter.quantize(&profile)?.write(&dir.join(ADAPTERS_DIR).join(format!("{}.prism-lora", adapter.meta.name)))?;
    }
    Ok(model)
}
