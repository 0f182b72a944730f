//! `prism-adapters fit-doubling`: fits the upscale tool's learned doubling
//! (`prism_engine::learned_doubling`) by least squares on the training photos, each at three
//! scales (1, 0.71 and 0.5: finer detail per pixel, as the adapter's random crops see), shrunk
//! by 2x2 block means and rounded to 8 bits as the eval shrinks, on pixels drawn with a fixed
//! seed: the doubling bank first, then the refining bank on the doubling's output. Then scores
//! both against Lanczos-3 (all block-matched) on the held-out photos.

use std::path::Path;

use anyhow::{Result, bail};
use nalgebra::DMatrix;
use prism_engine::imageio::RgbImage;
use prism_engine::learned_doubling::{
    BUCKETS, COHERENCES, DOUBLE_PATCH, DoublingFilters, FilterBank, PHASES, REFINE_PATCH, STRENGTHS, gather_patch,
    neighbourhoods, refine_kind,
};
use prism_engine::upscale_prepass::first_pass_double;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tasks::quantize8;

const SCALES: [f32; 3] = [1.0, 0.71, 0.5];
/// Share of the windows each bank is fitted on (the refining bank has four times as many).
const KEPT: [f64; 2] = [0.25, 0.0625];
/// Pulls a kind with few samples towards zero, relative to the mean kind's diagonal.
const RIDGE: f64 = 1e-3;

/// The fit and its held-out score: per photo, PSNR of Lanczos-3, the first bank, both banks.
pub struct DoublingFit {
    pub filters: DoublingFilters,
    pub samples: [usize; 2],
    pub heldout: Vec<(String, [f64; 3])>,
}

/// The normal equations of one kind: the windows' Gram matrix (upper triangle) and their
/// products with the outputs.
struct Normal {
    gram: Vec<f64>,
    cross: Vec<f64>,
    count: usize,
}

/// One photo at one scale: the target and its shrunk, 8-bit version.
struct Pair {
    low: RgbImage,
    target: RgbImage,
}

pub fn fit_doubling(data_dir: &Path) -> Result<DoublingFit> {
    let photos = crate::data::read_images(&data_dir.join("photos/train"))?;
    if photos.is_empty() {
        bail!("no training photos in {}: run `prism-adapters data fetch` first", data_dir.join("photos/train").display());
    }
    let pairs = || {
        photos.iter().flat_map(|photo| {
            SCALES.iter().map(move |scale| {
                let w = (photo.width as f32 * scale) as usize / 2 * 2;
                let h = (photo.height as f32 * scale) as usize / 2 * 2;
                let target = photo.resized(w, h);
                Pair { low: quantize8(&target.box_halved()), target }
            })
        })
    };
    let mut rng = StdRng::seed_from_u64(0);
    // The doubling bank: a photo pixel's window to its 2x2 block.
    let lows: Vec<RgbImage> = photos.iter().step_by(8).map(|p| quantize8(&p.box_halved())).collect();
    let mut double = FilterBank::empty(DOUBLE_PATCH, PHASES, BUCKETS, band_edges(&lows));
    let mut normals = new_normals(&double, BUCKETS);
    for pair in pairs() {
        let sorted = neighbourhoods(&pair.low);
        let kinds: Vec<usize> = sorted.iter().map(|&n| double.bucket(n)).collect();
        let block = |x: usize, y: usize, c: usize, out: &mut Vec<f64>| {
            out.clear();
            out.extend(
                (0..PHASES).map(|p| f64::from(pair.target.data[((2 * y + p / 2) * pair.target.width + 2 * x + p % 2) * 3 + c])),
            );
        };
        accumulate(&double, &pair.low, &kinds, block, KEPT[0], &mut normals, &mut rng);
    }
    let doubled_samples = normals.iter().map(|n| n.count).sum();
    double.weights = solve(&double, &normals)?;
    // The refining bank, on the doubling bank's output: a doubled pixel's window to that pixel.
    let firsts: Vec<RgbImage> = lows.iter().map(|low| double.double_photo(low)).collect();
    let mut refine = FilterBank::empty(REFINE_PATCH, 1, BUCKETS * PHASES, band_edges(&firsts));
    let mut normals = new_normals(&refine, BUCKETS * PHASES);
    for pair in pairs() {
        let high = double.double_photo(&pair.low);
        let sorted = neighbourhoods(&high);
        let kinds: Vec<usize> =
            sorted.iter().enumerate().map(|(i, &n)| refine_kind(&refine, n, i % high.width, i / high.width)).collect();
        let pixel = |x: usize, y: usize, c: usize, out: &mut Vec<f64>| {
            out.clear();
            out.push(f64::from(pair.target.data[(y * pair.target.width + x) * 3 + c]));
        };
        accumulate(&refine, &high, &kinds, pixel, KEPT[1], &mut normals, &mut rng);
    }
    let refined_samples = normals.iter().map(|n| n.count).sum();
    refine.weights = solve(&refine, &normals)?;
    let filters = DoublingFilters { double, refine };
    let mut heldout = Vec::new();
    for (name, photo) in crate::data::read_named_images(&data_dir.join("photos/heldout"))? {
        let photo = photo.crop_clamped(0, 0, photo.width / 2 * 2, photo.height / 2 * 2);
        let low = quantize8(&photo.box_halved());
        let scores =
            [first_pass_double(&low), filters.double.double_photo(&low), filters.double(&low)].map(|high| psnr(&high, &photo));
        heldout.push((name, scores));
    }
    Ok(DoublingFit { filters, samples: [doubled_samples, refined_samples], heldout })
}

fn new_normals(bank: &FilterBank, kinds: usize) -> Vec<Normal> {
    let taps = bank.taps();
    (0..kinds).map(|_| Normal { gram: vec![0.0; taps * taps], cross: vec![0.0; taps * bank.outputs], count: 0 }).collect()
}

/// Strength and coherence thresholds that split a sample of `images`' pixels into equal bands.
fn band_edges(images: &[RgbImage]) -> ([f32; STRENGTHS - 1], [f32; COHERENCES - 1]) {
    let (mut strengths, mut coherences) = (Vec::new(), Vec::new());
    for image in images {
        for n in neighbourhoods(image).iter().step_by(7) {
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

/// Adds a `kept` share of `source`'s windows (pixel `i` of kind `kinds[i]`) with what `wanted`
/// says each should give to the normal equations.
fn accumulate(
    bank: &FilterBank,
    source: &RgbImage,
    kinds: &[usize],
    wanted: impl Fn(usize, usize, usize, &mut Vec<f64>),
    kept: f64,
    normals: &mut [Normal],
    rng: &mut StdRng,
) {
    let taps = bank.taps();
    let (mut window, mut target) = (Vec::new(), Vec::new());
    for y in 0..source.height {
        for x in 0..source.width {
            if !rng.random_bool(kept) {
                continue;
            }
            let normal = &mut normals[kinds[y * source.width + x]];
            for c in 0..3 {
                gather_patch(source, (x, y, c), bank.patch, &mut window);
                wanted(x, y, c, &mut target);
                for i in 0..taps {
                    let vi = f64::from(window[i]);
                    let row = &mut normal.gram[i * taps..(i + 1) * taps];
                    for j in i..taps {
                        row[j] += vi * f64::from(window[j]);
                    }
                    for (o, t) in target.iter().enumerate() {
                        normal.cross[i * bank.outputs + o] += vi * t;
                    }
                }
                normal.count += 1;
            }
        }
    }
}

/// Each kind's filter from its normal equations with a small ridge (Cholesky); a kind no sample
/// reached takes the filter fitted on all of them.
fn solve(bank: &FilterBank, normals: &[Normal]) -> Result<Vec<f32>> {
    let (taps, outputs) = (bank.taps(), bank.outputs);
    let gram = |n: &Normal| DMatrix::from_fn(taps, taps, |i, j| n.gram[i.min(j) * taps + i.max(j)]);
    let cross = |n: &Normal| DMatrix::from_fn(taps, outputs, |i, o| n.cross[i * outputs + o]);
    let mut all_gram = DMatrix::<f64>::zeros(taps, taps);
    let mut all_cross = DMatrix::<f64>::zeros(taps, outputs);
    for n in normals {
        all_gram += gram(n);
        all_cross += cross(n);
    }
    let ridge = RIDGE * all_gram.trace() / (taps * normals.len()) as f64;
    let solve_one = |gram: DMatrix<f64>, cross: DMatrix<f64>| -> Result<Vec<f64>> {
        let regularised = gram + DMatrix::identity(taps, taps) * ridge;
        let Some(cholesky) = regularised.cholesky() else { bail!("a kind's normal equations are not positive definite") };
        let solution = cholesky.solve(&cross);
        Ok((0..taps).flat_map(|i| (0..outputs).map(move |o| (i, o))).map(|(i, o)| solution[(i, o)]).collect())
    };
    let fallback = solve_one(all_gram, all_cross)?;
    let mut weights = Vec::with_capacity(normals.len() * taps * outputs);
    for n in normals {
        let filter = if n.count == 0 { fallback.clone() } else { solve_one(gram(n), cross(n))? };
        weights.extend(filter.iter().map(|&v| v as f32));
    }
    Ok(weights)
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let quantized = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (quantized(*x) - quantized(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}
