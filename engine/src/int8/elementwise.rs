//! The element-wise steps between the tiles — bias, the leaky ReLU, rounding to the next int16
//! grid (LoRA's mid-point included), the residual add — written once and compiled twice on x86-64: for AVX2
//! (so they vectorize) and for the baseline. Without this they ran scalar and took as long as
//! the integer products themselves.

use super::panels::Kernel;
#[cfg(target_arch = "x86_64")]
use super::path::KernelPath;
use crate::graph::LEAKY_SLOPE;

/// `clamp(round(x * (1 / scale)))` on an int16 grid, rounding half away from zero as QuantSim
/// does (a multiply by the reciprocal, as candle's division by a scalar is).
#[derive(Clone, Copy, Debug)]
pub(super) struct Rounding {
    pub inverse: f32,
    pub low: f32,
    pub high: f32,
}

impl Rounding {
    pub fn new(scale: f32, activation_bits: u32) -> Self {
        let qmax = ((1i64 << (activation_bits - 1)) - 1) as f32;
        Self { inverse: (1.0 / scale as f64) as f32, low: -qmax - 1.0, high: qmax }
    }

    /// The code of `x`; clamped before rounding, which gives the same code (the bounds are
    /// integers) and keeps every step in range.
    #[inline(always)]
    pub fn code(self, x: f32) -> i16 {
        let x = (x * self.inverse).clamp(self.low, self.high);
        // NaN gives code 0, as a saturating cast does.
        let x = if x.is_nan() { 0.0 } else { x };
        let truncated = x.trunc();
        let fraction = x - truncated;
        let rounded = truncated
            + if fraction >= 0.5 {
                1.0
            } else if fraction <= -0.5 {
                -1.0
            } else {
                0.0
            };
        // A plain conversion, not a saturating `as`: that one compiled to scalar code with
        // branches per value (a third of the finish in `perf`), this one to `vcvttps2dq`.
        // SAFETY: `rounded` is an integer in `low..=high`, inside i16's range, never NaN.
        #[allow(unsafe_code)]
        let code = unsafe { rounded.to_int_unchecked::<i32>() };
        code as i16
    }
}

/// What a conv's block of output pixels needs after the tiles.
pub(super) struct Finish<'a> {
    /// Per pixel `W x` (`stride` floats each, `cout` used), on the f32 scale; used as scratch.
    pub tile: &'a mut [f32],
    pub stride: usize,
    pub bias: &'a [f32],
    pub leaky_relu: bool,
    pub rounding: Rounding,
    /// `pixels * cout` codes out.
    pub out: &'a mut [i16],
}

#[inline(always)]
fn finish_body(f: Finish) {
    let cout = f.bias.len();
    for (p, stored) in f.out.chunks_exact_mut(cout).enumerate() {
        let y = &mut f.tile[p * f.stride..p * f.stride + cout];
        for (v, b) in y.iter_mut().zip(f.bias) {
            *v += b;
        }
        if f.leaky_relu {
            for (q, &v) in stored.iter_mut().zip(y.iter()) {
                *q = f.rounding.code(v.max(v * LEAKY_SLOPE));
            }
        } else {
            for (q, &v) in stored.iter_mut().zip(y.iter()) {
                *q = f.rounding.code(v);
            }
        }
    }
}

#[inline(always)]
fn add_body(x: &[i16], x_scale: f32, y: &[i16], y_scale: f32, rounding: Rounding, out: &mut [i16]) {
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
        *o = rounding.code(f32::from(a) * x_scale + f32::from(b) * y_scale);
    }
}

#[inline(always)]
fn quantize_body(x: &[f32], rounding: Rounding, out: &mut [i16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = rounding.code(v);
    }
}

#[inline(always)]
fn quantize_rows_body(x: &[f32], x_stride: usize, columns: usize, rounding: Rounding, out: &mut [i16], out_stride: usize) {
    for (src, dst) in x.chunks(x_stride).zip(out.chunks_mut(out_stride)) {
        for (o, &v) in dst[..columns].iter_mut().zip(&src[..columns]) {
            *o = rounding.code(v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn finish(f: super::Finish) {
        super::finish_body(f)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn add(x: &[i16], xs: f32, y: &[i16], ys: f32, r: super::Rounding, out: &mut [i16]) {
        super::add_body(x, xs, y, ys, r, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn quantize(x: &[f32], r: super::Rounding, out: &mut [i16]) {
        super::quantize_body(x, r, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn quantize_rows(x: &[f32], xs: usize, columns: usize, r: super::Rounding, out: &mut [i16], os: usize) {
        super::quantize_rows_body(x, xs, columns, r, out, os)
    }
}

/// Whether `kernel`'s CPU has AVX2 (every x86 path checks for it).
#[cfg(target_arch = "x86_64")]
fn has_avx2(kernel: Kernel) -> bool {
    matches!(kernel.path(), KernelPath::Avx512Vnni | KernelPath::AvxVnni | KernelPath::Avx2)
}

// SAFETY (the four dispatches below): `has_avx2` is true only for a `Kernel` whose path
// `supported()` confirmed AVX2 and FMA on this CPU; the functions touch memory only through
// their slices.

/// Bias, LoRA B, leaky ReLU and rounding for a block of output pixels.
pub(super) fn finish_rows(kernel: Kernel, f: Finish) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2(kernel) {
        #[allow(unsafe_code)]
        return unsafe { avx2::finish(f) };
    }
    let _ = kernel;
    finish_body(f)
}

/// The residual add `round((x sx + y sy) / s)`.
pub(super) fn add(kernel: Kernel, x: &[i16], x_scale: f32, y: &[i16], y_scale: f32, rounding: Rounding, out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2(kernel) {
        #[allow(unsafe_code)]
        return unsafe { avx2::add(x, x_scale, y, y_scale, rounding, out) };
    }
    let _ = kernel;
    add_body(x, x_scale, y, y_scale, rounding, out)
}

/// Floats to codes.
pub(super) fn quantize(kernel: Kernel, x: &[f32], rounding: Rounding, out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2(kernel) {
        #[allow(unsafe_code)]
        return unsafe { avx2::quantize(x, rounding, out) };
    }
    let _ = kernel;
    quantize_body(x, rounding, out)
}

/// Floats to codes, `columns` of each row: rows of `x_stride` floats in, `out_stride` codes out
/// (LoRA's `A x` to its mid-point grid).
pub(super) fn quantize_rows(
    kernel: Kernel,
    x: &[f32],
    x_stride: usize,
    columns: usize,
    rounding: Rounding,
    out: &mut [i16],
    out_stride: usize,
) {
    if x_stride == columns && out_stride == columns {
        return quantize(kernel, x, rounding, out);
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2(kernel) {
        #[allow(unsafe_code)]
        return unsafe { avx2::quantize_rows(x, x_stride, columns, rounding, out, out_stride) };
    }
    quantize_rows_body(x, x_stride, columns, rounding, out, out_stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code is what QuantSim's `round(x * (1/s)).clamp(..)` gives, ties and bounds included.
    #[test]
    fn codes_round_half_away_from_zero_and_clamp() {
        let r = Rounding::new(0.5, 16);
        for (x, code) in [(0.25, 1), (-0.25, -1), (0.2499, 0), (0.74, 1), (0.75, 2), (-0.75, -2), (1e9, 32767), (-1e9, -32768)] {
            assert_eq!(r.code(x), code, "{x}");
        }
        assert_eq!(r.code(f32::NAN), 0);
        let r8 = Rounding::new(1.0, 8);
        assert_eq!((r8.code(300.0), r8.code(-300.0)), (127, -128));
        for i in -2000..2000 {
            let x = i as f32 * 0.37;
            assert_eq!(f32::from(r.code(x)), (x * r.inverse).round().clamp(r.low, r.high), "{x}");
        }
    }
}
