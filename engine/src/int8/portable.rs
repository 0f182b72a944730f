//! The tile in plain Rust, for any CPU (and the check the others are tested against).

use super::panels::{CHUNK_PAIRS, PANEL};

const ROWS: usize = 4;

/// `out[r][0..16] += scale * sum_k a[r][k] * w[k]` for 4 rows; int32 sums of at most
/// `CHUNK_PAIRS` pairs, like the SIMD tiles.
pub(super) fn tile(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
    let stride = 2 * pairs;
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        let mut acc = [[0i32; PANEL]; ROWS];
        for j in start..end {
            let w: &[i16; 2 * PANEL] = panel[j * 2 * PANEL..(j + 1) * 2 * PANEL].try_into().expect("a panel row is 2*PANEL long");
            for (r, acc) in acc.iter_mut().enumerate() {
                let (x0, x1) = (a[r * stride + 2 * j] as i32, a[r * stride + 2 * j + 1] as i32);
                for (c, sum) in acc.iter_mut().enumerate() {
                    *sum += x0 * w[2 * c] as i32 + x1 * w[2 * c + 1] as i32;
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let o = &mut out[r * out_stride..r * out_stride + PANEL];
            for c in 0..PANEL {
                o[c] += acc[c] as f32 * scale[c];
            }
        }
        start = end;
    }
}
