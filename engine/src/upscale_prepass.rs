//! The upscale tool's classical first pass, which its adapter then refines (as denoise refines
//! its DCT shrinkage): the photo doubled with Lanczos-3, then each 2x2 block shifted so that its
//! mean is the photo's pixel. A camera's pixel is about the mean of the light over its area, so
//! the doubled photo, shrunk by block means, should give the photo back; the shift is the
//! smallest change (in squared error) that makes it so.
//!
//! Measured with `--example upscale_prepass` on 15 training photos (2x2 block means of each,
//! rounded to 8 bits, doubled again): Catmull-Rom 32.11 dB, Lanczos-3 32.44, Lanczos-3 with the
//! block means matched 32.75; back-projection rounds (Irani and Peleg, the miss doubled by
//! Catmull-Rom or by a triangle filter) gained less than the one matching step, and added nothing
//! before it.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::imageio::RgbImage;
use crate::learned_doubling::DoublingFilters;

/// How an enlarging tool's input is resized before its model runs: part of the adapter's
/// metadata, because an adapter is trained for one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsampling {
    /// Catmull-Rom at any scale (the shipped model's upscaler).
    #[default]
    CatmullRom,
    /// `first_pass_double`: doubling only.
    BlockMatched,
    /// `DoublingFilters::shipped`, the block means matched: doubling only.
    Learned,
}

impl Upsampling {
    /// Its name in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Upsampling::CatmullRom => "Catmull-Rom",
            Upsampling::BlockMatched => "Lanczos-3 with the 2x2 block means matched",
            Upsampling::Learned => "learned filters with the 2x2 block means matched",
        }
    }

    /// The scales this way of resizing serves.
    pub fn serves(self, scale: u32) -> bool {
        match self {
            Upsampling::CatmullRom => true,
            Upsampling::BlockMatched | Upsampling::Learned => scale == 2,
        }
    }

    /// `image` enlarged `scale` times in each side (`scale` as `serves` allows).
    pub fn enlarge(self, image: &RgbImage, scale: usize) -> Result<RgbImage> {
        Ok(match self {
            _ if scale == 1 => image.clone(),
            Upsampling::BlockMatched if scale == 2 => first_pass_double(image),
            Upsampling::Learned if scale == 2 => DoublingFilters::shipped()?.double(image),
            _ => image.resized(image.width * scale, image.height * scale),
        })
    }

    /// The model's output `high` for the input `low` made final: block-matched, each pixel is
    /// first kept inside the range of the photo's pixels around it (`clamp_to_photo_range`), then
    /// the output keeps the photo's block means as its input did (the model's residual moves them
    /// a little).
    pub fn finish(self, high: &mut RgbImage, low: &RgbImage, scale: usize) {
        if self != Upsampling::CatmullRom && scale == 2 {
            clamp_to_photo_range(high, low);
            match_block_means(high, low);
        }
    }
}

/// `low` doubled in each side: Lanczos-3, its block means matched to `low`.
pub fn first_pass_double(low: &RgbImage) -> RgbImage {
    let mut high = lanczos_resized(low, low.width * 2, low.height * 2);
    match_block_means(&mut high, low);
    high
}

/// Shifts each 2x2 block of `high` so its mean is `low`'s pixel there (then clamps to [0, 1]):
/// `high`, shrunk by block means, gives `low` back.
pub fn match_block_means(high: &mut RgbImage, low: &RgbImage) {
    let shrunk = high.box_halved();
    for y in 0..high.height.min(low.height * 2) {
        for x in 0..high.width.min(low.width * 2) {
            for c in 0..3 {
                let small = ((y / 2) * low.width + x / 2) * 3 + c;
                let v = &mut high.data[(y * high.width + x) * 3 + c];
                *v = (*v + low.data[small] - shrunk.data[small]).clamp(0.0, 1.0);
            }
        }
    }
}

/// Keeps each pixel of the doubled `high` inside the range (per channel) of `low`'s 3x3 pixels
/// around the one it doubles. A sharp edge makes a linear doubling, and the model after it,
/// overshoot into a light or dark fringe the photo cannot hold: its pixels there are means over
/// areas on either side. Measured on the eval's 15 held-out upscales (the round-10 model's
/// output, 8-bit, then the block means matched): 32.83 -> 32.88 dB; the monarch's wing veins
/// lose their white outline (+0.43 dB on the first pass alone). A 2x2 range, or clamping and
/// matching twice, gained less.
pub fn clamp_to_photo_range(high: &mut RgbImage, low: &RgbImage) {
    let (w, h) = (low.width, low.height);
    if w == 0 || h == 0 {
        return;
    }
    for y in 0..high.height.min(h * 2) {
        let rows = (y / 2).saturating_sub(1)..=(y / 2 + 1).min(h - 1);
        for x in 0..high.width.min(w * 2) {
            let columns = (x / 2).saturating_sub(1)..=(x / 2 + 1).min(w - 1);
            for c in 0..3 {
                let (mut least, mut most) = (f32::INFINITY, f32::NEG_INFINITY);
                for j in rows.clone() {
                    for i in columns.clone() {
                        let v = low.data[(j * w + i) * 3 + c];
                        least = least.min(v);
                        most = most.max(v);
                    }
                }
                let v = &mut high.data[(y * high.width + x) * 3 + c];
                *v = v.clamp(least, most);
            }
        }
    }
}

fn lanczos_resized(image: &RgbImage, w: usize, h: usize) -> RgbImage {
    let buffer = image::Rgb32FImage::from_raw(image.width as u32, image.height as u32, image.data.clone());
    // from_raw fails only when data.len() != width * height * 3, which every RgbImage upholds.
    let Some(buffer) = buffer else { return RgbImage::new(w, h) };
    let resized = image::imageops::resize(&buffer, w as u32, h as u32, image::imageops::FilterType::Lanczos3);
    RgbImage { width: w, height: h, data: resized.into_raw() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: usize, h: usize) -> RgbImage {
        let data = (0..w * h * 3).map(|i| 0.2 + 0.6 * ((i * 37) % 101) as f32 / 100.0).collect();
        RgbImage { width: w, height: h, data }
    }

    fn max_gap(a: &RgbImage, b: &RgbImage) -> f32 {
        a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn the_doubled_photo_shrinks_back_to_the_photo() {
        // Values in [0.2, 0.8]: Lanczos' overshoot stays inside [0, 1], so nothing is clamped.
        let low = pattern(9, 6);
        let high = first_pass_double(&low);
        assert_eq!((high.width, high.height), (18, 12));
        assert!(max_gap(&high.box_halved(), &low) < 1e-5);
        // Without the matching step it does not.
        assert!(max_gap(&lanczos_resized(&low, 18, 12).box_halved(), &low) > 0.05);
    }

    #[test]
    fn matching_is_closer_to_a_photo_than_the_plain_doubling() {
        // A smooth photo with a sharp edge, shrunk by block means: the matched doubling is nearer.
        let (w, h) = (32, 24);
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let v = if x + 0.5 * y > 19.0 { 0.8 } else { 0.25 + 0.01 * x };
                [v, v * 0.9, 0.5]
            })
            .collect();
        let photo = RgbImage { width: w, height: h, data };
        let low = photo.box_halved();
        let error = |high: &RgbImage| high.data.iter().zip(&photo.data).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
        assert!(error(&first_pass_double(&low)) < error(&lanczos_resized(&low, w, h)));
    }

    #[test]
    fn finishing_takes_out_most_of_an_overshoot_and_keeps_the_block_means() {
        // A step from dark to light, doubled with a fringe past either side of it.
        let (w, h) = (8, 4);
        let low =
            RgbImage { width: w, height: h, data: (0..w * h * 3).map(|i| if (i / 3) % w < 4 { 0.2 } else { 0.7 }).collect() };
        let mut high = first_pass_double(&low);
        for (x, v) in [(6, 0.05), (7, 0.1), (8, 0.85), (9, 0.95)] {
            for y in 0..8 {
                high.data[(y * 16 + x) * 3] = v;
            }
        }
        let outside = |image: &RgbImage| image.data.iter().map(|v| (0.2 - v).max(v - 0.7).max(0.0)).sum::<f32>();
        let mut matched_only = high.clone();
        match_block_means(&mut matched_only, &low);
        Upsampling::Learned.finish(&mut high, &low, 2);
        assert!(outside(&high) < 0.5 * outside(&matched_only), "{} against {}", outside(&high), outside(&matched_only));
        assert!(max_gap(&high.box_halved(), &low) < 1e-5);
        // Catmull-Rom's output (the shipped adapter's) is left as the model made it.
        let mut plain = low.resized(16, 8);
        plain.data[0] = 0.95;
        Upsampling::CatmullRom.finish(&mut plain, &low, 2);
        assert_eq!(plain.data[0], 0.95);
    }

    #[test]
    fn a_flat_photo_stays_flat() {
        let low = RgbImage { width: 5, height: 3, data: vec![0.4; 45] };
        assert!(first_pass_double(&low).data.iter().all(|v| (v - 0.4).abs() < 1e-5));
    }
}
