//! Agreement between two results of the same edit (int8 vs float): PSNR and SSIM inside and
//! outside the mask, and a difference heatmap. Written here rather than taken from a crate
//! because the measures must be split by the user's mask, which the SSIM crates do not offer.

use prism_engine::imageio::RgbImage;

use super::mask::MaskLayer;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// None when the region has no pixels (no mask painted: everything is "outside").
    pub psnr_inside: Option<f64>,
    pub psnr_outside: Option<f64>,
    pub ssim_inside: Option<f64>,
    pub ssim_outside: Option<f64>,
    /// Largest absolute difference of one channel, in 0..255 steps.
    pub max_difference: f64,
}

/// PSNR in dB of two images over the pixels `keep` selects (capped at 99 dB for identical ones).
fn psnr(a: &RgbImage, b: &RgbImage, keep: &dyn Fn(usize) -> bool) -> Option<f64> {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for p in (0..a.width * a.height).filter(|&p| keep(p)) {
        for c in 0..3 {
            let d = f64::from(a.data[p * 3 + c] - b.data[p * 3 + c]);
            sum += d * d;
        }
        count += 3;
    }
    (count > 0).then(|| if sum == 0.0 { 99.0 } else { (10.0 * (count as f64 / sum).log10()).min(99.0) })
}

fn luma(image: &RgbImage) -> Vec<f64> {
    image.data.chunks_exact(3).map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])).collect()
}

/// Mean SSIM of 8x8 luma windows (stride 4) whose centre `keep` selects.
fn ssim(a: &[f64], b: &[f64], width: usize, height: usize, keep: &dyn Fn(usize) -> bool) -> Option<f64> {
    const WINDOW: usize = 8;
    const C1: f64 = 0.01 * 0.01;
    const C2: f64 = 0.03 * 0.03;
    let (mut total, mut windows) = (0.0, 0usize);
    let mut y = 0;
    while y + WINDOW <= height {
        let mut x = 0;
        while x + WINDOW <= width {
            if keep((y + WINDOW / 2) * width + x + WINDOW / 2) {
                let n = (WINDOW * WINDOW) as f64;
                let (mut ma, mut mb) = (0.0, 0.0);
                for yy in y..y + WINDOW {
                    for xx in x..x + WINDOW {
                        ma += a[yy * width + xx];
                        mb += b[yy * width + xx];
                    }
                }
                ma /= n;
                mb /= n;
                let (mut va, mut vb, mut cov) = (0.0, 0.0, 0.0);
                for yy in y..y + WINDOW {
                    for xx in x..x + WINDOW {
                        let (da, db) = (a[yy * width + xx] - ma, b[yy * width + xx] - mb);
                        va += da * da;
                        vb += db * db;
                        cov += da * db;
                    }
                }
                let (va, vb, cov) = (va / (n - 1.0), vb / (n - 1.0), cov / (n - 1.0));
                total += ((2.0 * ma * mb + C1) * (2.0 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
                windows += 1;
            }
            x += WINDOW / 2;
        }
        y += WINDOW / 2;
    }
    (windows > 0).then(|| total / windows as f64)
}

/// Compares `a` and `b` (same size) inside and outside `mask` (painted = at least half).
pub fn agreement(a: &RgbImage, b: &RgbImage, mask: Option<&MaskLayer>) -> Agreement {
    let fits = mask.filter(|m| (m.width, m.height) == (a.width, a.height) && !m.is_empty());
    let inside = |p: usize| fits.is_some_and(|m| m.data[p] >= 128);
    let outside = |p: usize| !inside(p);
    let (la, lb) = (luma(a), luma(b));
    let max_difference = a.data.iter().zip(&b.data).map(|(x, y)| f64::from((x - y).abs())).fold(0.0, f64::max) * 255.0;
    Agreement {
        psnr_inside: fits.and_then(|_| psnr(a, b, &inside)),
        psnr_outside: psnr(a, b, &outside),
        ssim_inside: fits.and_then(|_| ssim(&la, &lb, a.width, a.height, &inside)),
        ssim_outside: ssim(&la, &lb, a.width, a.height, &outside),
        max_difference,
    }
}

/// |a - b| as a heatmap (black = equal, through red and yellow to white = `full_scale` or more),
/// RGBA bytes of `a`'s size. `full_scale` is in 0..1 units; a few 255ths shows int8 rounding.
pub fn difference_heatmap(a: &RgbImage, b: &RgbImage, full_scale: f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.width * a.height * 4);
    for (pa, pb) in a.data.chunks_exact(3).zip(b.data.chunks_exact(3)) {
        let d = pa.iter().zip(pb).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        let t = (d / full_scale.max(1e-6)).clamp(0.0, 1.0);
        let channel = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        out.extend_from_slice(&[channel(t * 3.0), channel(t * 3.0 - 1.0), channel(t * 3.0 - 2.0), 255]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize) -> RgbImage {
        let mut image = RgbImage::new(width, height);
        for (i, v) in image.data.iter_mut().enumerate() {
            *v = ((i * 7) % 97) as f32 / 97.0;
        }
        image
    }

    #[test]
    fn identical_images_agree_perfectly() {
        let a = ramp(32, 24);
        let result = agreement(&a, &a, None);
        assert_eq!(result.psnr_outside, Some(99.0));
        assert!(result.psnr_inside.is_none());
        assert!((result.ssim_outside.unwrap_or(0.0) - 1.0).abs() < 1e-9);
        assert_eq!(result.max_difference, 0.0);
    }

    #[test]
    fn a_change_inside_the_mask_shows_inside_only() {
        let a = ramp(32, 32);
        let mut b = a.clone();
        let mut mask = MaskLayer::new(32, 32);
        mask.fill_rect((0.0, 0.0), (16.0, 32.0), false);
        for y in 0..32 {
            for x in 0..16 {
                b.data[(y * 32 + x) * 3] += 0.1;
            }
        }
        let result = agreement(&a, &b, Some(&mask));
        let inside = result.psnr_inside.unwrap_or(f64::NAN);
        // One channel of three off by 0.1: MSE = 0.01 / 3, PSNR = 24.77 dB.
        assert!((inside - 24.77).abs() < 0.05, "{inside}");
        assert_eq!(result.psnr_outside, Some(99.0));
        assert!(result.ssim_inside.unwrap_or(1.0) < result.ssim_outside.unwrap_or(0.0));
        assert!((result.max_difference - 25.5).abs() < 0.01);
        let heat = difference_heatmap(&a, &b, 0.1);
        assert_eq!(&heat[..4], &[255, 255, 255, 255]);
        assert_eq!(&heat[16 * 4..16 * 4 + 4], &[0, 0, 0, 255]);
    }
}
