//! The x86-64 tiles: `vpdpwssd` on 512-bit (AVX-512 VNNI) and 256-bit (AVX-VNNI) registers, and
//! `vpmaddwd` + `vpaddd` (AVX2). Each sums at most `CHUNK_PAIRS` activation pairs per int32 lane
//! (the overflow bound in `panels`), then adds `sum * scale` to the f32 output.
//!
//! These functions are `unsafe` to call only because of their target features; `Kernel::tile`
//! is the one caller, and checks both the CPU and the slice bounds first.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::narrow::NarrowPanels;
use super::panels::{CHUNK_PAIRS, PANEL};

/// `out[r][0..16] += scale * sum_j a[r][2j..2j+2] . panel[j]` for 8 rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) fn tile_avx512_vnni(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
    const ROWS: usize = 8;
    let stride = 2 * pairs;
    // Every load and store below stays inside these bounds. Rows are read through pointers:
    // slicing them per tile (`array::from_fn` over the rows) compiled to out-of-line calls that
    // cost about 7% of a forward (`perf`), and more on B's two-pair products.
    assert!(a.len() >= ROWS * stride && panel.len() >= pairs * 2 * PANEL && out.len() >= (ROWS - 1) * out_stride + PANEL);
    let (a, panel) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: `scale` is 16 floats.
    let scale = unsafe { _mm512_loadu_ps(scale.as_ptr()) };
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        let mut acc = [_mm512_setzero_si512(); ROWS];
        for j in start..end {
            // SAFETY: pair `j < pairs` of the panel is 32 int16 values inside it: one 512-bit load.
            let w = unsafe { _mm512_loadu_si512(panel.add(j * 2 * PANEL).cast()) };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row `r < ROWS`, pair `j < pairs`: two values inside `a`.
                let x = unsafe { a.add(r * stride + 2 * j).cast::<i32>().read_unaligned() };
                *acc = _mm512_dpwssd_epi32(*acc, _mm512_set1_epi32(x), w);
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

/// The same tile on 256-bit registers with AVX-VNNI, 6 rows (two registers per row).
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) fn tile_avx_vnni(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
    tile_256::<true>(a, pairs, panel, scale, out, out_stride)
}

/// The same tile with AVX2's `vpmaddwd` + `vpaddd`, 6 rows.
#[target_feature(enable = "avx2,fma")]
pub(super) fn tile_avx2(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
    tile_256::<false>(a, pairs, panel, scale, out, out_stride)
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

#[inline]
#[target_feature(enable = "avx2,fma")]
fn tile_256<const VNNI: bool>(a: &[i16], pairs: usize, panel: &[i16], scale: &[f32; PANEL], out: &mut [f32], out_stride: usize) {
    const ROWS: usize = 6;
    let stride = 2 * pairs;
    // Rows through pointers, as in the AVX-512 tile (which says why); these are the bounds.
    assert!(a.len() >= ROWS * stride && panel.len() >= pairs * 2 * PANEL && out.len() >= (ROWS - 1) * out_stride + PANEL);
    let (a, panel) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: `scale` is 16 floats: two 256-bit loads.
    let scale = unsafe { [_mm256_loadu_ps(scale.as_ptr()), _mm256_loadu_ps(scale.as_ptr().add(8))] };
    let mut start = 0;
    while start < pairs {
        let end = (start + CHUNK_PAIRS).min(pairs);
        let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
        for j in start..end {
            // SAFETY: pair `j < pairs` of the panel is 32 int16 values inside it: two 256-bit loads.
            let w = unsafe {
                [_mm256_loadu_si256(panel.add(j * 2 * PANEL).cast()), _mm256_loadu_si256(panel.add(j * 2 * PANEL + 16).cast())]
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row `r < ROWS`, pair `j < pairs`: two values inside `a`.
                let x = _mm256_set1_epi32(unsafe { a.add(r * stride + 2 * j).cast::<i32>().read_unaligned() });
                for h in 0..2 {
                    // SAFETY: with VNNI set, the caller (`tile_avx_vnni`) enabled `avxvnni`.
                    acc[h] = if VNNI { unsafe { dot_vnni(acc[h], x, w[h]) } } else { dot_avx2(acc[h], x, w[h]) };
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for h in 0..2 {
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

/// The narrow tile (see `narrow`) on 256-bit registers with AVX-VNNI: 6 rows.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) fn narrow_tile_avx_vnni(
    a: &[i16],
    stride: usize,
    w: &NarrowPanels,
    scale: &[f32],
    out: &mut [f32],
    out_stride: usize,
) {
    narrow_256::<true>(a, stride, w, scale, out, out_stride)
}

/// The narrow tile with AVX2's `vpmaddwd` + `vpaddd`: 6 rows.
#[target_feature(enable = "avx2,fma")]
pub(super) fn narrow_tile_avx2(a: &[i16], stride: usize, w: &NarrowPanels, scale: &[f32], out: &mut [f32], out_stride: usize) {
    narrow_256::<false>(a, stride, w, scale, out, out_stride)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn narrow_256<const VNNI: bool>(a: &[i16], stride: usize, w: &NarrowPanels, scale: &[f32], out: &mut [f32], out_stride: usize) {
    match w.group() {
        1 => narrow_tile_256::<VNNI, 1>(a, stride, w, scale, out, out_stride),
        2 => narrow_tile_256::<VNNI, 2>(a, stride, w, scale, out, out_stride),
        4 => narrow_tile_256::<VNNI, 4>(a, stride, w, scale, out, out_stride),
        _ => narrow_tile_256::<VNNI, 8>(a, stride, w, scale, out, out_stride),
    }
}

/// `G` consecutive activation pairs at `p`, repeated across a 256-bit register.
///
/// # Safety
/// `2 * G` values at `p` must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_group_256<const G: usize>(p: *const i16) -> __m256i {
    // SAFETY: the caller's guarantee.
    unsafe {
        match G {
            1 => _mm256_set1_epi32(p.cast::<i32>().read_unaligned()),
            2 => _mm256_set1_epi64x(p.cast::<i64>().read_unaligned()),
            4 => _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast())),
            _ => _mm256_loadu_si256(p.cast()),
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn narrow_tile_256<const VNNI: bool, const G: usize>(
    a: &[i16],
    stride: usize,
    w: &NarrowPanels,
    scale: &[f32],
    out: &mut [f32],
    out_stride: usize,
) {
    const ROWS: usize = 6;
    const LANES: usize = 8;
    let steps = w.steps();
    // Every load below stays inside `a`, the scales and `out`: the bounds the loop relies on.
    assert!(a.len() >= (ROWS - 1) * stride + 2 * steps * G && scale.len() >= w.rank());
    assert!(out.len() >= (ROWS - 1) * out_stride + w.rank());
    let data = &w.data()[..steps * 2 * LANES];
    let a = a.as_ptr();
    let mut total = [_mm256_setzero_ps(); ROWS];
    let mut start = 0;
    while start < steps {
        let end = (start + CHUNK_PAIRS).min(steps);
        let mut acc = [_mm256_setzero_si256(); ROWS];
        for (s, lanes) in data[start * 2 * LANES..end * 2 * LANES].chunks_exact(2 * LANES).enumerate() {
            // SAFETY: `lanes` is 16 int16 values: one 256-bit load.
            let lanes = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
            let offset = (start + s) * G * 2;
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row `r`'s step reads `a[r * stride + offset..][..2 * G]`, inside `a` by
                // the assert above.
                let x = unsafe { load_group_256::<G>(a.add(r * stride + offset)) };
                // SAFETY: with VNNI set, the caller (`narrow_tile_avx_vnni`) enabled `avxvnni`.
                *acc = if VNNI { unsafe { dot_vnni(*acc, x, lanes) } } else { dot_avx2(*acc, x, lanes) };
            }
        }
        for (total, acc) in total.iter_mut().zip(&acc) {
            *total = _mm256_add_ps(*total, _mm256_cvtepi32_ps(*acc));
        }
        start = end;
    }
    for (r, total) in total.iter().enumerate() {
        let mut lanes = [0f32; LANES];
        // SAFETY: `lanes` is 8 floats: one 256-bit store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *total) };
        for c in 0..w.rank() {
            let sum: f32 = lanes[c * G..(c + 1) * G].iter().sum();
            out[r * out_stride + c] += sum * scale[c];
        }
    }
}

/// The narrow tile for LoRA's A (see `narrow`): 8 rows, `group` pairs per step, on AVX-512 VNNI.
/// Row `r` starts at `a[r * stride]`; its last step may read past the row (see `narrow`).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) fn narrow_tile_avx512_vnni(
    a: &[i16],
    stride: usize,
    w: &NarrowPanels,
    scale: &[f32],
    out: &mut [f32],
    out_stride: usize,
) {
    match w.group() {
        2 => narrow_tile::<2>(a, stride, w, scale, out, out_stride),
        4 => narrow_tile::<4>(a, stride, w, scale, out, out_stride),
        8 => narrow_tile::<8>(a, stride, w, scale, out, out_stride),
        _ => narrow_tile::<16>(a, stride, w, scale, out, out_stride),
    }
}

/// `G` consecutive activation pairs at `p`, repeated across the register.
///
/// # Safety
/// `2 * G` values at `p` must be readable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_group<const G: usize>(p: *const i16) -> __m512i {
    // SAFETY: the caller's guarantee.
    unsafe {
        match G {
            2 => _mm512_set1_epi64(p.cast::<i64>().read_unaligned()),
            4 => _mm512_broadcast_i32x4(_mm_loadu_si128(p.cast())),
            8 => _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast())),
            _ => _mm512_loadu_si512(p.cast()),
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn narrow_tile<const G: usize>(a: &[i16], stride: usize, w: &NarrowPanels, scale: &[f32], out: &mut [f32], out_stride: usize) {
    const ROWS: usize = 8;
    let steps = w.steps();
    // Every load below stays inside `a`, the scales and `out`: the bounds the loop relies on.
    assert!(a.len() >= (ROWS - 1) * stride + 2 * steps * G && scale.len() >= w.rank());
    assert!(out.len() >= (ROWS - 1) * out_stride + w.rank());
    let data = &w.data()[..steps * 2 * PANEL];
    let a = a.as_ptr();
    let mut total = [_mm512_setzero_ps(); ROWS];
    let mut start = 0;
    while start < steps {
        let end = (start + CHUNK_PAIRS).min(steps);
        let mut acc = [_mm512_setzero_si512(); ROWS];
        for (s, lanes) in data[start * 2 * PANEL..end * 2 * PANEL].chunks_exact(2 * PANEL).enumerate() {
            // SAFETY: `lanes` is 32 int16 values: one 512-bit load.
            let lanes = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
            let offset = (start + s) * G * 2;
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row `r`'s step reads `a[r * stride + offset..][..2 * G]`, inside `a` by
                // the assert above.
                let x = unsafe { load_group::<G>(a.add(r * stride + offset)) };
                // Written out: from the intrinsic LLVM emitted `vpmaddwd` + `vpaddd` here, two
                // instructions for this one (`perf annotate`).
                // SAFETY: registers only; the function's target features include AVX-512 VNNI.
                unsafe {
                    std::arch::asm!(
                        "vpdpwssd {acc}, {x}, {w}",
                        acc = inout(zmm_reg) *acc,
                        x = in(zmm_reg) x,
                        w = in(zmm_reg) lanes,
                        options(pure, nomem, nostack)
                    )
                };
            }
        }
        for r in 0..ROWS {
            total[r] = _mm512_add_ps(total[r], _mm512_cvtepi32_ps(acc[r]));
        }
        start = end;
    }
    // Each column's G lanes summed in registers (a store and scalar sums cost as much as the
    // products on level 0's short rows), then the sums packed to the front and added to `out`.
    let rank = w.rank();
    let columns: __mmask16 = (1 << rank) - 1;
    // SAFETY: `scale` holds `rank` floats (asserted above); the masked load reads only those.
    let scale = unsafe { _mm512_maskz_loadu_ps(columns, scale.as_ptr()) };
    let firsts: __mmask16 = (0..PANEL).step_by(G).fold(0, |m, lane| m | (1 << lane));
    for (r, total) in total.iter().enumerate() {
        let mut v = *total;
        if G >= 2 {
            v = _mm512_add_ps(v, _mm512_permute_ps::<0b10_11_00_01>(v));
        }
        if G >= 4 {
            v = _mm512_add_ps(v, _mm512_permute_ps::<0b01_00_11_10>(v));
        }
        if G >= 8 {
            v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v));
        }
        if G >= 16 {
            v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v));
        }
        let sums = _mm512_maskz_compress_ps(firsts, v);
        let o = out[r * out_stride..r * out_stride + rank].as_mut_ptr();
        // SAFETY: `o` has `rank` floats; the masked load and store touch only those.
        unsafe { _mm512_mask_storeu_ps(o, columns, _mm512_fmadd_ps(sums, scale, _mm512_maskz_loadu_ps(columns, o))) };
    }
}
