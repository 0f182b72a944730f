//! Which photos a tool is for. Colorize turns a grey photo into a colour one; on a photo that
//! already has its colours it has nothing to do, and a request like "make it a greyscale image"
//! must not reach it because its description talks about black and white. A tool says so in its
//! metadata (`fits`), and the router leaves it out for a photo it does not fit.

use serde::{Deserialize, Serialize};

use crate::imageio::RgbImage;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoFit {
    /// Any photo.
    #[default]
    Any,
    /// Photos without colour of their own: grey, or one tone (a sepia print).
    Grey,
}

/// Colour that brightness does not explain, below which a photo counts as grey or one tone. A
/// black-and-white or sepia scan measures 0-0.001; of the 181 colour photos of the training and
/// held-out sets, the least colourful measure 0.013 (a wood grain) and 0.019.
pub const GREY_COLOUR_LEFT: f32 = 0.01;

impl PhotoFit {
    pub fn admits(self, photo: &RgbImage) -> bool {
        match self {
            PhotoFit::Any => true,
            PhotoFit::Grey => colour_beyond_tone(photo) < GREY_COLOUR_LEFT,
        }
    }
}

/// Pixels read at most (evenly spaced): enough for a statistic of the whole photo, and quick on
/// a 12 MP one.
const SAMPLED_PIXELS: usize = 1 << 16;

/// RMS of the colour (R−G, B−G) that brightness does not explain: what is left after the best
/// straight-line fit of each against luma. 0 for a grey photo or a toned monochrome (sepia),
/// large for a photo whose colours vary with what is in it.
pub fn colour_beyond_tone(photo: &RgbImage) -> f32 {
    let step = (photo.data.len() / 3 / SAMPLED_PIXELS).max(1);
    let pixels: Vec<[f32; 3]> = photo.data.chunks_exact(3).step_by(step).map(|p| [p[0], p[1], p[2]]).collect();
    let lumas: Vec<f32> = pixels.iter().map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).collect();
    let red = unexplained_by(&lumas, pixels.iter().map(|p| p[0] - p[1]));
    let blue = unexplained_by(&lumas, pixels.iter().map(|p| p[2] - p[1]));
    (red + blue).sqrt()
}

/// Mean squared residual of `values` after the least-squares line through them against `x`.
fn unexplained_by(x: &[f32], values: impl Iterator<Item = f32>) -> f32 {
    let values: Vec<f32> = values.collect();
    let n = x.len().max(1) as f32;
    let (mx, mv) = (x.iter().sum::<f32>() / n, values.iter().sum::<f32>() / n);
    let sxx: f32 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let sxv: f32 = x.iter().zip(&values).map(|(a, v)| (a - mx) * (v - mv)).sum();
    let slope = if sxx > 1e-9 { sxv / sxx } else { 0.0 };
    x.iter().zip(&values).map(|(a, v)| (v - mv - slope * (a - mx)).powi(2)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::synthetic_photo;

    fn per_pixel(photo: &RgbImage, f: impl Fn([f32; 3]) -> [f32; 3]) -> RgbImage {
        let data = photo.data.chunks_exact(3).flat_map(|p| f([p[0], p[1], p[2]])).collect();
        RgbImage { width: photo.width, height: photo.height, data }
    }

    #[test]
    fn grey_and_sepia_photos_fit_a_grey_tool_and_a_colour_photo_does_not() {
        let colour = synthetic_photo(64, 48, 3);
        let grey = per_pixel(&colour, |p| [0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; 3]);
        let sepia = per_pixel(&grey, |[y, _, _]| [y * 1.07 + 0.05, y * 0.95 + 0.02, y * 0.75]);
        // A grey photo with chroma noise of one step in 255 (as an 8-bit or JPEG file has).
        let mut noisy = grey.clone();
        for (i, p) in noisy.data.chunks_exact_mut(3).enumerate() {
            let step = if (i * 7919) % 3 == 0 { 1.0 / 255.0 } else { -1.0 / 255.0 };
            p[0] += step;
            p[2] -= step;
        }
        for photo in [&grey, &sepia, &noisy] {
            assert!(PhotoFit::Grey.admits(photo), "colour left {}", colour_beyond_tone(photo));
        }
        assert!(!PhotoFit::Grey.admits(&colour), "colour left {}", colour_beyond_tone(&colour));
        assert!(PhotoFit::Any.admits(&colour));
    }
}
