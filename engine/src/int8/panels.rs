//! Weights packed for the integer tiles, and the one dispatch point that runs a tile with the
//! instructions the CPU has.
//!
//! A weight matrix `[k, n]` (rows in im2col order) is cut into panels of [`PANEL`] columns. In a
//! panel, row pairs `(2j, 2j+1)` are interleaved per column — `w[2j][c], w[2j+1][c]` side by side
//! — so one 32-bit lane holds what `vpdpwssd`/`vpmaddwd` multiply with a broadcast pair of
//! activations and add into one int32 sum per column.
//!
//! **Overflow, by construction.** Activations are int16 (|x| ≤ 32768) and panel values at most
//! [`MAX_WEIGHT`] = 255 in magnitude (int8 base weights, or an int8 LoRA A value minus its zero
//! point). A tile sums at most [`CHUNK_PAIRS`] pairs (256 products) in int32 before it moves the
//! sum to f32: 256 x 32768 x 255 = 2,139,095,040 < 2^31 - 1, so no int32 sum can wrap.

use super::narrow::{self, NarrowPanels, READ_PAST};
use super::path::KernelPath;
use crate::error::{EngineError, Result};

/// Output columns per panel: the int32 lanes of one 512-bit register.
pub const PANEL: usize = 16;
/// Row pairs summed in int32 before the sum moves to f32 (see the overflow note above).
pub const CHUNK_PAIRS: usize = 128;
/// Largest magnitude a packed value may have.
pub const MAX_WEIGHT: i16 = 255;

/// A `[k, n]` int16 matrix in panels, `k` padded to even with zero rows.
#[derive(Clone, Debug)]
pub struct Panels {
    pairs: usize,
    columns: usize,
    data: Vec<i16>,
}

impl Panels {
    /// Packs row-major `values [k, n]`; a value beyond ±[`MAX_WEIGHT`] is an error (it would
    /// break the overflow bound).
    pub fn new(values: &[i16], k: usize, n: usize) -> Result<Self> {
        if values.len() != k * n {
            return Err(EngineError::Model(format!("a {k}x{n} weight matrix needs {} values, got {}", k * n, values.len())));
        }
        if let Some(v) = values.iter().find(|v| v.unsigned_abs() > MAX_WEIGHT as u16) {
            return Err(EngineError::Model(format!("weight value {v} is outside the integer kernels' ±{MAX_WEIGHT}")));
        }
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0i16; panels * pairs * 2 * PANEL];
        for row in 0..k {
            for col in 0..n {
                let (panel, lane) = (col / PANEL, col % PANEL);
                let at = (panel * pairs + row / 2) * 2 * PANEL + lane * 2 + row % 2;
                data[at] = values[row * n + col];
            }
        }
        Ok(Self { pairs, columns: n, data })
    }

    /// Row pairs (`k` rounded up to even, halved).
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// Columns of the matrix (`n`).
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Number of panels (`n` rounded up to [`PANEL`]).
    pub fn count(&self) -> usize {
        self.columns.div_ceil(PANEL)
    }

    fn panel(&self, index: usize) -> &[i16] {
        let len = self.pairs * 2 * PANEL;
        &self.data[index * len..(index + 1) * len]
    }
}

/// A [`KernelPath`] this CPU was checked to run: the only way to reach the tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(KernelPath);

impl Kernel {
    /// The path, if this CPU supports it.
    pub fn new(path: KernelPath) -> Result<Self> {
        if path.supported() {
            Ok(Self(path))
        } else {
            Err(EngineError::Backend(format!("this CPU cannot run the {} kernels", path.describe())))
        }
    }

    pub fn path(self) -> KernelPath {
        self.0
    }

    /// Rows of activations one tile handles (what the path's registers hold).
    pub fn rows(self) -> usize {
        match self.0 {
            KernelPath::Avx512Vnni => 8,
            KernelPath::AvxVnni | KernelPath::Avx2 => 6,
            KernelPath::Neon => 3,
            KernelPath::Portable => 4,
        }
    }

    /// `out[r][c] += scale[c] * sum_k a[r][k] * w[k][c]` for every column of `weights` and
    /// `rows` rows of `a` (row-major, `2 * weights.pairs()` values per row, zero-padded), `rows` a
    /// multiple of [`Self::rows`]; `out` has `out_stride` floats per row, `scale` one per column
    /// (padded to whole panels).
    pub fn multiply(self, a: &[i16], rows: usize, weights: &Panels, scale: &[f32], out: &mut [f32], out_stride: usize) {
        let stride = 2 * weights.pairs;
        let tile_rows = self.rows();
        assert!(rows.is_multiple_of(tile_rows), "{rows} rows are not whole tiles of {tile_rows}");
        assert!(a.len() >= rows * stride && scale.len() >= weights.count() * PANEL);
        assert!(
            out_stride >= weights.count() * PANEL && out.len() >= rows.saturating_sub(1) * out_stride + weights.count() * PANEL
        );
        for p in 0..weights.count() {
            let panel = weights.panel(p);
            let scale: &[f32; PANEL] = scale[p * PANEL..][..PANEL].try_into().expect("a panel's scales are PANEL long");
            for r in (0..rows).step_by(tile_rows) {
                let a = &a[r * stride..(r + tile_rows) * stride];
                let out = &mut out[r * out_stride + p * PANEL..];
                self.tile(a, weights.pairs, panel, scale, out, out_stride);
            }
        }
    }

    /// The register width (int32 lanes) of this path's narrow tile (`narrow`), if it has one:
    /// where it has none, LoRA's A stays in full panels, which its wide tiles run faster than
    /// the portable narrow tile.
    pub fn narrow_lanes(self) -> Option<usize> {
        match self.0 {
            KernelPath::Avx512Vnni => Some(16),
            KernelPath::AvxVnni | KernelPath::Avx2 => Some(8),
            KernelPath::Neon | KernelPath::Portable => None,
        }
    }

    /// `out[r][c] += scale[c] * sum_k a[r][k] * w[k][c]` for the `w.rank()` columns of a narrow
    /// matrix packed for this path, `rows` rows of `a` as in [`Self::multiply`]; `a` holds
    /// [`READ_PAST`] more values after its last row.
    pub fn multiply_narrow(self, a: &[i16], rows: usize, w: &NarrowPanels, scale: &[f32], out: &mut [f32], out_stride: usize) {
        let stride = 2 * w.pairs();
        let tile_rows = self.rows();
        let rank = w.rank();
        assert!(rows.is_multiple_of(tile_rows), "{rows} rows are not whole tiles of {tile_rows}");
        assert!(a.len() >= rows * stride + READ_PAST && scale.len() >= rank && out_stride >= rank);
        assert!(out.len() >= rows.saturating_sub(1) * out_stride + rank);
        assert_eq!(self.narrow_lanes(), Some(w.lanes()), "packed for another register width");
        for r in (0..rows).step_by(tile_rows) {
            let (a, out) = (&a[r * stride..], &mut out[r * out_stride..]);
            match self.0 {
                // SAFETY: as in `tile`; each narrow tile checks its own bounds.
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                KernelPath::Avx512Vnni => unsafe { super::x86::narrow_tile_avx512_vnni(a, stride, w, scale, out, out_stride) },
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                KernelPath::AvxVnni => unsafe { super::x86::narrow_tile_avx_vnni(a, stride, w, scale, out, out_stride) },
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                KernelPath::Avx2 => unsafe { super::x86::narrow_tile_avx2(a, stride, w, scale, out, out_stride) },
                _ => narrow::tile_portable(a, stride, tile_rows, w, scale, out, out_stride),
            }
        }
    }

    /// One tile: `rows()` rows by one panel.
    fn tile(self, a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
        let rows = self.rows();
        assert!(a.len() >= rows * 2 * pairs && panel.len() >= pairs * 2 * PANEL);
        assert!(out.len() >= (rows - 1) * out_stride + PANEL);
        match self.0 {
            // SAFETY: a `Kernel` exists only for a path `supported()` confirmed on this CPU, so the
            // target features each function is compiled for are present; the asserts above are
            // the bounds every load and store in the tiles stays within.
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            KernelPath::Avx512Vnni => unsafe { super::x86::tile_avx512_vnni(a, pairs, panel, scale, out, out_stride) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            KernelPath::AvxVnni => unsafe { super::x86::tile_avx_vnni(a, pairs, panel, scale, out, out_stride) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            KernelPath::Avx2 => unsafe { super::x86::tile_avx2(a, pairs, panel, scale, out, out_stride) },
            #[cfg(target_arch = "aarch64")]
            #[allow(unsafe_code)]
            KernelPath::Neon => unsafe { super::neon::tile_neon(a, pairs, panel, scale, out, out_stride) },
            _ => super::portable::tile(a, pairs, panel, scale, out, out_stride),
        }
    }
}

/// An activation pair as one 32-bit lane (first value in the low half); the x86 tiles read the
/// pair as one little-endian 32-bit value instead.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(super) fn pair([low, high]: [i16; 2]) -> i32 {
    (low as u16 as u32 | ((high as u16 as u32) << 16)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    /// Every path this CPU runs gives the exact integer product, on odd sizes and at the extreme
    /// values the overflow bound is stated for.
    #[test]
    fn every_supported_path_multiplies_exactly() {
        let mut seed = 7;
        for &(rows, k, n, extreme) in &[(24, 27, 20, false), (24, 301, 37, false), (24, 600, 16, true), (24, 1, 3, false)] {
            let a: Vec<i16> =
                (0..rows * k).map(|_| if extreme { -32768 } else { (lcg(&mut seed) % 65536) as i32 as i16 }).collect();
            let w: Vec<i16> = (0..k * n).map(|_| if extreme { -255 } else { (lcg(&mut seed) % 511) as i16 - 255 }).collect();
            let weights = Panels::new(&w, k, n).unwrap();
            let stride = 2 * weights.pairs();
            let mut padded = vec![0i16; rows * stride];
            for r in 0..rows {
                padded[r * stride..r * stride + k].copy_from_slice(&a[r * k..(r + 1) * k]);
            }
            let scale: Vec<f32> = (0..weights.count() * PANEL).map(|c| 1.0 + c as f32 * 0.5).collect();
            // (exact value, what f32 conversion of the chunk sums may lose: a few ulps of the
            // sum of magnitudes)
            let expected: Vec<(f64, f64)> = (0..rows * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    let dot: i64 = (0..k).map(|j| a[r * k + j] as i64 * w[j * n + c] as i64).sum();
                    let magnitude: i64 = (0..k).map(|j| (a[r * k + j] as i64 * w[j * n + c] as i64).abs()).sum();
                    (dot as f64 * scale[c] as f64, magnitude as f64 * scale[c] as f64 * 4.0 * f64::from(f32::EPSILON))
                })
                .collect();
            for path in KernelPath::ALL.into_iter().filter(|p| p.supported()) {
                let kernel = Kernel::new(path).unwrap();
                let stride_out = weights.count() * PANEL;
                let mut out = vec![0f32; rows * stride_out];
                kernel.multiply(&padded, rows, &weights, &scale, &mut out, stride_out);
                for (i, (e, tolerance)) in expected.iter().enumerate() {
                    let got = out[(i / n) * stride_out + i % n] as f64;
                    assert!((got - e).abs() <= tolerance + 1e-3, "{path:?} {rows}x{k}x{n}: {got} vs {e}");
                }
            }
        }
    }

    #[test]
    fn values_beyond_the_bound_are_refused() {
        assert!(Panels::new(&[256, 0], 1, 2).is_err());
        assert!(Panels::new(&[1, 2, 3], 2, 2).is_err());
        assert!(Panels::new(&[-255, 255], 2, 1).is_ok());
    }
}
