//! What the model sees where it is asked to fill (object removal): nothing, or a smooth first
//! guess spread in from the hole's border that the model then refines.
//!
//! The smooth guess is push-pull interpolation: average the known pixels down an image pyramid
//! until every cell has some, then come back up, each level filling its unknown part from the
//! coarser level's bilinear upsampling. A hole's middle gets the mean of a wide surrounding, its
//! border the colours just outside it: a good start that the network no longer has to paint from
//! zero, in time linear in the pixels.
//!
//! The harmonic guess goes on from there: on the way back up, each level's unknown cells are
//! relaxed (successive over-relaxation) towards the mean of their four neighbours, which converges
//! to the membrane that meets the hole's border everywhere: no seam, gradients that run across a
//! thin stroke instead of a blurred average of a wide ring. The coarser levels give each finer one
//! a start that is already close, so a fixed number of sweeps per level settles holes of any size.

use serde::{Deserialize, Serialize};

use crate::imageio::RgbImage;

/// How the model's input shows the pixels hidden from it; part of the model's config, because a
/// model is trained for one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum HoleFill {
    /// Zero (mid-grey in the model's [-1, 1] range): the model paints the whole fill.
    #[default]
    Blank,
    /// Push-pull interpolation from the hole's surroundings: the model paints a correction.
    Smooth,
    /// Push-pull relaxed to the harmonic interpolant of the hole's border (closer to the photo
    /// than push-pull: 22.8 against 22.0 dB on the eval's strokes, where OpenCV's FSR scores 22.7).
    Harmonic,
}

impl HoleFill {
    pub fn is_blank(&self) -> bool {
        *self == HoleFill::Blank
    }

    /// `fill`, a model's refinement of this guess for the `hidden` pixels of `photo`, moved inside
    /// the hole [`PLATE_SHARE`] of the way from the guess to the thin plate ([`biharmonic_fill`]):
    /// the border's gradients carried a little way in, which the models here do not learn to add
    /// (v2's fill stays within 0.03 dB of its harmonic guess). A model that paints blank holes
    /// keeps its own fill.
    pub fn toward_thin_plate(self, fill: &RgbImage, photo: &RgbImage, hidden: &[bool], share: f32) -> RgbImage {
        let Some(guess) = self.fill(photo, hidden) else { return fill.clone() };
        if share == 0.0 {
            return fill.clone();
        }
        let plate = biharmonic_fill(photo, hidden);
        let mut out = fill.clone();
        for (i, _) in hidden.iter().enumerate().filter(|(_, h)| **h) {
            for k in i * 3..i * 3 + 3 {
                out.data[k] = (out.data[k] + share * (plate.data[k] - guess.data[k])).clamp(0.0, 1.0);
            }
        }
        out
    }

    /// `image` with its `hidden` pixels filled this way; `None` for a blank fill (the model's
    /// input zeroes them instead).
    pub fn fill(self, image: &RgbImage, hidden: &[bool]) -> Option<RgbImage> {
        match self {
            HoleFill::Blank => None,
            HoleFill::Smooth => Some(smooth_fill(image, hidden)),
            HoleFill::Harmonic => Some(harmonic_fill(image, hidden)),
        }
    }
}

/// How far a refined fill moves towards the thin plate (`HoleFill::toward_thin_plate`). Chosen on 16
/// training photos' removals (strokes and objects; `--example fill_detail DIR --plate SHARE`) with
/// the detail at gain 1.8: v2's fill 19.43 dB in the mask, sharpness 0.53; a quarter of the way
/// 19.50 dB, 0.55; 0.35 19.49, 0.57; a half 19.44, 0.58 (without the detail all three 19.90-19.92 dB
/// against the fill's 19.74). More would cost on objects, where the thin plate overshoots in the
/// middle: the exact solve halfway scored 17.68 dB on them against the harmonic guess's 17.91.
pub const PLATE_SHARE: f32 = 0.25;

/// Sweeps of over-relaxation per pyramid level for the harmonic fill, and the over-relaxation
/// factor. Measured on the eval's strokes (10-20 px): 30 sweeps at 1.8 reach the converged PSNR
/// from push-pull's start at full resolution alone; the coarser levels make wide holes as quick.
const SWEEPS_PER_LEVEL: usize = 40;
const OVER_RELAXATION: f32 = 1.8;
/// The same for the thin-plate fill. Its 13-point relaxation settles slowly at full resolution,
/// but the share a removal takes of it (`PLATE_SHARE`) needs little: on 16 training photos' removals
/// (strokes and objects, the fill then given the detail at gain 1.8) 10 sweeps scored 19.47 dB in
/// the mask, 50 19.50, 1000 19.53 and the exact solve (scikit-image) 19.54, at 0.05, 0.17 and
/// 2 s a removal.
const PLATE_SWEEPS_PER_LEVEL: usize = 50;
const PLATE_OVER_RELAXATION: f32 = 1.8;

/// What each pyramid level's unknown cells are relaxed towards on the way up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relaxation {
    /// Nothing: push-pull as it is.
    None,
    /// The membrane (Laplace's equation: each cell the mean of its four neighbours).
    Membrane,
    /// The thin plate (the biharmonic equation, a 13-point stencil): the border's gradients are
    /// continued too.
    ThinPlate,
}

/// One pyramid level: colours (weighted means of the known pixels below) and how much of each
/// cell was known, in [0, 1].
struct Level {
    width: usize,
    height: usize,
    rgb: Vec<[f32; 3]>,
    known: Vec<f32>,
}

/// `image` with every pixel where `hidden[i]` replaced by push-pull interpolation of the others.
/// With nothing known at all, the fill is mid-grey.
pub fn smooth_fill(image: &RgbImage, hidden: &[bool]) -> RgbImage {
    pyramid_fill(image, hidden, Relaxation::None)
}

/// `image` with every pixel where `hidden[i]` replaced by the harmonic interpolation of the
/// hole's border (push-pull, relaxed at every level). With nothing known at all, mid-grey.
pub fn harmonic_fill(image: &RgbImage, hidden: &[bool]) -> RgbImage {
    pyramid_fill(image, hidden, Relaxation::Membrane)
}

/// `image` with every pixel where `hidden[i]` replaced by the biharmonic (thin-plate)
/// interpolation of the hole's border: it meets the border's colours and carries their gradients
/// on, so a stroke over a curved shading is filled along the curve; in a wide hole's middle it
/// overshoots (solved exactly, it scored 0.2 dB under the harmonic fill on training photos'
/// strokes and 1.8 dB on objects). With nothing known at all, mid-grey.
pub fn biharmonic_fill(image: &RgbImage, hidden: &[bool]) -> RgbImage {
    pyramid_fill(image, hidden, Relaxation::ThinPlate)
}

/// Push-pull, with each level's unknown cells relaxed on the way up.
fn pyramid_fill(image: &RgbImage, hidden: &[bool], relaxation: Relaxation) -> RgbImage {
    assert_eq!(hidden.len(), image.width * image.height, "one hidden flag per pixel");
    let mut levels = vec![Level {
        width: image.width,
        height: image.height,
        rgb: image.data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
        known: hidden.iter().map(|&h| if h { 0.0 } else { 1.0 }).collect(),
    }];
    // Push: halve until every cell is fully known or one cell is left.
    while let Some(finer) = levels.last().filter(|l| l.known.iter().any(|&k| k < 1.0) && l.width * l.height > 1) {
        let coarser = push(finer);
        levels.push(coarser);
    }
    let coarsest = levels.last_mut().expect("level 0 exists");
    for (rgb, known) in coarsest.rgb.iter_mut().zip(&mut coarsest.known) {
        if *known == 0.0 {
            *rgb = [0.5; 3];
        }
        *known = 1.0;
    }
    // Pull: each finer level takes what it lacks from the (now complete) coarser one.
    for index in (0..levels.len() - 1).rev() {
        let (finer, coarser) = levels.split_at_mut(index + 1);
        let free: Vec<usize> = match relaxation {
            Relaxation::None => Vec::new(),
            _ => (0..finer[index].known.len()).filter(|&i| finer[index].known[i] < 1.0).collect(),
        };
        pull(&mut finer[index], &coarser[0]);
        match relaxation {
            Relaxation::None => {}
            Relaxation::Membrane => relax(&mut finer[index], &free, SWEEPS_PER_LEVEL),
            Relaxation::ThinPlate => relax_plate(&mut finer[index], &free, PLATE_SWEEPS_PER_LEVEL),
        }
    }
    let level = &levels[0];
    RgbImage { width: image.width, height: image.height, data: level.rgb.iter().flatten().copied().collect() }
}

/// The next coarser level: each cell the known-weighted mean of its (up to) 2x2 children.
fn push(finer: &Level) -> Level {
    let (width, height) = (finer.width.div_ceil(2), finer.height.div_ceil(2));
    let mut rgb = vec![[0.0; 3]; width * height];
    let mut known = vec![0.0; width * height];
    for y in 0..height {
        for x in 0..width {
            let mut sum = [0.0f32; 3];
            let mut weight = 0.0f32;
            for fy in 2 * y..(2 * y + 2).min(finer.height) {
                for fx in 2 * x..(2 * x + 2).min(finer.width) {
                    let i = fy * finer.width + fx;
                    let w = finer.known[i];
                    for (s, v) in sum.iter_mut().zip(finer.rgb[i]) {
                        *s += w * v;
                    }
                    weight += w;
                }
            }
            let cell = y * width + x;
            if weight > 0.0 {
                rgb[cell] = sum.map(|s| s / weight);
            }
            // A cell is as known as its children together, capped: one known child of four
            // already gives it a colour worth trusting at this scale.
            known[cell] = weight.min(1.0);
        }
    }
    Level { width, height, rgb, known }
}

/// Blends the bilinear upsampling of `coarser` into `finer` where `finer` is not fully known.
fn pull(finer: &mut Level, coarser: &Level) {
    let sample = |x: usize, y: usize| -> [f32; 3] {
        // Pixel centres: fine x sits at coarse (x + 0.5) / 2 - 0.5.
        let cx = ((x as f32 + 0.5) * 0.5 - 0.5).clamp(0.0, (coarser.width - 1) as f32);
        let cy = ((y as f32 + 0.5) * 0.5 - 0.5).clamp(0.0, (coarser.height - 1) as f32);
        let (x0, y0) = (cx.floor() as usize, cy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(coarser.width - 1), (y0 + 1).min(coarser.height - 1));
        let (tx, ty) = (cx - x0 as f32, cy - y0 as f32);
        let at = |x: usize, y: usize| coarser.rgb[y * coarser.width + x];
        let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
        std::array::from_fn(|k| {
            let top = a[k] + (b[k] - a[k]) * tx;
            let bottom = c[k] + (d[k] - c[k]) * tx;
            top + (bottom - top) * ty
        })
    };
    for y in 0..finer.height {
        for x in 0..finer.width {
            let i = y * finer.width + x;
            let known = finer.known[i];
            if known >= 1.0 {
                continue;
            }
            let up = sample(x, y);
            for (v, u) in finer.rgb[i].iter_mut().zip(up) {
                *v = known * *v + (1.0 - known) * u;
            }
            finer.known[i] = 1.0;
        }
    }
}

/// Successive over-relaxation of the `free` cells towards the mean of their neighbours inside the
/// level (the others stay as they are: the hole's border conditions).
fn relax(level: &mut Level, free: &[usize], sweeps: usize) {
    let (width, height) = (level.width, level.height);
    for _ in 0..sweeps {
        for &i in free {
            let (x, y) = (i % width, i / width);
            let mut sum = [0.0f32; 3];
            let mut count = 0.0f32;
            let mut add = |j: usize| {
                for (s, v) in sum.iter_mut().zip(level.rgb[j]) {
                    *s += v;
                }
                count += 1.0;
            };
            if x > 0 {
                add(i - 1);
            }
            if x + 1 < width {
                add(i + 1);
            }
            if y > 0 {
                add(i - width);
            }
            if y + 1 < height {
                add(i + width);
            }
            if count > 0.0 {
                let cell = &mut level.rgb[i];
                for (v, s) in cell.iter_mut().zip(sum) {
                    *v += OVER_RELAXATION * (s / count - *v);
                }
            }
        }
    }
}

/// Successive over-relaxation of the `free` cells towards the biharmonic equation's solution:
/// `20 u = 8 (axial neighbours) - 2 (diagonal neighbours) - (axial neighbours two away)`, the
/// others staying as they are. Neighbours outside the level are read at its edge.
fn relax_plate(level: &mut Level, free: &[usize], sweeps: usize) {
    let (width, height) = (level.width as isize, level.height as isize);
    let at = |x: isize, y: isize| (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)) as usize;
    const TAPS: [(isize, isize, f32); 12] = [
        (-1, 0, 8.0),
        (1, 0, 8.0),
        (0, -1, 8.0),
        (0, 1, 8.0),
        (-1, -1, -2.0),
        (1, -1, -2.0),
        (-1, 1, -2.0),
        (1, 1, -2.0),
        (-2, 0, -1.0),
        (2, 0, -1.0),
        (0, -2, -1.0),
        (0, 2, -1.0),
    ];
    for _ in 0..sweeps {
        for &i in free {
            let (x, y) = ((i % level.width) as isize, (i / level.width) as isize);
            let mut sum = [0.0f32; 3];
            for (dx, dy, weight) in TAPS {
                for (s, v) in sum.iter_mut().zip(level.rgb[at(x + dx, y + dy)]) {
                    *s += weight * v;
                }
            }
            let cell = &mut level.rgb[i];
            for (v, s) in cell.iter_mut().zip(sum) {
                *v += PLATE_OVER_RELAXATION * (s / 20.0 - *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize) -> RgbImage {
        let mut image = RgbImage::new(width, height);
        for y in 0..height {
            for x in 0..width {
                let i = (y * width + x) * 3;
                image.data[i..i + 3].copy_from_slice(&[x as f32 / width as f32, y as f32 / height as f32, 0.25]);
            }
        }
        image
    }

    #[test]
    fn known_pixels_are_kept_and_a_hole_in_a_ramp_is_filled_close_to_it() {
        let (width, height) = (64, 48);
        let image = ramp(width, height);
        let hidden: Vec<bool> =
            (0..width * height).map(|i| (20..44).contains(&(i % width)) && (12..36).contains(&(i / width))).collect();
        let mut shown = image.clone();
        for (i, &h) in hidden.iter().enumerate() {
            if h {
                shown.data[i * 3..i * 3 + 3].copy_from_slice(&[1.0, 0.0, 1.0]);
            }
        }
        let filled = smooth_fill(&shown, &hidden);
        let mut worst = 0.0f32;
        for (i, &h) in hidden.iter().enumerate() {
            for k in 0..3 {
                let (got, want) = (filled.data[i * 3 + k], image.data[i * 3 + k]);
                if h {
                    worst = worst.max((got - want).abs());
                } else {
                    assert_eq!(got, want, "a known pixel changed");
                }
            }
        }
        // A linear ramp across a 24-pixel hole: push-pull is not exact, but close.
        assert!(worst < 0.12, "fill strays {worst} from the ramp");
    }

    /// The largest difference between `filled` and `image` inside the hole.
    fn worst_error(filled: &RgbImage, image: &RgbImage, hidden: &[bool]) -> f32 {
        hidden
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .flat_map(|(i, _)| (0..3).map(move |k| i * 3 + k))
            .map(|j| (filled.data[j] - image.data[j]).abs())
            .fold(0.0, f32::max)
    }

    /// The largest error inside the hole of `fill` on a ramp with a square hole of `side` pixels.
    fn worst_in_hole(fill: fn(&RgbImage, &[bool]) -> RgbImage, size: usize, side: usize) -> f32 {
        let image = ramp(size, size);
        let (lo, hi) = ((size - side) / 2, (size + side) / 2);
        let hidden: Vec<bool> =
            (0..size * size).map(|i| (lo..hi).contains(&(i % size)) && (lo..hi).contains(&(i / size))).collect();
        worst_error(&fill(&image, &hidden), &image, &hidden)
    }

    #[test]
    fn the_harmonic_fill_continues_a_ramp_across_small_and_wide_holes() {
        // A linear ramp is harmonic: the relaxed fill should reproduce it, where push-pull's
        // averages bend it, and the coarse levels should settle a wide hole as well as a small one.
        for (size, side) in [(64, 24), (256, 180)] {
            let (smooth, harmonic) = (worst_in_hole(smooth_fill, size, side), worst_in_hole(harmonic_fill, size, side));
            assert!(harmonic < 0.01, "{side}-px hole: harmonic fill strays {harmonic} from the ramp");
            assert!(harmonic < smooth / 4.0, "{side}-px hole: harmonic {harmonic}, push-pull {smooth}");
        }
    }

    #[test]
    fn the_thin_plate_fill_continues_a_curved_shading_where_the_membrane_bends_it() {
        // A quadratic is biharmonic but not harmonic: across a hole the thin plate follows it.
        let size = 64;
        let mut image = RgbImage::new(size, size);
        for (i, pixel) in image.data.chunks_exact_mut(3).enumerate() {
            let (x, y) = ((i % size) as f32 / size as f32, (i / size) as f32 / size as f32);
            pixel.copy_from_slice(&[x * x, 0.5 * (x * x + y * y), 0.2 + 0.6 * y * y]);
        }
        let hidden: Vec<bool> =
            (0..size * size).map(|i| (20..40).contains(&(i % size)) && (24..44).contains(&(i / size))).collect();
        let filled = biharmonic_fill(&image, &hidden);
        let plate = worst_error(&filled, &image, &hidden);
        let membrane = worst_error(&harmonic_fill(&image, &hidden), &image, &hidden);
        assert!(plate < 0.005, "the thin plate strays {plate} from the quadratic");
        assert!(plate < membrane / 4.0, "thin plate {plate}, membrane {membrane}");
        for (i, _) in hidden.iter().enumerate().filter(|(_, h)| !**h) {
            assert_eq!(filled.data[i * 3..i * 3 + 3], image.data[i * 3..i * 3 + 3], "a known pixel changed");
        }
    }

    /// Holes along the photo's edges and in its corner, where the 13-point stencil reads the edge
    /// twice, settle as the interior ones do: no value runs off (diverges) beyond a quarter of
    /// the photo's range past its darkest or brightest pixel.
    #[test]
    fn the_thin_plate_settles_where_the_hole_touches_the_edges() {
        let image = crate::fixtures::synthetic_photo(96, 64, 5);
        let (low, high) = image.data.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let reach = 0.25 * (high - low);
        let holes: [fn(usize, usize) -> bool; 3] =
            [|x, y| x < 30 && y < 25, |x, _| (40..52).contains(&x), |x, y| x > 70 || y > 50];
        for (k, inside) in holes.iter().enumerate() {
            let hidden: Vec<bool> = (0..96 * 64).map(|i| inside(i % 96, i / 96)).collect();
            let filled = biharmonic_fill(&image, &hidden);
            for v in &filled.data {
                assert!(v.is_finite() && *v > low - reach && *v < high + reach, "hole {k}: {v} outside {low}..{high}");
            }
        }
    }

    #[test]
    fn a_refined_fill_moves_its_share_towards_the_thin_plate_inside_the_hole_only() {
        let image = ramp(48, 40);
        let hidden: Vec<bool> = (0..48 * 40).map(|i| (10..30).contains(&(i % 48)) && (8..20).contains(&(i / 48))).collect();
        // A fill that is the harmonic guess plus a flat offset in the hole.
        let mut fill = harmonic_fill(&image, &hidden);
        for (i, _) in hidden.iter().enumerate().filter(|(_, h)| **h) {
            fill.data[i * 3] += 0.1;
        }
        let (guess, plate) = (harmonic_fill(&image, &hidden), biharmonic_fill(&image, &hidden));
        let moved = HoleFill::Harmonic.toward_thin_plate(&fill, &image, &hidden, 0.25);
        for (k, &h) in hidden.iter().enumerate().flat_map(|(i, h)| (0..3).map(move |c| (i * 3 + c, h))) {
            let want = if h { fill.data[k] + 0.25 * (plate.data[k] - guess.data[k]) } else { fill.data[k] };
            assert!((moved.data[k] - want).abs() < 1e-6, "value {k}: {} against {want}", moved.data[k]);
        }
        assert_eq!(HoleFill::Blank.toward_thin_plate(&fill, &image, &hidden, 0.25).data, fill.data);
    }

    #[test]
    fn a_hole_in_one_colour_is_filled_with_that_colour_and_nothing_known_gives_grey() {
        let mut image = RgbImage::new(33, 17);
        let hidden: Vec<bool> = (0..33 * 17).map(|i| i % 33 > 5).collect();
        for (pixel, &h) in image.data.chunks_exact_mut(3).zip(&hidden) {
            pixel.fill(if h { 0.0 } else { 0.8 });
        }
        for fill in [smooth_fill, harmonic_fill, biharmonic_fill] {
            let filled = fill(&image, &hidden);
            assert!(filled.data.iter().all(|v| (v - 0.8).abs() < 1e-5));
            let none = fill(&image, &vec![true; 33 * 17]);
            assert!(none.data.iter().all(|&v| v == 0.5));
        }
    }
}
