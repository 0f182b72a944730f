//! LoRA's A packed narrow. In a full panel a rank-4 A fills 4 of 16 lanes, so its pass over a
//! conv's im2col rows costs as much as a panel of 16 base channels: half again the base's
//! products on a 32-channel conv. Packed narrow, a register of `lanes` int32 lanes (16 on
//! AVX-512, 8 on 256-bit registers) holds `group = lanes / rank` row pairs of each of the (rank
//! rounded up to a power of two) columns, so one tile step multiplies `group` pairs; the lanes of
//! a column are summed once at the end of the tile.
//!
//! Lane `c * group + q` of step `s` holds `(A[2p][c], A[2p+1][c])` for pair `p = s * group + q`,
//! zero past the matrix. The activation side of a step is the `group` consecutive pairs of one
//! row, repeated per column: a broadcast load of 32, 64, 128 or 256 bits, or one full load. A
//! row's last step may read up to `group - 1` pairs past its end (into the next row, or
//! [`READ_PAST`] values the caller leaves after the last), where the weights are zero.

use super::panels::{MAX_WEIGHT, PANEL};
use crate::error::{EngineError, Result};

/// The largest rank packed narrow; a wider A stays in full panels.
pub const MAX_NARROW_RANK: usize = 8;
/// Values a narrow multiply may read past the last row of its activations.
pub const READ_PAST: usize = 2 * PANEL;

/// A `[k, rank]` int16 matrix, `rank <= min(MAX_NARROW_RANK, lanes)`, packed narrow for
/// registers of `lanes` int32 lanes.
#[derive(Clone, Debug)]
pub struct NarrowPanels {
    pairs: usize,
    rank: usize,
    lanes: usize,
    group: usize,
    data: Vec<i16>,
}

impl NarrowPanels {
    /// Packs row-major `values [k, rank]` for registers of `lanes` (8 or 16) int32 lanes; a rank
    /// above [`MAX_NARROW_RANK`] or `lanes`, or a value beyond ±[`MAX_WEIGHT`], is an error.
    pub fn new(values: &[i16], k: usize, rank: usize, lanes: usize) -> Result<Self> {
        if rank == 0 || rank > MAX_NARROW_RANK.min(lanes) || !matches!(lanes, 8 | 16) || values.len() != k * rank {
            return Err(EngineError::Model(format!(
                "a {k}x{rank} matrix cannot be packed narrow for {lanes} lanes from {} values",
                values.len()
            )));
        }
        if let Some(v) = values.iter().find(|v| v.unsigned_abs() > MAX_WEIGHT as u16) {
            return Err(EngineError::Model(format!("weight value {v} is outside the integer kernels' ±{MAX_WEIGHT}")));
        }
        let pairs = k.div_ceil(2);
        let group = lanes / rank.next_power_of_two();
        let steps = pairs.div_ceil(group);
        let mut data = vec![0i16; steps * 2 * lanes];
        for row in 0..k {
            let (pair, half) = (row / 2, row % 2);
            let (step, q) = (pair / group, pair % group);
            for c in 0..rank {
                data[step * 2 * lanes + (c * group + q) * 2 + half] = values[row * rank + c];
            }
        }
        Ok(Self { pairs, rank, lanes, group, data })
    }

    /// Int32 lanes of the register it is packed for.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Row pairs (`k` rounded up to even, halved): what each activation row holds.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Row pairs one step multiplies.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Steps of `group` pairs.
    pub fn steps(&self) -> usize {
        self.pairs.div_ceil(self.group)
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) fn data(&self) -> &[i16] {
        &self.data
    }
}

/// The narrow tile in plain Rust: `out[r][c] += scale[c] * sum_k a[r][k] * A[k][c]` for `rows`
/// rows, in the same lane order and int32 chunks as the SIMD tile (the check it is tested against).
pub(super) fn tile_portable(
    a: &[i16],
    stride: usize,
    rows: usize,
    w: &NarrowPanels,
    scale: &[f32],
    out: &mut [f32],
    out_stride: usize,
) {
    let (group, width) = (w.group, w.lanes);
    for r in 0..rows {
        let mut total = [0f32; PANEL];
        for chunk in w.data.chunks(super::panels::CHUNK_PAIRS * 2 * width).enumerate() {
            let (index, data) = chunk;
            let first_step = index * super::panels::CHUNK_PAIRS;
            let mut acc = [0i32; PANEL];
            for (s, lanes) in data.chunks_exact(2 * width).enumerate() {
                let first_pair = (first_step + s) * group;
                for (lane, sum) in acc[..width].iter_mut().enumerate() {
                    let at = r * stride + 2 * (first_pair + lane % group);
                    *sum += a[at] as i32 * lanes[2 * lane] as i32 + a[at + 1] as i32 * lanes[2 * lane + 1] as i32;
                }
            }
            total.iter_mut().zip(acc).for_each(|(t, s)| *t += s as f32);
        }
        for c in 0..w.rank {
            let sum: f32 = total[c * group..(c + 1) * group].iter().sum();
            out[r * out_stride + c] += sum * scale[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::{Kernel, KernelPath};

    /// Every path with a narrow tile and the portable tile, at every rank packed narrow, on sizes
    /// that leave a partial last step and at the extreme values of the overflow bound, give the
    /// exact product (to f32 rounding).
    #[test]
    fn every_path_multiplies_narrow_exactly() {
        let mut seed = 11u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for rank in 1..=MAX_NARROW_RANK {
            for &(k, extreme) in &[(27, false), (577, false), (1, false), (600, true)] {
                let rows = 24;
                let w: Vec<i16> = (0..k * rank).map(|_| if extreme { -255 } else { (next() % 511) as i16 - 255 }).collect();
                let stride = 2 * k.div_ceil(2);
                let mut a = vec![0i16; rows * stride + READ_PAST];
                for r in 0..rows {
                    for j in 0..k {
                        a[r * stride + j] = if extreme { -32768 } else { (next() % 65536) as i32 as i16 };
                    }
                }
                // Past the last row: what a reused buffer may hold; the zero weights ignore it.
                a[rows * stride..].fill(i16::MAX);
                let scale: Vec<f32> = (0..rank).map(|c| 0.5 + c as f32).collect();
                let check = |who: &str, out: &[f32]| {
                    for r in 0..rows {
                        for c in 0..rank {
                            let terms = (0..k).map(|j| a[r * stride + j] as i64 * w[j * rank + c] as i64);
                            let exact = terms.clone().sum::<i64>() as f64 * scale[c] as f64 + 1.0;
                            let magnitude = terms.map(i64::abs).sum::<i64>() as f64 * scale[c] as f64;
                            let got = out[r * rank + c] as f64;
                            let tolerance = magnitude * 8.0 * f64::from(f32::EPSILON) + 1e-3;
                            assert!((got - exact).abs() <= tolerance, "{who} rank {rank} k {k}: {got} vs {exact}");
                        }
                    }
                };
                for path in KernelPath::ALL.into_iter().filter(|p| p.supported()) {
                    let kernel = Kernel::new(path).unwrap();
                    let Some(lanes) = kernel.narrow_lanes() else { continue };
                    let packed = NarrowPanels::new(&w, k, rank, lanes).unwrap();
                    let mut out = vec![1f32; rows * rank];
                    kernel.multiply_narrow(&a, rows, &packed, &scale, &mut out, rank);
                    check(&format!("{path:?}"), &out);
                }
                for lanes in [8, 16].into_iter().filter(|&l| rank <= l) {
                    let packed = NarrowPanels::new(&w, k, rank, lanes).unwrap();
                    let mut out = vec![1f32; rows * rank];
                    tile_portable(&a, stride, rows, &packed, &scale, &mut out, rank);
                    check(&format!("portable, {lanes} lanes"), &out);
                }
            }
        }
    }

    #[test]
    fn ranks_above_eight_and_values_beyond_the_bound_are_refused() {
        assert!(NarrowPanels::new(&[0; 9], 1, 9, 16).is_err());
        assert!(NarrowPanels::new(&[256], 1, 1, 16).is_err());
        assert!(NarrowPanels::new(&[1, 2, 3], 2, 2, 16).is_err());
        assert!(NarrowPanels::new(&[0; 4], 1, 4, 4).is_err());
        assert_eq!(NarrowPanels::new(&[0; 8], 2, 4, 16).unwrap().group(), 4);
        assert_eq!(NarrowPanels::new(&[0; 8], 2, 4, 8).unwrap().group(), 2);
    }
}
