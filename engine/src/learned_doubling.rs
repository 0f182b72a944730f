//! A learned doubling for the upscale tool's first pass, in two banks of hashed linear filters
//! (the scheme of Romano, Isidoro and Milanfar's RAISR): each photo pixel's 2x2 block is a filter
//! of the 7x7 photo pixels around it, then each doubled pixel is a filter of the 5x5 doubled
//! pixels around it; each bank holds one filter per kind of neighbourhood, sorted by the local
//! gradient's angle, strength and coherence. Both are fitted by least squares on the training
//! photos (`prism-adapters fit-doubling`) and compiled in (`assets/doubling.safetensors`); the
//! block means are matched to the photo after each, as in `first_pass_double`.
//!
//! Measured on the 15 held-out photos, whole, shrunk by 2x2 block means and rounded to 8 bits
//! (`fit-doubling`'s printout; docs/model-v2.md has the table): Lanczos-3 with the block means
//! matched 32.35 dB, the first bank 32.87, both banks 33.04.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::imageio::RgbImage;
use crate::tensorfile::{RawTensor, TensorFile};
use crate::unet::short_hash;
use crate::upscale_prepass::match_block_means;

pub const ANGLES: usize = 16;
pub const STRENGTHS: usize = 3;
pub const COHERENCES: usize = 3;
/// Kinds of neighbourhood: angle band x strength band x coherence band.
pub const BUCKETS: usize = ANGLES * STRENGTHS * COHERENCES;
/// Output pixels per photo pixel (the 2x2 block), `py * 2 + px`.
pub const PHASES: usize = 4;
/// Window sides: the doubling's, in photo pixels, and the refinement's, in doubled pixels.
pub const DOUBLE_PATCH: usize = 7;
pub const REFINE_PATCH: usize = 5;
const FORMAT: &str = "prism-doubling";

/// One bank of hashed linear filters: the thresholds that sort a neighbourhood into a kind, and
/// per kind a filter from a `patch x patch` window of one channel to `outputs` values.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterBank {
    pub patch: usize,
    pub outputs: usize,
    /// Gradient strength between the bands (ascending).
    pub strength_edges: [f32; STRENGTHS - 1],
    /// Coherence between the bands (ascending).
    pub coherence_edges: [f32; COHERENCES - 1],
    /// `[kind][tap][output]`; tap `dy * patch + dx`.
    pub weights: Vec<f32>,
}

/// The two banks: `double` maps each photo pixel's 7x7 window to its 2x2 block (kinds: `BUCKETS`,
/// sorted on the photo); `refine` then maps each doubled pixel's 5x5 window to that pixel again
/// (kinds: `BUCKETS x PHASES`, sorted on the doubled photo, the pixel's place in its block
/// included). The block means are matched to the photo after each.
#[derive(Clone, Debug, PartialEq)]
pub struct DoublingFilters {
    pub double: FilterBank,
    pub refine: FilterBank,
}

/// What sorts one pixel's neighbourhood: the smoothed gradient's angle band and its strength and
/// coherence (how much one direction dominates, 0-1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbourhood {
    pub angle: usize,
    pub strength: f32,
    pub coherence: f32,
}

static SHIPPED: OnceLock<std::result::Result<DoublingFilters, String>> = OnceLock::new();

impl FilterBank {
    /// A bank of `kinds` zero filters with the given thresholds (what a fit fills in).
    pub fn empty(patch: usize, outputs: usize, kinds: usize, edges: ([f32; STRENGTHS - 1], [f32; COHERENCES - 1])) -> Self {
        Self {
            patch,
            outputs,
            strength_edges: edges.0,
            coherence_edges: edges.1,
            weights: vec![0.0; kinds * patch * patch * outputs],
        }
    }

    pub fn taps(&self) -> usize {
        self.patch * self.patch
    }

    /// The kind of neighbourhood `n` (before any phase).
    pub fn bucket(&self, n: Neighbourhood) -> usize {
        let band = |v: f32, edges: &[f32]| edges.iter().filter(|&&e| e <= v).count();
        (n.angle * STRENGTHS + band(n.strength, &self.strength_edges)) * COHERENCES + band(n.coherence, &self.coherence_edges)
    }

    /// Filter `kind` applied to channel `c` of `image` around `(x, y)`, into `out`.
    fn apply(&self, kind: usize, image: &RgbImage, (x, y, c): (usize, usize, usize), window: &mut Vec<f32>, out: &mut [f32]) {
        gather_patch(image, (x, y, c), self.patch, window);
        let filter = &self.weights[kind * self.taps() * self.outputs..][..self.taps() * self.outputs];
        out.fill(0.0);
        // Tap by tap, the outputs side by side: one multiply-add across them each.
        for (v, taps) in window.iter().zip(filter.chunks_exact(self.outputs)) {
            for (o, weight) in out.iter_mut().zip(taps) {
                *o += v * weight;
            }
        }
    }

    fn to_tensors(&self, prefix: &str, file: &mut TensorFile) {
        let kinds = self.weights.len() / (self.taps() * self.outputs);
        let shape = vec![kinds, self.taps(), self.outputs];
        file.tensors.insert(format!("{prefix}.weights"), RawTensor::from_f32_as_f16(shape, &self.weights));
        file.tensors.insert(format!("{prefix}.strength_edges"), RawTensor::from_f32(vec![STRENGTHS - 1], &self.strength_edges));
        file.tensors
            .insert(format!("{prefix}.coherence_edges"), RawTensor::from_f32(vec![COHERENCES - 1], &self.coherence_edges));
    }

    fn from_tensors(file: &TensorFile, prefix: &str, shape: [usize; 3]) -> Result<Self> {
        let bad = |message: String| EngineError::Model(format!("doubling filters: {message}"));
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let name = format!("{prefix}.{name}");
            let raw = file.tensors.get(&name).ok_or_else(|| bad(format!("no tensor '{name}'")))?;
            if raw.shape != shape {
                return Err(bad(format!("'{name}' has shape {:?}, expected {shape:?}", raw.shape)));
            }
            Ok(raw.to_f32())
        };
        let edges = |name: &str| -> Result<[f32; 2]> {
            let values = tensor(name, &[2])?;
            if values[0] > values[1] {
                return Err(bad(format!("'{prefix}.{name}' is not ascending")));
            }
            Ok([values[0], values[1]])
        };
        Ok(Self {
            patch: if shape[1] == DOUBLE_PATCH * DOUBLE_PATCH { DOUBLE_PATCH } else { REFINE_PATCH },
            outputs: shape[2],
            strength_edges: edges("strength_edges")?,
            coherence_edges: edges("coherence_edges")?,
            weights: tensor("weights", &shape)?,
        })
    }
}

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
        if file.meta("format") != Some(FORMAT) {
            return Err(EngineError::Model(format!("doubling filters: no 'format: {FORMAT}' metadata")));
        }
        Ok(Self {
            double: FilterBank::from_tensors(file, "double", [BUCKETS, DOUBLE_PATCH * DOUBLE_PATCH, PHASES])?,
            refine: FilterBank::from_tensors(file, "refine", [BUCKETS * PHASES, REFINE_PATCH * REFINE_PATCH, 1])?,
        })
    }

    /// Stored as f16: the doubling changes by under 0.001 dB (the weights are near 0-1).
    pub fn to_file(&self) -> TensorFile {
        let mut file = TensorFile::default();
        self.double.to_tensors("double", &mut file);
        self.refine.to_tensors("refine", &mut file);
        file.metadata.insert("format".into(), FORMAT.into());
        file
    }

    /// Which fit these filters are: sha256 over both banks' thresholds and weights, first 16 hex
    /// digits. An adapter trained on a learned doubling records it (`AdapterMeta::doubling_filters`):
    /// a refit changes what the adapter sees.
    pub fn id(&self) -> String {
        let mut hasher = Sha256::new();
        for bank in [&self.double, &self.refine] {
            hasher.update(format!("{} {}", bank.patch, bank.outputs).as_bytes());
            for v in bank.strength_edges.iter().chain(&bank.coherence_edges).chain(&bank.weights) {
                hasher.update(v.to_le_bytes());
            }
        }
        short_hash(hasher)
    }

    /// `low` doubled in each side: both banks, the block means matched to `low`.
    pub fn double(&self, low: &RgbImage) -> RgbImage {
        self.refine.refine_doubled(&self.double.double_photo(low), low)
    }
}

impl FilterBank {
    /// A doubling bank on `low`: each pixel's window to its 2x2 block, the block means matched.
    pub fn double_photo(&self, low: &RgbImage) -> RgbImage {
        let (w, h) = (low.width, low.height);
        let mut high = RgbImage::new(w * 2, h * 2);
        let sorted = neighbourhoods(low);
        let (mut window, mut block) = (Vec::new(), [0f32; PHASES]);
        for y in 0..h {
            for x in 0..w {
                let kind = self.bucket(sorted[y * w + x]);
                for c in 0..3 {
                    self.apply(kind, low, (x, y, c), &mut window, &mut block);
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

    /// A refining bank on `high` (a doubling of `low`): each pixel's window to that pixel, the
    /// block means matched to `low`.
    pub fn refine_doubled(&self, high: &RgbImage, low: &RgbImage) -> RgbImage {
        let mut out = RgbImage::new(high.width, high.height);
        let sorted = neighbourhoods(high);
        let (mut window, mut value) = (Vec::new(), [0f32; 1]);
        for y in 0..high.height {
            for x in 0..high.width {
                let kind = refine_kind(self, sorted[y * high.width + x], x, y);
                for c in 0..3 {
                    self.apply(kind, high, (x, y, c), &mut window, &mut value);
                    out.data[(y * high.width + x) * 3 + c] = value[0];
                }
            }
        }
        match_block_means(&mut out, low);
        out
    }
}

/// The refining bank's kind for the doubled pixel `(x, y)`: its neighbourhood and its place in
/// its 2x2 block.
pub fn refine_kind(bank: &FilterBank, n: Neighbourhood, x: usize, y: usize) -> usize {
    bank.bucket(n) * PHASES + (y % 2) * 2 + x % 2
}

/// The `patch x patch` values of channel `c` around `(x, y)`, edges repeated, into `window`.
pub fn gather_patch(image: &RgbImage, (x, y, c): (usize, usize, usize), patch: usize, window: &mut Vec<f32>) {
    let r = (patch / 2) as isize;
    window.clear();
    for dy in 0..patch {
        let sy = (y as isize + dy as isize - r).clamp(0, image.height as isize - 1) as usize;
        for dx in 0..patch {
            let sx = (x as isize + dx as isize - r).clamp(0, image.width as isize - 1) as usize;
            window.push(image.data[(sy * image.width + sx) * 3 + c]);
        }
    }
}

/// Each pixel's neighbourhood kind, from the luma's gradients averaged over a 5x5 Gaussian
/// window (the structure tensor): its main direction, the larger eigenvalue's root and the gap
/// between the two roots over their sum.
pub fn neighbourhoods(low: &RgbImage) -> Vec<Neighbourhood> {
    let (w, h) = (low.width, low.height);
    let luma = low.luma();
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
        let filters = DoublingFilters::shipped().unwrap();
        let (learned, first_bank) = (filters.double(&low), filters.double.double_photo(&low));
        let lanczos = first_pass_double(&low);
        let (gain, shrunk) = (psnr(&learned, &photo) - psnr(&lanczos, &photo), learned.box_halved());
        assert!(gain > 0.3, "learned doubling gains {gain:.3} dB over Lanczos-3");
        let refined = psnr(&learned, &photo) - psnr(&first_bank, &photo);
        assert!(refined > 0.05, "the refining bank gains {refined:.3} dB");
        // Only where clamping to [0, 1] cuts a block's overshoot does a mean move.
        let moved = low.data.iter().zip(&shrunk.data).map(|(l, s)| (l - s).abs()).sum::<f32>() / low.data.len() as f32;
        assert!(moved < 1e-3, "block means moved by {moved} on average");
    }

    #[test]
    fn a_file_round_trips_and_a_wrong_one_is_refused() {
        let filters = DoublingFilters::shipped().unwrap();
        let again = DoublingFilters::from_file(&TensorFile::parse(&filters.to_file().to_bytes().unwrap()).unwrap()).unwrap();
        assert_eq!(&again, filters);
        assert_eq!(again.id(), filters.id());
        let mut refit = again.clone();
        refit.refine.weights[7] += 1e-3;
        assert_ne!(refit.id(), filters.id(), "a refit has another id");
        let mut wrong = filters.to_file();
        wrong.tensors.insert("refine.weights".into(), RawTensor::from_f32(vec![BUCKETS, 25], &vec![0.0; BUCKETS * 25]));
        assert!(DoublingFilters::from_file(&wrong).unwrap_err().to_string().contains("shape"));
        let mut unsorted = filters.to_file();
        unsorted.tensors.insert("double.strength_edges".into(), RawTensor::from_f32(vec![2], &[0.5, 0.1]));
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
