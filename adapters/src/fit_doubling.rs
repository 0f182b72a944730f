//! `prism-adapters fit-doubling`: fits the upscale tool's learned doubling
//! (`prism_engine::learned_doubling`) by least squares on the training photos, each at three
//! scales (1, 0.71 and 0.5: finer detail per pixel, as the adapter's random crops see), shrunk
//! by 2x2 block means and rounded to 8 bits as the eval shrinks; a quarter of the pixels, drawn
//! with a fixed seed. Then scores it against Lanczos-3 (both block-matched) on the held-out photos.

use std::path::Path;

use anyhow::{Result, bail};
use nalgebra::{DMatrix, SMatrix};
use prism_engine::imageio::RgbImage;
use prism_engine::learned_doubling::{
    BUCKETS, COHERENCES, DoublingFilters, Neighbourhood, PHASES, STRENGTHS, TAPS, gather_patch, neighbourhoods,
};
use prism_engine::upscale_prepass::first_pass_double;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tasks::quantize8;

const SCALES: [f32; 3] = [1.0, 0.71, 0.5];
const KEPT: f64 = 0.25;
/// Pulls a bucket with few samples towards zero, relative to the mean bucket's diagonal.
const RIDGE: f64 = 1e-3;

/// The fit and its held-out score: per photo, PSNR of Lanczos-3 and of the learned doubling.
pub struct DoublingFit {
    pub filters: DoublingFilters,
    pub samples: usize,
    pub heldout: Vec<(String, f64, f64)>,
}

/// The normal equations of one bucket: the patches' Gram matrix (upper triangle) and their
/// products with the 2x2 blocks.
struct Normal {
    gram: Vec<f64>,
    cross: Vec<f64>,
    count: usize,
}

pub fn fit_doubling(data_dir: &Path) -> Result<DoublingFit> {
    let photos = crate::data::read_images(&data_dir.join("photos/train"))?;
    if photos.is_empty() {
        bail!("no training photos in {}: run `prism-adapters data fetch` first", data_dir.join("photos/train").display());
    }
    let (strength_edges, coherence_edges) = band_edges(&photos);
    let mut filters = DoublingFilters { strength_edges, coherence_edges, weights: vec![0.0; BUCKETS * TAPS * PHASES] };
    let mut normals: Vec<Normal> =
        (0..BUCKETS).map(|_| Normal { gram: vec![0.0; TAPS * TAPS], cross: vec![0.0; TAPS * PHASES], count: 0 }).collect();
    let mut rng = StdRng::seed_from_u64(0);
    for photo in &photos {
        for scale in SCALES {
            let (w, h) = ((photo.width as f32 * scale) as usize / 2 * 2, (photo.height as f32 * scale) as usize / 2 * 2);
            let target = photo.resized(w, h);
            let low = quantize8(&target.box_halved());
            accumulate(&filters, &low, &target, &mut normals, &mut rng);
        }
    }
    let samples = normals.iter().map(|n| n.count).sum();
    filters.weights = solve(&normals)?;
    let mut heldout = Vec::new();
    for (name, photo) in crate::data::read_named_images(&data_dir.join("photos/heldout"))? {
        let photo = photo.crop_clamped(0, 0, photo.width / 2 * 2, photo.height / 2 * 2);
        let low = quantize8(&photo.box_halved());
        heldout.push((name, psnr(&first_pass_double(&low), &photo), psnr(&filters.double(&low), &photo)));
    }
    Ok(DoublingFit { filters, samples, heldout })
}

/// Strength and coherence thresholds that split a sample of the photos' pixels into equal bands.
fn band_edges(photos: &[RgbImage]) -> ([f32; STRENGTHS - 1], [f32; COHERENCES - 1]) {
    let (mut strengths, mut coherences) = (Vec::new(), Vec::new());
    for photo in photos.iter().step_by(8) {
        for n in neighbourhoods(&quantize8(&photo.box_halved())).iter().step_by(7) {
            strengths.push(n.strength);
            coherences.push(n.coherence);
        }
    }
    let quantiles = |values: &mut Vec<f32>, bands: usize| -> Vec<f32> {
        values.sort_by(f32::total_cmp);
        (1..bands).map(|i| values.get(i * values.len() / bands).copied().unwrap_or(0.0)).collect()
    };
    let strength = quantiles(&mut strengths, STRENGTHS);
    let coherence = quantiles(&mut coherences, COHERENCES);
    (std::array::from_fn(|i| strength[i]), std::array::from_fn(|i| coherence[i]))
}

fn accumulate(filters: &DoublingFilters, low: &RgbImage, target: &RgbImage, normals: &mut [Normal], rng: &mut StdRng) {
    let sorted: Vec<Neighbourhood> = neighbourhoods(low);
    let mut patch = [0f32; TAPS];
    for y in 0..low.height {
        for x in 0..low.width {
            if !rng.random_bool(KEPT) {
                continue;
            }
            let normal = &mut normals[filters.bucket(sorted[y * low.width + x])];
            for c in 0..3 {
                gather_patch(low, x, y, c, &mut patch);
                let patch = patch.map(f64::from);
                for i in 0..TAPS {
                    let row = &mut normal.gram[i * TAPS..(i + 1) * TAPS];
                    for j in i..TAPS {
                        row[j] += patch[i] * patch[j];
                    }
                }
                for phase in 0..PHASES {
                    let (tx, ty) = (2 * x + phase % 2, 2 * y + phase / 2);
                    let value = f64::from(target.data[(ty * target.width + tx) * 3 + c]);
                    for (i, p) in patch.iter().enumerate() {
                        normal.cross[i * PHASES + phase] += p * value;
                    }
                }
                normal.count += 1;
            }
        }
    }
}

/// Each bucket's filter from its normal equations with a small ridge (Cholesky); a bucket no
/// sample reached takes the filter fitted on all of them.
fn solve(normals: &[Normal]) -> Result<Vec<f32>> {
    let full = |n: &Normal| DMatrix::from_fn(TAPS, TAPS, |i, j| n.gram[i.min(j) * TAPS + i.max(j)]);
    let cross = |n: &Normal| SMatrix::<f64, TAPS, PHASES>::from_fn(|i, p| n.cross[i * PHASES + p]);
    let mut all_gram = DMatrix::<f64>::zeros(TAPS, TAPS);
    let mut all_cross = SMatrix::<f64, TAPS, PHASES>::zeros();
    for n in normals {
        all_gram += full(n);
        all_cross += cross(n);
    }
    let ridge = RIDGE * all_gram.trace() / (TAPS * BUCKETS) as f64;
    let solve_one = |gram: DMatrix<f64>, cross: SMatrix<f64, TAPS, PHASES>| -> Result<Vec<f64>> {
        let regularised = gram + DMatrix::identity(TAPS, TAPS) * ridge;
        let Some(cholesky) = regularised.cholesky() else { bail!("a bucket's normal equations are not positive definite") };
        let solution = cholesky.solve(&DMatrix::from_column_slice(TAPS, PHASES, cross.as_slice()));
        Ok((0..TAPS).flat_map(|i| (0..PHASES).map(move |p| (i, p))).map(|(i, p)| solution[(i, p)]).collect())
    };
    let fallback = solve_one(all_gram, all_cross)?;
    let mut weights = Vec::with_capacity(BUCKETS * TAPS * PHASES);
    for n in normals {
        let filter = if n.count == 0 { fallback.clone() } else { solve_one(full(n), cross(n))? };
        weights.extend(filter.iter().map(|&v| v as f32));
    }
    Ok(weights)
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let quantized = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (quantized(*x) - quantized(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}
