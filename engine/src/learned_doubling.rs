//! A learned doubling for the upscale tool's first pass: each photo pixel's 2x2 block is a linear
//! filter of the 7x7 pixels around it, one filter per kind of neighbourhood, sorted by the local
//! gradient's angle, strength and coherence (the hashing of Romano et al.'s RAISR). The filters
//! are fitted by least squares on the training photos (`prism-adapters fit-doubling`) and
//! compiled in (`assets/doubling.safetensors`, 56 KB); the block means are then matched to the
//! photo as in `first_pass_double`.
//!
//! Measured on the 15 held-out photos, whole, shrunk by 2x2 block means and rounded to 8 bits
//! (a numpy prototype of the same fit, 2026-12-07): Lanczos-3 with the block means matched
//! 32.36 dB, one filter for all pixels 32.37, the 144 hashed filters 32.90. A 9x9 patch or 24
//! angles gained under 0.01 dB.

use std::sync::OnceLock;

use crate::error::{EngineError, Result};
use crate::imageio::RgbImage;
use crate::tensorfile::{RawTensor, TensorFile};
use crate::upscale_prepass::match_block_means;

/// Side of the neighbourhood each filter reads, in photo pixels.
pub const PATCH: usize = 7;
pub const TAPS: usize = PATCH * PATCH;
/// Output pixels per photo pixel (the 2x2 block).
pub const PHASES: usize = 4;
pub const ANGLES: usize = 16;
pub const STRENGTHS: usize = 3;
pub const COHERENCES: usize = 3;
pub const BUCKETS: usize = ANGLES * STRENGTHS * COHERENCES;
const FORMAT: &str = "prism-doubling";

/// The fitted filters and the thresholds that sort a neighbourhood into one of them.
#[derive(Clone, Debug, PartialEq)]
pub struct DoublingFilters {
    /// Gradient strength between the bands (ascending).
    pub strength_edges: [f32; STRENGTHS - 1],
    /// Coherence between the bands (ascending).
    pub coherence_edges: [f32; COHERENCES - 1],
    /// `[bucket][tap][phase]`; tap `dy * PATCH + dx`, phase `py * 2 + px`.
    pub weights: Vec<f32>,
}

/// What sorts one photo pixel's neighbourhood: the smoothed gradient's angle band and its
/// strength and coherence (how much one direction dominates, 0-1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbourhood {
    pub angle: usize,
    pub strength: f32,
    pub coherence: f32,
}

static SHIPPED: OnceLock<std::result::Result<DoublingFilters, String>> = OnceLock::new();

impl DoublingFilters {
    /// The filters compiled into Prism.
    pub fn shipped() -> Result<&'static DoublingFilters> {
        SHIPPED
            .get_or_init(|| {
                let file = TensorFile::parse(include_bytes!("../../assets/doubling.safetensors"))?;
                DoublingFilters::from_file(&file).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|message| EngineError::Model(format!("the compiled-in doubling filters are broken: {message}")))
    }

    pub fn from_file(file: &TensorFile) -> Result<Self> {
        let bad = |message: String| EngineError::Model(format!("doubling filters: {message}"));
        if file.meta("format") != Some(FORMAT) {
            return Err(bad(format!("no 'format: {FORMAT}' metadata")));
        }
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let raw = file.tensors.get(name).ok_or_else(|| bad(format!("no tensor '{name}'")))?;
            if raw.shape != shape {
                return Err(bad(format!("'{name}' has shape {:?}, expected {shape:?}", raw.shape)));
            }
            Ok(raw.to_f32())
        };
        let ascending = |v: &[f32]| v.windows(2).all(|w| w[0] <= w[1]);
        let strength = tensor("strength_edges", &[STRENGTHS - 1])?;
        let coherence = tensor("coherence_edges", &[COHERENCES - 1])?;
        if !ascending(&strength) || !ascending(&coherence) {
            return Err(bad("band edges are not ascending".into()));
        }
        Ok(Self {
            strength_edges: strength.try_into().map_err(|_| bad("strength edges".into()))?,
            coherence_edges: coherence.try_into().map_err(|_| bad("coherence edges".into()))?,
            weights: tensor("weights", &[BUCKETS, TAPS, PHASES])?,
        })
    }

    /// Stored as f16: the doubling changes by under 0.001 dB (the weights are near 0-1).
    pub fn to_file(&self) -> TensorFile {
        let mut file = TensorFile::default();
        file.tensors.insert("weights".into(), RawTensor::from_f32_as_f16(vec![BUCKETS, TAPS, PHASES], &self.weights));
        file.tensors.insert("strength_edges".into(), RawTensor::from_f32(vec![STRENGTHS - 1], &self.strength_edges));
        file.tensors.insert("coherence_edges".into(), RawTensor::from_f32(vec![COHERENCES - 1], &self.coherence_edges));
        file.metadata.insert("format".into(), FORMAT.into());
        file
    }

    /// The filter a neighbourhood uses.
    pub fn bucket(&self, n: Neighbourhood) -> usize {
        let band = |v: f32, edges: &[f32]| edges.iter().filter(|&&e| e <= v).count();
        (n.angle * STRENGTHS + band(n.strength, &self.strength_edges)) * COHERENCES + band(n.coherence, &self.coherence_edges)
    }

    /// `low` doubled in each side, its block means matched to `low`.
    pub fn double(&self, low: &RgbImage) -> RgbImage {
        let (w, h) = (low.width, low.height);
        let mut high = RgbImage::new(w * 2, h * 2);
        let sorted = neighbourhoods(low);
        let mut patch = [0f32; TAPS];
        for y in 0..h {
            for x in 0..w {
                let filter = &self.weights[self.bucket(sorted[y * w + x]) * TAPS * PHASES..][..TAPS * PHASES];
                for c in 0..3 {
                    gather_patch(low, x, y, c, &mut patch);
                    // Tap by tap, the four phases side by side: one 4-lane multiply-add each.
                    let mut block = [0f32; PHASES];
                    for (v, taps) in patch.iter().zip(filter.chunks_exact(PHASES)) {
                        for (out, weight) in block.iter_mut().zip(taps) {
                            *out += v * weight;
                        }
                    }
                    for (phase, value) in block.into_iter().enumerate() {
                        let (hx, hy) = (2 * x + phase % 2, 2 * y + phase / 2);
                        high.data[(hy * 2 * w + hx) * 3 + c] = value;
                    }
                }
            }
        }
        match_block_means(&mut high, low);
        high
    }
}

/// The `PATCH x PATCH` values of channel `c` around `(x, y)`, edges repeated.
pub fn gather_patch(low: &RgbImage, x: usize, y: usize, c: usize, patch: &mut [f32; TAPS]) {
    let r = (PATCH / 2) as isize;
    for dy in 0..PATCH {
        let sy = (y as isize + dy as isize - r).clamp(0, low.height as isize - 1) as usize;
        for dx in 0..PATCH {
            let sx = (x as isize + dx as isize - r).clamp(0, low.width as isize - 1) as usize;
            patch[dy * PATCH + dx] = low.data[(sy * low.width + sx) * 3 + c];
        }
    }
}

/// Each pixel's neighbourhood kind, from the luma's gradients averaged over a 5x5 Gaussian
/// window (the structure tensor): its main direction, the larger eigenvalue's root and the gap
/// between the two roots over their sum.
pub fn neighbourhoods(low: &RgbImage) -> Vec<Neighbourhood> {
    let (w, h) = (low.width, low.height);
    let luma: Vec<f32> = low.data.chunks_exact(3).map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).collect();
    let at = |x: isize, y: isize| luma[y.clamp(0, h as isize - 1) as usize * w + x.clamp(0, w as isize - 1) as usize];
    let mut products = [vec![0f32; w * h], vec![0f32; w * h], vec![0f32; w * h]];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = (at(x + 1, y) - at(x - 1, y)) * 0.5;
            let gy = (at(x, y + 1) - at(x, y - 1)) * 0.5;
            let i = y as usize * w + x as usize;
            products[0][i] = gx * gx;
            products[1][i] = gy * gy;
            products[2][i] = gx * gy;
        }
    }
    let [xx, yy, xy] = products.map(|p| gaussian_5(&p, w, h));
    (0..w * h)
        .map(|i| {
            let (trace, det) = (xx[i] + yy[i], xx[i] * yy[i] - xy[i] * xy[i]);
            let gap = (trace * trace / 4.0 - det).max(0.0).sqrt();
            let (large, small) = ((trace / 2.0 + gap).max(0.0).sqrt(), (trace / 2.0 - gap).max(0.0).sqrt());
            let theta = 0.5 * (2.0 * xy[i]).atan2(xx[i] - yy[i]);
            let angle = ((theta + std::f32::consts::FRAC_PI_2) / std::f32::consts::PI * ANGLES as f32).floor() as isize;
            Neighbourhood {
                angle: angle.rem_euclid(ANGLES as isize) as usize,
                strength: large,
                coherence: (large - small) / (large + small + 1e-8),
            }
        })
        .collect()
}

/// A separable 5-tap Gaussian (sigma 1.2), edges repeated.
fn gaussian_5(values: &[f32], w: usize, h: usize) -> Vec<f32> {
    let taps: [f32; 5] = {
        let raw = [-2f32, -1.0, 0.0, 1.0, 2.0].map(|d| (-d * d / (2.0 * 1.2 * 1.2)).exp());
        let sum: f32 = raw.iter().sum();
        raw.map(|v| v / sum)
    };
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                out[y * w + x] = taps
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let d = k as isize - 2;
                        let (sx, sy) = if horizontal {
                            ((x as isize + d).clamp(0, w as isize - 1) as usize, y)
                        } else {
                            (x, (y as isize + d).clamp(0, h as isize - 1) as usize)
                        };
                        t * src[sy * w + sx]
                    })
                    .sum();
            }
        }
        out
    };
    pass(&pass(values, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upscale_prepass::first_pass_double;

    fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
        let mse = a.data.iter().zip(&b.data).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.data.len() as f64;
        10.0 * (1.0 / mse).log10()
    }

    #[test]
    fn the_shipped_filters_double_a_photo_closer_than_lanczos() {
        // A sample photo (never trained on), shrunk by block means: the learned doubling is nearer
        // the photo than the matched Lanczos-3 and keeps its block means.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/samples/astronaut.jpg");
        let photo = crate::imageio::load_picture(&path, crate::imageio::DEFAULT_MAX_PIXELS).unwrap().rgb;
        let photo = photo.crop_clamped(0, 0, photo.width / 2 * 2, photo.height / 2 * 2);
        let low = photo.box_halved();
        let learned = DoublingFilters::shipped().unwrap().double(&low);
        let lanczos = first_pass_double(&low);
        let (gain, shrunk) = (psnr(&learned, &photo) - psnr(&lanczos, &photo), learned.box_halved());
        assert!(gain > 0.3, "learned doubling gains {gain:.3} dB over Lanczos-3");
        // Only where clamping to [0, 1] cuts a block's overshoot does a mean move.
        let moved = low.data.iter().zip(&shrunk.data).map(|(l, s)| (l - s).abs()).sum::<f32>() / low.data.len() as f32;
        assert!(moved < 1e-3, "block means moved by {moved} on average");
    }

    #[test]
    fn a_file_round_trips_and_a_wrong_one_is_refused() {
        let filters = DoublingFilters::shipped().unwrap();
        let again = DoublingFilters::from_file(&TensorFile::parse(&filters.to_file().to_bytes().unwrap()).unwrap()).unwrap();
        assert_eq!(&again, filters);
        let mut wrong = filters.to_file();
        wrong.tensors.insert("weights".into(), RawTensor::from_f32(vec![BUCKETS, TAPS], &vec![0.0; BUCKETS * TAPS]));
        assert!(DoublingFilters::from_file(&wrong).unwrap_err().to_string().contains("shape"));
        let mut unsorted = filters.to_file();
        unsorted.tensors.insert("strength_edges".into(), RawTensor::from_f32(vec![2], &[0.5, 0.1]));
        assert!(DoublingFilters::from_file(&unsorted).is_err());
        let mut foreign = filters.to_file();
        foreign.metadata.clear();
        assert!(DoublingFilters::from_file(&foreign).is_err());
    }

    #[test]
    fn a_straight_edge_sorts_by_its_direction() {
        // A vertical edge: the gradient is horizontal (angle band in the middle), strong and coherent.
        let mut image = RgbImage::new(12, 12);
        for y in 0..12 {
            for x in 6..12 {
                image.data[(y * 12 + x) * 3..][..3].fill(1.0);
            }
        }
        let n = neighbourhoods(&image)[6 * 12 + 6];
        assert_eq!(n.angle, ANGLES / 2);
        assert!(n.coherence > 0.99 && n.strength > 0.1, "{n:?}");
    }
}
