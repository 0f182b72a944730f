//! Tool settings: numbers the user sets for a tool (or the engine estimates), folded into the
//! model's input before it runs. A UNet sees a window of the photo, and some things no window
//! tells: how dark the whole shot is, how large the blur is. Each tool's metadata names the
//! setting it takes (`AdapterMeta::setting`), and its adapter is trained on inputs prepared the
//! same way.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::imageio::RgbImage;

/// What a tool asks the user for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolSetting {
    /// Stops to brighten the input by (a night shot); estimated from the photo when not set.
    Exposure,
    /// The blur's size in pixels (a Gaussian's sigma); the input is unsharp-masked at it first.
    /// The default when not set is `DEFAULT_BLUR_SIZE` (the shipped model's sharpen).
    BlurSize,
    /// The blur's size in pixels, as `BlurSize`; the input is deconvolved at it first
    /// (`deblur_prepass`). Estimated from the photo when not set.
    DeblurSize,
    /// The noise's standard deviation in 8-bit levels (of 255); the input is DCT-shrunk at it
    /// first (`denoise_prepass`). Estimated from the photo when not set.
    NoiseLevel,
}

impl ToolSetting {
    /// Its name in messages.
    pub fn describe(self) -> &'static str {
        match self {
            ToolSetting::Exposure => "exposure (stops)",
            ToolSetting::BlurSize | ToolSetting::DeblurSize => "blur size (pixels)",
            ToolSetting::NoiseLevel => "noise level (of 255)",
        }
    }

    /// The values a job may ask for.
    pub fn range(self) -> std::ops::RangeInclusive<f32> {
        match self {
            ToolSetting::Exposure => EXPOSURE_RANGE,
            ToolSetting::BlurSize | ToolSetting::DeblurSize => BLUR_SIZE_RANGE,
            ToolSetting::NoiseLevel => NOISE_LEVEL_RANGE,
        }
    }
}

/// The exposure range a job may ask for, in stops.
pub const EXPOSURE_RANGE: std::ops::RangeInclusive<f32> = -4.0..=8.0;
/// The most `auto_exposure` brightens: a black frame has no exposure to find.
pub const MAX_AUTO_EXPOSURE: f32 = 6.0;
/// Where a normally exposed photo's highlights start: the 99.5th percentile of each pixel's largest
/// channel after a 3x3 mean (which keeps noise from posing as highlight). The median over 512-px
/// crops of the training photos is 0.988; on them, darkened and noised as training does, the
/// estimate is off by 0.11 stops (median) and 0.34 (90th percentile).
const NORMAL_HIGHLIGHT: f32 = 0.988;
/// The blur sizes a job may ask for, in pixels.
pub const BLUR_SIZE_RANGE: std::ops::RangeInclusive<f32> = 0.3..=8.0;
/// The noise levels a job may ask for, in 8-bit levels (0 leaves the pre-pass out).
pub const NOISE_LEVEL_RANGE: std::ops::RangeInclusive<f32> = 0.0..=100.0;
/// The blur size of an unsharp-masking tool (`BlurSize`) when the user has not set one: the middle
/// of what the shipped sharpen is trained on.
pub const DEFAULT_BLUR_SIZE: f32 = 1.5;

/// The stops that bring a dark photo to a normal exposure: its highlights up to where a normally
/// exposed photo has them (`NORMAL_HIGHLIGHT`). Between 0 and `MAX_AUTO_EXPOSURE`; a photo that is
/// already bright gets 0.
pub fn auto_exposure(image: &RgbImage) -> f32 {
    let (w, h) = (image.width, image.height);
    if w == 0 || h == 0 {
        return 0.0;
    }
    let mut brightest = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0f32; 3];
            let mut count = 0.0;
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let p = &image.data[(ny * w + nx) * 3..][..3];
                    sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
                    count += 1.0;
                }
            }
            brightest.push(sum[0].max(sum[1]).max(sum[2]) / count);
        }
    }
    let at = (brightest.len() - 1) * 995 / 1000;
    let (_, highlight, _) = brightest.select_nth_unstable_by(at, f32::total_cmp);
    let gain = NORMAL_HIGHLIGHT / highlight.max(f32::MIN_POSITIVE);
    gain.log2().clamp(0.0, MAX_AUTO_EXPOSURE)
}

/// `image` brightened by `stops` (times 2^stops), clipped to white as a camera would.
pub fn expose(image: &RgbImage, stops: f32) -> RgbImage {
    let gain = stops.exp2();
    RgbImage { width: image.width, height: image.height, data: image.data.iter().map(|v| (v * gain).min(1.0)).collect() }
}

/// Separable Gaussian blur, edges clamped.
pub fn gaussian_blur(image: &RgbImage, sigma: f32) -> RgbImage {
    RgbImage {
        width: image.width,
        height: image.height,
        data: blur_interleaved(&image.data, image.width, image.height, 3, sigma),
    }
}

/// `gaussian_blur` of `channels` interleaved channels (one: a plane), rows in parallel.
pub(crate) fn blur_interleaved(data: &[f32], w: usize, h: usize, channels: usize, sigma: f32) -> Vec<f32> {
    if w == 0 || h == 0 || channels == 0 {
        return data.to_vec();
    }
    let weights = gaussian_weights(sigma);
    let radius = (weights.len() / 2) as isize;
    let pass = |src: &[f32], dx: isize, dy: isize| {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(w * channels).enumerate().for_each(|(y, row)| {
            for (x, pixel) in row.chunks_exact_mut(channels).enumerate() {
                for (k, weight) in (-radius..=radius).zip(&weights) {
                    let sx = (x as isize + k * dx).clamp(0, w as isize - 1) as usize;
                    let sy = (y as isize + k * dy).clamp(0, h as isize - 1) as usize;
                    let source = &src[(sy * w + sx) * channels..][..channels];
                    pixel.iter_mut().zip(source).for_each(|(a, v)| *a += v * weight);
                }
            }
        });
        out
    };
    pass(&pass(data, 1, 0), 0, 1)
}

/// The blur's taps, from `-radius` to `radius` (3 sigma, at least 1), summing to one: the kernel
/// the sharpen tool's examples are blurred with and its deconvolution undoes.
pub fn gaussian_weights(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let weights: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// Unsharp masking at `sigma`, amount 1 (`2x - blur(x)`, clipped): a first step towards undoing a
/// blur of that size, which the sharpen tool finishes.
pub fn unsharp(image: &RgbImage, sigma: f32) -> RgbImage {
    let blurred = gaussian_blur(image, sigma);
    let data = image.data.iter().zip(&blurred.data).map(|(v, b)| (2.0 * v - b).clamp(0.0, 1.0)).collect();
    RgbImage { width: image.width, height: image.height, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_exposure_lifts_the_highlights_to_a_normal_photos() {
        // Rows of a ramp (so the 3x3 mean changes nothing inside) whose brightest half percent
        // starts where a normal photo's does, then darkened by two stops.
        let row: Vec<f32> = (0..1000).map(|i| i as f32 / 999.0 * NORMAL_HIGHLIGHT / 0.995).collect();
        let ramp: Vec<f32> = (0..10).flat_map(|_| row.iter().flat_map(|&v| [v * 0.2, v, v * 0.5])).collect();
        let normal = RgbImage { width: 1000, height: 10, data: ramp };
        assert!(auto_exposure(&normal).abs() < 0.01);
        let dark = RgbImage { data: normal.data.iter().map(|v| v / 4.0).collect(), ..normal.clone() };
        assert!((auto_exposure(&dark) - 2.0).abs() < 0.01, "{}", auto_exposure(&dark));
        let black = RgbImage::new(8, 8);
        assert_eq!(auto_exposure(&black), MAX_AUTO_EXPOSURE);
        let white = RgbImage { width: 8, height: 8, data: vec![1.0; 192] };
        assert_eq!(auto_exposure(&white), 0.0);
        let exposed = expose(&dark, 2.0);
        assert!(exposed.data.iter().zip(&normal.data).all(|(a, b)| (a - b).abs() < 1e-6));
        assert_eq!(expose(&normal, 1.0).data.iter().copied().fold(0f32, f32::max), 1.0, "clipped to white");
    }

    #[test]
    fn unsharp_masking_undoes_part_of_a_blur() {
        let image = crate::fixtures::synthetic_photo(64, 64, 3);
        let blurred = gaussian_blur(&image, 1.5);
        let error = |a: &RgbImage| a.data.iter().zip(&image.data).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
        let (before, after) = (error(&blurred), error(&unsharp(&blurred, 1.5)));
        assert!(after < 0.85 * before, "{after} vs {before}");
        let flat = RgbImage { width: 9, height: 7, data: vec![0.4; 189] };
        assert!(gaussian_blur(&flat, 2.0).data.iter().all(|v| (v - 0.4).abs() < 1e-5), "weights sum to one");
    }
}
