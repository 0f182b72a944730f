//! The ARM NEON tile (Apple silicon, Snapdragon): `smlal`/`smlal2` widen int16 products into
//! int32 lanes that keep the two rows of a pair apart; `addp` joins them per column when the
//! chunk's sum moves to f32. Each lane sums at most `CHUNK_PAIRS` products, the joined sum twice
//! that: the bound in `panels` holds.
//!
//! Built and type-checked for aarch64 here; this machine cannot run it (see packaging/README.md).
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::panels::{CHUNK_PAIRS, PANEL, pair};

/// `out[r][0..16] += scale * sum_j a[r][2j..2j+2] . panel[j]` for 3 rows.
#[target_feature(enable = "neon")]
pub(super) fn tile_neon(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
    const ROWS: usize = 3;
    let stride = 2 * pairs;
    let rows: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| a[r * stride..(r + 1) * stride].as_chunks::<2>().0);
    let panel = &panel[..pairs * 2 * PANEL];
    // SAFETY: `scale` is 16 floats: four 128-bit loads.
    let scale: [float32x4_t; 4] = std::array::from_fn(|q| unsafe { vld1q_f32(scale.as_ptr().add(4 * q)) });
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        // acc[r][2q] holds columns 4q, 4q+1 and acc[r][2q+1] columns 4q+2, 4q+3, each as
        // (even row, odd row) lanes.
        let mut acc = [[vdupq_n_s32(0); 8]; ROWS];
        let chunk: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| &rows[r][start..end]);
        for (j, w) in panel[start * 2 * PANEL..end * 2 * PANEL].chunks_exact(2 * PANEL).enumerate() {
            // SAFETY: `w` is 32 int16 values: four 128-bit loads.
            let w: [int16x8_t; 4] = std::array::from_fn(|q| unsafe { vld1q_s16(w.as_ptr().add(8 * q)) });
            for r in 0..ROWS {
                let x = vreinterpretq_s16_s32(vdupq_n_s32(pair(chunk[r][j])));
                for q in 0..4 {
                    acc[r][2 * q] = vmlal_s16(acc[r][2 * q], vget_low_s16(w[q]), vget_low_s16(x));
                    acc[r][2 * q + 1] = vmlal_high_s16(acc[r][2 * q + 1], w[q], x);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for q in 0..4 {
                let sums = vcvtq_f32_s32(vpaddq_s32(acc[2 * q], acc[2 * q + 1]));
                let o = &mut out[r * out_stride + 4 * q..r * out_stride + 4 * q + 4];
                // SAFETY: `o` is 4 floats: one 128-bit load and store.
                unsafe { vst1q_f32(o.as_mut_ptr(), vfmaq_f32(vld1q_f32(o.as_ptr()), sums, scale[q])) };
            }
        }
        start = end;
    }
}
