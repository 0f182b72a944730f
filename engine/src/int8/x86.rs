//! The x86-64 tiles: `vpdpwssd` on 512-bit (AVX-512 VNNI; 256-bit for a narrow panel) and 256-bit
//! (AVX-VNNI) registers, and `vpmaddwd` + `vpaddd` (AVX2). Each sums at most `CHUNK_PAIRS`
//! activation pairs per int32 lane (the overflow bound in `panels`), then adds `sum * scale` to
//! the f32 output. `W` is the panel's width: `PANEL` or `NARROW_PANEL`.
//!
//! These functions are `unsafe` to call only because of their target features; `Kernel::tile`
//! is the one caller, and checks both the CPU and the slice bounds first.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::panels::{CHUNK_PAIRS, NARROW_PANEL, PANEL, pair};

/// `out[r][0..W] += scale * sum_j a[r][2j..2j+2] . panel[j]` for 8 rows: one 512-bit register
/// per row for a wide panel, one 256-bit register (AVX-512 VL) for a narrow one.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn tile_avx512_vnni<const W: usize>(
    a: &[i16],
    pairs: usize,
    panel: &[i16],
    scale: &[f32; W],
    out: &mut [f32],
    out_stride: usize,
) {
    if W == PANEL {
        wide_avx512_vnni(a, pairs, panel, scale, out, out_stride)
    } else {
        narrow_avx512_vnni(a, pairs, panel, scale, out, out_stride)
    }
}

const AVX512_ROWS: usize = 8;

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn wide_avx512_vnni(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32], out: &mut [f32], out_stride: usize) {
    const ROWS: usize = AVX512_ROWS;
    let stride = 2 * pairs;
    let rows: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| a[r * stride..(r + 1) * stride].as_chunks::<2>().0);
    let panel = &panel[..pairs * 2 * PANEL];
    let scale = &scale[..PANEL];
    // SAFETY: `scale` is 16 floats.
    let scale = unsafe { _mm512_loadu_ps(scale.as_ptr()) };
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        let mut acc = [_mm512_setzero_si512(); ROWS];
        // Sliced to the chunk, so the compiler sees every index below is in bounds.
        let chunk: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| &rows[r][start..end]);
        for (j, w) in panel[start * 2 * PANEL..end * 2 * PANEL].chunks_exact(2 * PANEL).enumerate() {
            // SAFETY: `w` is 32 int16 values: one 512-bit load.
            let w = unsafe { _mm512_loadu_si512(w.as_ptr().cast()) };
            for r in 0..ROWS {
                acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_set1_epi32(pair(chunk[r][j])), w);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let o = &mut out[r * out_stride..r * out_stride + PANEL];
            // SAFETY: `o` is 16 floats: one 512-bit load and store.
            unsafe {
                _mm512_storeu_ps(o.as_mut_ptr(), _mm512_fmadd_ps(_mm512_cvtepi32_ps(*acc), scale, _mm512_loadu_ps(o.as_ptr())))
            };
        }
        start = end;
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn narrow_avx512_vnni(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32], out: &mut [f32], out_stride: usize) {
    const ROWS: usize = AVX512_ROWS;
    const W: usize = NARROW_PANEL;
    let stride = 2 * pairs;
    let rows: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| a[r * stride..(r + 1) * stride].as_chunks::<2>().0);
    let panel = &panel[..pairs * 2 * W];
    let scale = &scale[..W];
    // SAFETY: `scale` is 8 floats.
    let scale = unsafe { _mm256_loadu_ps(scale.as_ptr()) };
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        let mut acc = [_mm256_setzero_si256(); ROWS];
        let chunk: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| &rows[r][start..end]);
        for (j, w) in panel[start * 2 * W..end * 2 * W].chunks_exact(2 * W).enumerate() {
            // SAFETY: `w` is 16 int16 values: one 256-bit load.
            let w = unsafe { _mm256_loadu_si256(w.as_ptr().cast()) };
            for r in 0..ROWS {
                acc[r] = _mm256_dpwssd_epi32(acc[r], _mm256_set1_epi32(pair(chunk[r][j])), w);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let o = &mut out[r * out_stride..r * out_stride + W];
            // SAFETY: `o` is 8 floats: one 256-bit load and store.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), _mm256_fmadd_ps(_mm256_cvtepi32_ps(*acc), scale, _mm256_loadu_ps(o.as_ptr())))
            };
        }
        start = end;
    }
}

/// The same tile on 256-bit registers with AVX-VNNI, 6 rows (a register per 8 columns).
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) fn tile_avx_vnni<const W: usize>(
    a: &[i16],
    pairs: usize,
    panel: &[i16],
    scale: &[f32; W],
    out: &mut [f32],
    out_stride: usize,
) {
    tile_256::<true, W>(a, pairs, panel, scale, out, out_stride)
}

/// The same tile with AVX2's `vpmaddwd` + `vpaddd`, 6 rows.
#[target_feature(enable = "avx2,fma")]
pub(super) fn tile_avx2<const W: usize>(
    a: &[i16],
    pairs: usize,
    panel: &[i16],
    scale: &[f32; W],
    out: &mut [f32],
    out_stride: usize,
) {
    tile_256::<false, W>(a, pairs, panel, scale, out, out_stride)
}

#[inline]
#[target_feature(enable = "avx2,fma,avxvnni")]
fn dot_vnni(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
    _mm256_dpwssd_avx_epi32(acc, x, w)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
}

/// Registers of 8 columns a wide panel takes (a narrow one takes the first).
const HALVES: usize = PANEL / 8;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn tile_256<const VNNI: bool, const W: usize>(
    a: &[i16],
    pairs: usize,
    panel: &[i16],
    scale: &[f32; W],
    out: &mut [f32],
    out_stride: usize,
) {
    const ROWS: usize = 6;
    let halves = W / 8;
    let stride = 2 * pairs;
    let rows: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| a[r * stride..(r + 1) * stride].as_chunks::<2>().0);
    let panel = &panel[..pairs * 2 * W];
    // SAFETY: `scale` is W floats: a 256-bit load per half.
    let scale: [__m256; HALVES] =
        std::array::from_fn(
            |h| if h < halves { unsafe { _mm256_loadu_ps(scale.as_ptr().add(8 * h)) } } else { _mm256_setzero_ps() },
        );
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        let mut acc = [[_mm256_setzero_si256(); HALVES]; ROWS];
        let chunk: [&[[i16; 2]]; ROWS] = std::array::from_fn(|r| &rows[r][start..end]);
        for (j, w) in panel[start * 2 * W..end * 2 * W].chunks_exact(2 * W).enumerate() {
            // SAFETY: `w` is 2W int16 values: a 256-bit load per half.
            let w: [__m256i; HALVES] = std::array::from_fn(|h| {
                if h < halves { unsafe { _mm256_loadu_si256(w.as_ptr().add(16 * h).cast()) } } else { _mm256_setzero_si256() }
            });
            for r in 0..ROWS {
                let x = _mm256_set1_epi32(pair(chunk[r][j]));
                for h in 0..halves {
                    // SAFETY: with VNNI set, the caller (`tile_avx_vnni`) enabled `avxvnni`.
                    acc[r][h] = if VNNI { unsafe { dot_vnni(acc[r][h], x, w[h]) } } else { dot_avx2(acc[r][h], x, w[h]) };
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for h in 0..halves {
                let o = &mut out[r * out_stride + h * 8..r * out_stride + h * 8 + 8];
                // SAFETY: `o` is 8 floats: one 256-bit load and store.
                unsafe {
                    _mm256_storeu_ps(
                        o.as_mut_ptr(),
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h]), scale[h], _mm256_loadu_ps(o.as_ptr())),
                    )
                };
            }
        }
        start = end;
    }
}
