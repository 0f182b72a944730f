//! The fine detail a removal's fill takes from the photo around the hole: the model's fill is the
//! best guess of the hole's colours and shading but smooth (the mean of what could be there), so
//! the luma of a frequency-selective extrapolation of the hole's surroundings gives it the
//! surroundings' texture and the edges that run into the hole, continued across it.
//!
//! The extrapolation (after Seiler and Kaup's frequency-selective extrapolation, as OpenCV
//! contrib's FSR uses it) works block by block, those with the most known neighbours first: the
//! known pixels of a window around the block, weighted by how near its centre they are, are
//! modelled as a sum of a few Fourier basis functions, picked one at a time as the one that takes
//! the most of what is left (preferring low frequencies), and the model's values fill the block.
//! Pixels filled before count half. Only the detail of this extrapolation (itself minus its blur) is
//! kept: its coarse colours are worse than the network's, its texture is where the photo's was.
//! Hand-written rather than taken from a crate: no Rust crate inpaints; the transforms are
//! `rustfft`'s.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::hole_fill::smooth_fill;
use crate::imageio::RgbImage;
use crate::settings::blur_interleaved;

/// Side of the blocks filled at once, and of the window of photo around each that models it.
const BLOCK: usize = 16;
const WINDOW: usize = 32;
const BORDER: usize = (WINDOW - BLOCK) / 2;
/// How fast a known pixel's weight falls with its distance from the block's centre (per pixel).
/// On removals in training photos 0.5 gave the same PSNR as 0.8 (OpenCV's for 16-px blocks) at
/// 0.06 more sharpness.
const DECAY: f32 = 0.5;
/// The weight of a pixel the extrapolation filled itself, against a known one's 1.
const FILLED_WEIGHT: f32 = 0.5;
/// Each pick adds this much of its projection: the basis functions are not orthogonal under the
/// weights, and taking all of one at once would leave the others less to explain.
const PICK_SHARE: f32 = 0.5;
/// Basis functions picked per block: more where the known pixels vary more (`PICKS_PER_SPREAD`
/// times their standard deviation, 0..1 units), within these bounds.
const MIN_PICKS: usize = 20;
const MAX_PICKS: usize = 100;
const PICKS_PER_SPREAD: f32 = 1000.0;

/// What is kept of the extrapolation: itself minus its Gaussian blur of this size (pixels),
/// times `DETAIL_GAIN` (more than one: the extrapolation fades towards a hole's middle). Chosen on
/// removals in 15 training photos (`--example fill_detail`, strokes and objects as the eval makes
/// them, model v2's fill): the gain that keeps the most margin on both of removal's targets there
/// (PSNR in the mask 0.5 dB over OpenCV contrib's FSR, sharpness 0.55): 1.8, at 20.81 dB against
/// 20.63 and 0.62; without the detail 21.05 dB, 0.13. Raised to 1.9 with the fade below.
pub const DETAIL_BLUR: f32 = 3.0;
pub const DETAIL_GAIN: f32 = 1.9;
/// The detail is laid in at full strength within this distance (pixels) of the hole's border and
/// fades to none over the next `FADE_DEPTH`: deep in a wide hole the extrapolation is built from
/// blocks extrapolated before it and repeats them, a grid of dots a block apart on a large
/// removal. Measured on the same training removals: the same PSNR for the same sharpness ratio
/// as without the fade (strokes, at most 48 px wide, are untouched), so the gain went from 1.8 to
/// 1.9 to keep the sharpness (docs/model-v2.md, "The detail fades in a wide hole's middle").
const FULL_DEPTH: f32 = 12.0;
const FADE_DEPTH: f32 = 24.0;
/// The scale (pixels) over which the detail's strength is compared with the surroundings'.
const LEVEL_BLUR: f32 = 12.0;

/// `fill` (a removal's result, the hole filled) with `detail_layer` added inside the hole
/// (`hidden`, one per pixel). Both images are the same size; outside the hole `fill` is returned as
/// it is.
pub fn add_fill_detail(fill: &RgbImage, photo: &RgbImage, hidden: &[bool], gain: f32) -> RgbImage {
    let mut out = fill.clone();
    if gain == 0.0 || !hidden.iter().any(|&h| h) || hidden.iter().all(|&h| h) {
        return out;
    }
    let detail = detail_layer(photo, hidden, gain);
    for (pixel, (d, &h)) in out.data.chunks_exact_mut(3).zip(detail.iter().zip(hidden)) {
        if h {
            pixel.iter_mut().for_each(|v| *v = (*v + d).clamp(0.0, 1.0));
        }
    }
    out
}

/// The luma detail the hole takes: the extrapolation of `photo`'s pixels outside the hole, less
/// its blur, times `gain`, but never stronger than the photo's own detail around it (its local
/// RMS, spread into the hole from the border): a hole in a flat sky gets next to none, one in
/// grass about the grass's.
pub fn detail_layer(photo: &RgbImage, hidden: &[bool], gain: f32) -> Vec<f32> {
    let (w, h) = (photo.width, photo.height);
    let luma = photo.luma();
    let high_pass = |plane: &[f32]| -> Vec<f32> {
        let blurred = blur_interleaved(plane, w, h, 1, DETAIL_BLUR);
        plane.iter().zip(&blurred).map(|(a, b)| a - b).collect()
    };
    let extrapolated = extrapolate(&luma, w, h, hidden);
    let detail: Vec<f32> = high_pass(&extrapolated).iter().map(|d| d * gain).collect();
    // The surroundings' detail energy, local, carried into the hole from its border.
    let around: Vec<f32> = high_pass(&luma).iter().zip(hidden).map(|(d, &h)| if h { 0.0 } else { d * d }).collect();
    let known: Vec<f32> = hidden.iter().map(|&h| if h { 0.0 } else { 1.0 }).collect();
    let around = blur_interleaved(&around, w, h, 1, LEVEL_BLUR);
    let known = blur_interleaved(&known, w, h, 1, LEVEL_BLUR);
    let energy_map = RgbImage {
        width: w,
        height: h,
        data: around.iter().zip(&known).flat_map(|(e, k)| [if *k > 1e-3 { e / k } else { 0.0 }; 3]).collect(),
    };
    let far_from_known: Vec<bool> = known.iter().map(|&k| k <= 1e-3).collect();
    let allowed = smooth_fill(&energy_map, &far_from_known);
    // The detail's own energy, local, over the hole only.
    let inside: Vec<f32> = detail.iter().zip(hidden).map(|(d, &h)| if h { d * d } else { 0.0 }).collect();
    let inside = blur_interleaved(&inside, w, h, 1, LEVEL_BLUR);
    let hole = blur_interleaved(&hidden.iter().map(|&h| f32::from(u8::from(h))).collect::<Vec<f32>>(), w, h, 1, LEVEL_BLUR);
    let depth = distance_inside(hidden, w, h);
    detail
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let actual = (inside[i] / hole[i].max(1e-6)).max(1e-12).sqrt();
            let allowed = allowed.data[i * 3].max(0.0).sqrt();
            let fade = 1.0 - ((depth[i] - FULL_DEPTH) / FADE_DEPTH).clamp(0.0, 1.0);
            d * (allowed / actual).min(1.0) * fade
        })
        .collect()
}

/// Distance (pixels, a 3-4 chamfer) from each hidden pixel to the nearest known one; 0 outside.
fn distance_inside(hidden: &[bool], w: usize, h: usize) -> Vec<f32> {
    let mut d: Vec<f32> = hidden.iter().map(|&x| if x { f32::MAX / 2.0 } else { 0.0 }).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let mut v = d[i];
            if x > 0 {
                v = v.min(d[i - 1] + 3.0);
            }
            if y > 0 {
                v = v.min(d[i - w] + 3.0);
                if x > 0 {
                    v = v.min(d[i - w - 1] + 4.0);
                }
                if x + 1 < w {
                    v = v.min(d[i - w + 1] + 4.0);
                }
            }
            d[i] = v;
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            let mut v = d[i];
            if x + 1 < w {
                v = v.min(d[i + 1] + 3.0);
            }
            if y + 1 < h {
                v = v.min(d[i + w] + 3.0);
                if x + 1 < w {
                    v = v.min(d[i + w + 1] + 4.0);
                }
                if x > 0 {
                    v = v.min(d[i + w - 1] + 4.0);
                }
            }
            d[i] = v;
        }
    }
    d.iter().map(|v| v / 3.0).collect()
}

/// `plane` (`width x height`) with its `hidden` pixels extrapolated from the others; the others
/// as they are. With nothing known, returned as it is. Four extrapolations on block grids shifted
/// by half a block are blended, each weighted by how far a pixel is from its own grid's block
/// edges (the weights sum to one everywhere): one grid's steps between blocks fall where the others
/// are in their blocks' middles, so the blend has no seams for the detail to pick up.
pub fn extrapolate(plane: &[f32], width: usize, height: usize, hidden: &[bool]) -> Vec<f32> {
    if !hidden.iter().any(|&h| !h) {
        return plane.to_vec();
    }
    let half = BLOCK / 2;
    // Weight across a block: 0 at its edges, 1 in its middle; shifted by half a block, the two
    // add to one.
    let tent = |position: usize, offset: usize| {
        let t = ((position + offset) % BLOCK) as f32 + 0.5;
        1.0 - (2.0 * t / BLOCK as f32 - 1.0).abs()
    };
    let mut blend = vec![0f32; plane.len()];
    for (ox, oy) in [(0, 0), (half, 0), (0, half), (half, half)] {
        let one = extrapolate_on(Grid::new(width, height, ox, oy), plane, hidden);
        for (i, (b, v)) in blend.iter_mut().zip(one).enumerate() {
            *b += tent(i % width, ox) * tent(i / width, oy) * v;
        }
    }
    blend.iter().zip(plane).zip(hidden).map(|((b, p), &h)| if h { *b } else { *p }).collect()
}

/// Square blocks of `BLOCK` over a `width x height` plane, the first starting `ox`, `oy` before
/// its top-left corner (so the ones along the top and left edges are cut).
#[derive(Clone, Copy)]
struct Grid {
    width: usize,
    height: usize,
    ox: usize,
    oy: usize,
    blocks_x: usize,
    blocks_y: usize,
}

impl Grid {
    fn new(width: usize, height: usize, ox: usize, oy: usize) -> Self {
        Self { width, height, ox, oy, blocks_x: (width + ox).div_ceil(BLOCK), blocks_y: (height + oy).div_ceil(BLOCK) }
    }

    fn blocks(&self) -> usize {
        self.blocks_x * self.blocks_y
    }

    /// Block `b`'s top-left corner (may lie before the plane's).
    fn corner(&self, b: usize) -> (isize, isize) {
        (((b % self.blocks_x) * BLOCK) as isize - self.ox as isize, ((b / self.blocks_x) * BLOCK) as isize - self.oy as isize)
    }

    /// Block `b`'s pixel indices (those inside the plane).
    fn pixels(&self, b: usize) -> impl Iterator<Item = usize> + '_ {
        let (x0, y0) = self.corner(b);
        let xs = x0.max(0) as usize..((x0 + BLOCK as isize) as usize).min(self.width);
        let ys = y0.max(0) as usize..((y0 + BLOCK as isize) as usize).min(self.height);
        ys.flat_map(move |y| xs.clone().map(move |x| y * self.width + x))
    }
}

/// `extrapolate` on one block grid.
fn extrapolate_on(grid: Grid, plane: &[f32], hidden: &[bool]) -> Vec<f32> {
    let mut values = plane.to_vec();
    let mut weight: Vec<f32> = hidden.iter().map(|&h| if h { 0.0 } else { 1.0 }).collect();
    let mut todo: Vec<bool> = (0..grid.blocks()).map(|b| grid.pixels(b).any(|i| hidden[i])).collect();
    let extrapolator = BlockExtrapolator::new();
    while todo.iter().any(|&t| t) {
        let wave = next_wave(&grid, &todo, &weight);
        let filled: Vec<(usize, Vec<(usize, f32)>)> =
            wave.par_iter().map(|&b| (b, extrapolator.fill_block(&grid, b, &values, &weight, hidden))).collect();
        for (b, pixels) in filled {
            todo[b] = false;
            for (i, v) in pixels {
                values[i] = v;
                weight[i] = FILLED_WEIGHT;
            }
        }
    }
    values
}

/// The blocks filled next, all at once: among those left, the ones with the fewest neighbours
/// still unknown (outside the photo counts as unknown, so holes are closed from where the most is
/// known), no two of them neighbours (their windows would read each other's unfilled pixels).
/// A block that has no known pixel at all waits while one that has some is left.
fn next_wave(grid: &Grid, todo: &[bool], weight: &[f32]) -> Vec<usize> {
    let (blocks_x, blocks_y) = (grid.blocks_x as isize, grid.blocks_y as isize);
    let unknown_neighbours = |b: usize| {
        let (bx, by) = ((b % grid.blocks_x) as isize, (b / grid.blocks_x) as isize);
        let mut count = 0;
        for (dx, dy) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dx, dy))) {
            let (nx, ny) = (bx + dx, by + dy);
            let outside = nx < 0 || ny < 0 || nx >= blocks_x || ny >= blocks_y;
            if (dx, dy) != (0, 0) && (outside || todo[(ny * blocks_x + nx) as usize]) {
                count += 1;
            }
        }
        let knows_nothing = grid.pixels(b).all(|i| weight[i] == 0.0);
        count + 9 * usize::from(knows_nothing)
    };
    let priority: Vec<Option<usize>> = (0..todo.len()).map(|b| todo[b].then(|| unknown_neighbours(b))).collect();
    let Some(best) = priority.iter().flatten().min().copied() else {
        return Vec::new();
    };
    let mut taken = vec![false; todo.len()];
    let mut wave = Vec::new();
    for b in 0..todo.len() {
        if priority[b] != Some(best) || taken[b] {
            continue;
        }
        wave.push(b);
        let (bx, by) = ((b % grid.blocks_x) as isize, (b / grid.blocks_x) as isize);
        for ny in (by - 1).max(0)..=(by + 1).min(blocks_y - 1) {
            for nx in (bx - 1).max(0)..=(bx + 1).min(blocks_x - 1) {
                taken[(ny * blocks_x + nx) as usize] = true;
            }
        }
    }
    wave
}

/// The window's transforms (planned once) and the preference for low frequencies.
struct BlockExtrapolator {
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    /// Per frequency: 1 at zero falling to 0 at the highest (by distance from zero, wrapped).
    preference: Vec<f32>,
    /// Per window pixel: how much a known pixel there counts (`DECAY` to its distance).
    nearness: Vec<f32>,
}

impl BlockExtrapolator {
    fn new() -> Self {
        let mut planner = FftPlanner::new();
        let wrapped = |k: usize| (WINDOW / 2) as f32 - ((k as f32) - (WINDOW / 2) as f32).abs();
        let preference = (0..WINDOW * WINDOW)
            .map(|i| {
                let (ky, kx) = (wrapped(i / WINDOW), wrapped(i % WINDOW));
                (1.0 - (kx * kx + ky * ky).sqrt() * std::f32::consts::SQRT_2 / WINDOW as f32).max(0.0)
            })
            .collect();
        let centre = WINDOW as f32 / 2.0;
        let nearness = (0..WINDOW * WINDOW)
            .map(|i| {
                let (y, x) = ((i / WINDOW) as f32 + 0.5 - centre, (i % WINDOW) as f32 + 0.5 - centre);
                DECAY.powf((x * x + y * y).sqrt())
            })
            .collect();
        Self { forward: planner.plan_fft_forward(WINDOW), inverse: planner.plan_fft_inverse(WINDOW), preference, nearness }
    }

    /// The values of block `b`'s pixels that are hidden and not yet filled, by index.
    fn fill_block(&self, grid: &Grid, b: usize, values: &[f32], weight: &[f32], hidden: &[bool]) -> Vec<(usize, f32)> {
        let (bx0, by0) = grid.corner(b);
        let (x0, y0) = (bx0 - BORDER as isize, by0 - BORDER as isize);
        let (width, height) = (grid.width, grid.height);
        let at = |i: usize| {
            let (x, y) = (x0 + (i % WINDOW) as isize, y0 + (i / WINDOW) as isize);
            (x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height).then(|| y as usize * width + x as usize)
        };
        let mut w = vec![0f32; WINDOW * WINDOW];
        let mut f = vec![0f32; WINDOW * WINDOW];
        let (mut sum, mut sum_sq, mut count) = (0f64, 0f64, 0usize);
        for i in 0..WINDOW * WINDOW {
            if let Some(p) = at(i).filter(|&p| weight[p] > 0.0) {
                w[i] = weight[p] * self.nearness[i];
                f[i] = values[p];
                sum += values[p] as f64;
                sum_sq += (values[p] as f64).powi(2);
                count += 1;
            }
        }
        let picks = if count < 2 {
            MIN_PICKS
        } else {
            let spread = (sum_sq / count as f64 - (sum / count as f64).powi(2)).max(0.0).sqrt() as f32;
            ((PICKS_PER_SPREAD * spread).round() as usize).clamp(MIN_PICKS, MAX_PICKS)
        };
        let model = self.model(&f, &w, picks);
        let in_block =
            |i: usize| (BORDER..BORDER + BLOCK).contains(&(i % WINDOW)) && (BORDER..BORDER + BLOCK).contains(&(i / WINDOW));
        model
            .iter()
            .enumerate()
            .filter(|&(i, _)| in_block(i))
            .filter_map(|(i, &v)| at(i).filter(|&p| hidden[p] && weight[p] == 0.0).map(|p| (p, v)))
            .collect()
    }

    /// The window's model: `picks` Fourier basis functions (a real pair counted as two) fitted to
    /// `f` under the weights `w`, evaluated over the window.
    fn model(&self, f: &[f32], w: &[f32], picks: usize) -> Vec<f32> {
        let n = WINDOW;
        let spectrum = |data: &[f32]| {
            let mut c: Vec<Complex32> = data.iter().map(|&v| Complex32::new(v, 0.0)).collect();
            self.transform(&mut c, &self.forward);
            c
        };
        let weights = spectrum(w);
        let weighted: Vec<f32> = f.iter().zip(w).map(|(a, b)| a * b).collect();
        let mut residual = spectrum(&weighted);
        let total_weight = weights[0].re;
        let mut coefficients = vec![Complex32::new(0.0, 0.0); n * n];
        if total_weight <= 0.0 {
            return vec![0.0; n * n];
        }
        let mut picked = 0;
        while picked < picks {
            let (k, _) = residual
                .iter()
                .zip(&self.preference)
                .map(|(r, p)| r.norm_sqr() * p * p)
                .enumerate()
                .fold((0, -1.0), |best, (i, e)| if e > best.1 { (i, e) } else { best });
            let (ky, kx) = (k / n, k % n);
            let partner = ((n - ky) % n) * n + (n - kx) % n;
            let c = residual[k] * (PICK_SHARE / total_weight);
            let mut take = |k: usize, c: Complex32| {
                coefficients[k] += c;
                let (ky, kx) = (k / n, k % n);
                for (m, r) in residual.iter_mut().enumerate() {
                    let (my, mx) = (m / n, m % n);
                    *r -= c * weights[((my + n - ky) % n) * n + (mx + n - kx) % n];
                }
            };
            take(k, c);
            picked += 1;
            if partner != k {
                take(partner, c.conj());
                picked += 1;
            }
        }
        self.transform(&mut coefficients, &self.inverse);
        coefficients.iter().map(|c| c.re).collect()
    }

    /// A 2-D transform of a `WINDOW x WINDOW` grid in place (rows, then columns).
    fn transform(&self, grid: &mut [Complex32], fft: &Arc<dyn Fft<f32>>) {
        let n = WINDOW;
        grid.chunks_exact_mut(n).for_each(|row| fft.process(row));
        let mut column = vec![Complex32::new(0.0, 0.0); n];
        for x in 0..n {
            (0..n).for_each(|y| column[y] = grid[y * n + x]);
            fft.process(&mut column);
            (0..n).for_each(|y| grid[y * n + x] = column[y]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plane of diagonal stripes (period 8 px) with a square hole in its middle.
    fn stripes(size: usize) -> (Vec<f32>, Vec<bool>) {
        let plane = (0..size * size)
            .map(|i| 0.5 + 0.3 * (std::f32::consts::TAU * ((i % size) + (i / size)) as f32 / 8.0).sin())
            .collect();
        let hidden = (0..size * size)
            .map(|i| {
                let (x, y) = (i % size, i / size);
                (24..40).contains(&x) && (20..44).contains(&y)
            })
            .collect();
        (plane, hidden)
    }

    #[test]
    fn stripes_continue_across_a_hole() {
        let (plane, hidden) = stripes(64);
        let out = extrapolate(&plane, 64, 64, &hidden);
        let (mut error, mut flat_error, mut count) = (0.0, 0.0, 0);
        for i in 0..plane.len() {
            if hidden[i] {
                error += (out[i] - plane[i]).powi(2);
                flat_error += (0.5 - plane[i]).powi(2);
                count += 1;
            } else {
                assert_eq!(out[i], plane[i], "a known pixel changed");
            }
        }
        // The stripes' own energy is what a flat fill misses; the extrapolation keeps almost all.
        assert!(error < 0.05 * flat_error, "error {} against a flat fill's {}", error / count as f32, flat_error / count as f32);
    }

    #[test]
    fn the_detail_goes_inside_the_hole_only() {
        let (plane, hidden) = stripes(64);
        let photo = RgbImage { width: 64, height: 64, data: plane.iter().flat_map(|&v| [v; 3]).collect() };
        let flat = RgbImage { width: 64, height: 64, data: vec![0.5; 64 * 64 * 3] };
        let out = add_fill_detail(&flat, &photo, &hidden, 1.0);
        let moved = |i: usize| (out.data[i * 3] - 0.5).abs() > 0.05;
        assert!((0..plane.len()).filter(|&i| !hidden[i]).all(|i| out.data[i * 3] == 0.5));
        assert!(
            (0..plane.len()).filter(|&i| hidden[i]).filter(|&i| moved(i)).count() > hidden.iter().filter(|&&h| h).count() / 2
        );
        // With no gain, or nothing (or everything) hidden, the fill is returned as it is.
        assert_eq!(add_fill_detail(&flat, &photo, &hidden, 0.0).data, flat.data);
        assert_eq!(add_fill_detail(&flat, &photo, &vec![true; 64 * 64], 1.0).data, flat.data);
    }

    #[test]
    fn the_detail_fades_in_a_wide_holes_middle() {
        // Stripes with a 96-px square hole: texture along its border, none past the fade.
        let size = 160;
        let plane: Vec<f32> = (0..size * size)
            .map(|i| 0.5 + 0.3 * (std::f32::consts::TAU * ((i % size) + (i / size)) as f32 / 8.0).sin())
            .collect();
        let hidden: Vec<bool> =
            (0..size * size).map(|i| (32..128).contains(&(i % size)) && (32..128).contains(&(i / size))).collect();
        let photo = RgbImage { width: size, height: size, data: plane.iter().flat_map(|&v| [v; 3]).collect() };
        let detail = detail_layer(&photo, &hidden, DETAIL_GAIN);
        let depth = distance_inside(&hidden, size, size);
        let strength = |near: &dyn Fn(f32) -> bool| {
            let picked: Vec<f32> = (0..detail.len()).filter(|&i| hidden[i] && near(depth[i])).map(|i| detail[i].abs()).collect();
            picked.iter().sum::<f32>() / picked.len() as f32
        };
        assert!(strength(&|d| d <= FULL_DEPTH) > 0.05, "no texture along the border");
        assert_eq!(strength(&|d| d >= FULL_DEPTH + FADE_DEPTH), 0.0, "texture deep in the hole");
        assert_eq!(depth[80 * size + 80], 48.0, "the middle is 48 px from the border");
    }

    #[test]
    fn a_hole_at_the_photos_edge_and_a_tiny_photo_are_filled() {
        let (plane, _) = stripes(40);
        let hidden: Vec<bool> = (0..40 * 40).map(|i| i % 40 >= 30).collect();
        let out = extrapolate(&plane, 40, 40, &hidden);
        assert!(out.iter().all(|v| v.is_finite()));
        assert!((0..out.len()).filter(|&i| hidden[i]).all(|i| (out[i] - plane[i]).abs() < 0.3));
        let out = extrapolate(&[0.2, 0.4, 0.6], 3, 1, &[false, true, false]);
        assert!((out[1] - 0.4).abs() < 0.15, "{out:?}");
    }
}
