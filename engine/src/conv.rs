//! Convolutions in NHWC layout that run at matrix-multiply speed on the CPU.
//!
//! candle's own `conv2d` is NCHW, goes through a generic im2col and computes its input gradient
//! with `conv_transpose2d` at a fraction of matmul speed (DESIGN.md). Here a k x k convolution is
//! "im2col of a cache-sized block of output pixels, then one `gemm`", parallel over blocks, and the
//! backward pass reuses the same kernel: the input gradient of a "same" convolution is a "same"
//! convolution of the output gradient with the flipped, transposed kernel (stride 2 first spreads
//! the gradient back onto the input grid). Weights use the kernel layout `[k*k*cin, cout]`, rows
//! ordered `(ky, kx, cin)`; files keep PyTorch's `[cout, cin, k, k]` (see `oihw_to_kernel`).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Output pixels handled per im2col block: big enough for gemm to be efficient, small enough for
/// the column buffer (`BLOCK * k * k * cin` floats) to stay in L2.
const BLOCK_PIXELS: usize = 128;

/// Shape of one convolution: square kernel `k`, "same" padding `k / 2`, stride 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub k: usize,
    pub stride: usize,
}

impl ConvGeometry {
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let pad = self.k / 2;
        ((h + 2 * pad - self.k) / self.stride + 1, (w + 2 * pad - self.k) / self.stride + 1)
    }
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, all row-major and densely packed.
pub fn matmul_into(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the assert above guarantees every pointer covers the m x k, k x n and m x n
    // row-major matrices it is read or written as; `dst` is uniquely borrowed.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Fills `cols` (`pixels x k*k*cin`) with the receptive fields of output pixels
/// `first .. first + pixels` of one image (zero outside the image).
#[allow(clippy::too_many_arguments)]
fn im2col_block(
    image: &[f32],
    (h, w, cin): (usize, usize, usize),
    geometry: ConvGeometry,
    out_w: usize,
    first: usize,
    pixels: usize,
    cols: &mut [f32],
) {
    let k = geometry.k;
    let pad = (k / 2) as isize;
    let row_len = k * k * cin;
    for p in 0..pixels {
        let out_index = first + p;
        let (oy, ox) = (out_index / out_w, out_index % out_w);
        let row = &mut cols[p * row_len..(p + 1) * row_len];
        for ky in 0..k {
            let iy = (oy * geometry.stride) as isize + ky as isize - pad;
            for kx in 0..k {
                let ix = (ox * geometry.stride) as isize + kx as isize - pad;
                let dst = &mut row[(ky * k + kx) * cin..(ky * k + kx + 1) * cin];
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                    dst.fill(0.0);
                } else {
                    let src = (iy as usize * w + ix as usize) * cin;
                    dst.copy_from_slice(&image[src..src + cin]);
                }
            }
        }
    }
}

/// Forward convolution on raw NHWC data: `x [n, h, w, cin]`, `weight [k*k*cin, cout]`.
pub fn conv_forward(
    x: &[f32],
    (n, h, w, cin): (usize, usize, usize, usize),
    weight: &[f32],
    cout: usize,
    geometry: ConvGeometry,
) -> Vec<f32> {
    let (oh, ow) = geometry.output_size(h, w);
    let row_len = geometry.k * geometry.k * cin;
    assert_eq!(weight.len(), row_len * cout, "conv weight does not match its geometry");
    let mut out = vec![0f32; n * oh * ow * cout];
    if geometry.k == 1 && geometry.stride == 1 {
        matmul_into(&mut out, x, weight, (n * h * w, cin, cout), false, rayon::current_num_threads());
        return out;
    }
    let blocks_per_image = (oh * ow).div_ceil(BLOCK_PIXELS);
    out.par_chunks_mut(oh * ow * cout)
        .enumerate()
        .flat_map(|(b, image_out)| {
            image_out.par_chunks_mut(BLOCK_PIXELS * cout).enumerate().map(move |(block, dst)| (b, block, dst))
        })
        .for_each_init(Vec::new, |cols: &mut Vec<f32>, (b, block, dst)| {
            let first = block * BLOCK_PIXELS;
            let pixels = dst.len() / cout;
            debug_assert!(block < blocks_per_image);
            cols.resize(pixels * row_len, 0.0);
            let image = &x[b * h * w * cin..(b + 1) * h * w * cin];
            im2col_block(image, (h, w, cin), geometry, ow, first, pixels, cols);
            matmul_into(dst, cols, weight, (pixels, row_len, cout), false, 1);
        });
    out
}

/// Weight gradient: `dW [k*k*cin, cout] = sum over pixels of cols^T * dy`.
pub fn conv_weight_grad(
    x: &[f32],
    (n, h, w, cin): (usize, usize, usize, usize),
    grad_out: &[f32],
    cout: usize,
    geometry: ConvGeometry,
) -> Vec<f32> {
    let (oh, ow) = geometry.output_size(h, w);
    let row_len = geometry.k * geometry.k * cin;
    let blocks: Vec<(usize, usize)> =
        (0..n).flat_map(|b| (0..(oh * ow).div_ceil(BLOCK_PIXELS)).map(move |block| (b, block))).collect();
    blocks
        .par_iter()
        .fold(
            || (vec![0f32; row_len * cout], Vec::new(), Vec::new()),
            |(mut acc, mut cols, mut cols_t), &(b, block)| {
                let first = block * BLOCK_PIXELS;
                let pixels = BLOCK_PIXELS.min(oh * ow - first);
                let image = &x[b * h * w * cin..(b + 1) * h * w * cin];
                cols.resize(pixels * row_len, 0.0);
                if geometry.k == 1 && geometry.stride == 1 {
                    cols.copy_from_slice(&image[first * cin..(first + pixels) * cin]);
                } else {
                    im2col_block(image, (h, w, cin), geometry, ow, first, pixels, &mut cols);
                }
                transpose_into(&cols, pixels, row_len, &mut cols_t);
                let dy_start = (b * oh * ow + first) * cout;
                let dy = &grad_out[dy_start..dy_start + pixels * cout];
                matmul_into(&mut acc, &cols_t, dy, (row_len, pixels, cout), true, 1);
                (acc, cols, cols_t)
            },
        )
        .map(|(acc, _, _)| acc)
        .reduce(
            || vec![0f32; row_len * cout],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut Vec<f32>) {
    dst.resize(rows * cols, 0.0);
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// The kernel that maps an output gradient back to the input: spatially flipped, cin and cout
/// swapped. Layout `[k*k*cout, cin]`.
fn flipped_transposed_kernel(weight: &[f32], k: usize, cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0f32; weight.len()];
    for ky in 0..k {
        for kx in 0..k {
            let src_tap = ky * k + kx;
            let dst_tap = (k - 1 - ky) * k + (k - 1 - kx);
            for ci in 0..cin {
                for co in 0..cout {
                    out[(dst_tap * cout + co) * cin + ci] = weight[(src_tap * cin + ci) * cout + co];
                }
            }
        }
    }
    out
}

/// Input gradient of a convolution: `dx [n, h, w, cin]`.
pub fn conv_input_grad(
    grad_out: &[f32],
    (n, h, w, cin): (usize, usize, usize, usize),
    weight: &[f32],
    cout: usize,
    geometry: ConvGeometry,
) -> Vec<f32> {
    let k = geometry.k;
    let back_kernel = flipped_transposed_kernel(weight, k, cin, cout);
    let same = ConvGeometry { k, stride: 1 };
    if geometry.stride == 1 {
        return conv_forward(grad_out, (n, h, w, cout), &back_kernel, cin, same);
    }
    // Spread the strided gradient onto the input grid (zeros between), then a "same" convolution.
    let (oh, ow) = geometry.output_size(h, w);
    let s = geometry.stride;
    let mut spread = vec![0f32; n * h * w * cout];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let src = ((b * oh + oy) * ow + ox) * cout;
                let dst = ((b * h + oy * s) * w + ox * s) * cout;
                spread[dst..dst + cout].copy_from_slice(&grad_out[src..src + cout]);
            }
        }
    }
    conv_forward(&spread, (n, h, w, cout), &back_kernel, cin, same)
}

/// candle op: NHWC convolution of `x [n, h, w, cin]` with `weight [k*k*cin, cout]`, with backward.
pub struct ConvNhwc(pub ConvGeometry);

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what}: prism convolutions take f32 tensors");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what}: prism convolutions take contiguous tensors");
    };
    Ok(&data[start..end])
}

impl ConvNhwc {
    fn dims(&self, x: &Shape, weight: &Shape) -> candle_core::Result<((usize, usize, usize, usize), usize)> {
        let (n, h, w, cin) = x.dims4()?;
        let (rows, cout) = weight.dims2()?;
        let k = self.0.k;
        if rows != k * k * cin {
            candle_core::bail!("conv weight has {rows} rows but a {k}x{k} kernel over {cin} channels needs {}", k * k * cin);
        }
        Ok(((n, h, w, cin), cout))
    }
}

impl CustomOp2 for ConvNhwc {
    fn name(&self) -> &'static str {
        "conv-nhwc"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (dims, cout) = self.dims(l1.shape(), l2.shape())?;
        let x = contiguous_f32(s1, l1, "conv input")?;
        let weight = contiguous_f32(s2, l2, "conv weight")?;
        let out = conv_forward(x, dims, weight, cout, self.0);
        let (oh, ow) = self.0.output_size(dims.1, dims.2);
        Ok((CpuStorage::F32(out), Shape::from((dims.0, oh, ow, cout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dims, cout) = self.dims(x.shape(), weight.shape())?;
        let x_data = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let w_data = weight.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let dy = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        // A frozen weight (the base under LoRA training) or the raw input needs no gradient:
        // skipping it saves a third of the backward pass.
        let dw = if weight.track_op() {
            Some(Tensor::from_vec(conv_weight_grad(&x_data, dims, &dy, cout, self.0), weight.shape(), weight.device())?)
        } else {
            None
        };
        let dx = if x.track_op() {
            Some(Tensor::from_vec(conv_input_grad(&dy, dims, &w_data, cout, self.0), x.shape(), x.device())?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// Adds a per-channel bias to `[.., C]`. candle's own broadcast add is correct but its backward
/// sums the gradient over N, H and W with a strided reduction that took a sixth of a training
/// step; this op sums contiguous rows instead.
struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "bias-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "bias input")?;
        let bias = contiguous_f32(s2, l2, "bias")?;
        let channels = bias.len();
        if l1.shape().dims().last() != Some(&channels) {
            candle_core::bail!("bias of {channels} channels does not match an input of shape {:?}", l1.shape());
        }
        let mut out = x.to_vec();
        out.par_chunks_mut(channels * 1024).for_each(|block| {
            for row in block.chunks_exact_mut(channels) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let channels = bias.dim(0)?;
        let dy = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        // Partial sums per block, added in order: the same bits on every run (resumable training).
        let partials: Vec<Vec<f32>> = dy
            .par_chunks(channels * 1024)
            .map(|block| {
                let mut sum = vec![0f32; channels];
                for row in block.chunks_exact(channels) {
                    for (s, g) in sum.iter_mut().zip(row) {
                        *s += g;
                    }
                }
                sum
            })
            .collect();
        let mut db = vec![0f32; channels];
        for partial in partials {
            for (s, p) in db.iter_mut().zip(partial) {
                *s += p;
            }
        }
        Ok((Some(grad_res.clone()), Some(Tensor::from_vec(db, channels, bias.device())?)))
    }
}

/// `x + bias` over the last dimension (differentiable).
pub fn add_bias(x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&bias.contiguous()?, BiasAdd)
}

/// NHWC convolution as a candle tensor op (differentiable).
pub fn conv_nhwc(x: &Tensor, weight: &Tensor, geometry: ConvGeometry) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&weight.contiguous()?, ConvNhwc(geometry))
}

/// PyTorch/ONNX weight layout `[cout, cin, k, k]` to the kernel layout `[k*k*cin, cout]`
/// (differentiable).
pub fn oihw_to_kernel(weight: &Tensor) -> candle_core::Result<Tensor> {
    let (cout, cin, kh, kw) = weight.dims4()?;
    weight.permute((2, 3, 1, 0))?.contiguous()?.reshape((kh * kw * cin, cout))
}

/// [`oihw_to_kernel`] on plain values (`cout` filters of `cin` planes of `taps`), for weights
/// read from a file: candle's strided copy took a fifth of a one-shot CLI edit's time.
pub fn oihw_values_to_kernel<T: Copy + Default>(oihw: &[T], cout: usize, cin: usize, taps: usize) -> Vec<T> {
    let mut kernel = vec![T::default(); oihw.len()];
    // Per tap a transpose of [cout][cin], in tiles so that neither side strides through memory.
    for o0 in (0..cout).step_by(TILE) {
        for i0 in (0..cin).step_by(TILE) {
            for tap in 0..taps {
                for i in i0..(i0 + TILE).min(cin) {
                    let row = &mut kernel[(tap * cin + i) * cout..][..cout];
                    for o in o0..(o0 + TILE).min(cout) {
                        row[o] = oihw[(o * cin + i) * taps + tap];
                    }
                }
            }
        }
    }
    kernel
}

/// The side of the square tiles [`oihw_values_to_kernel`] moves at a time.
const TILE: usize = 16;

/// Kernel layout `[k*k*cin, cout]` back to `[cout, cin, k, k]`.
pub fn kernel_to_oihw(weight: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (rows, cout) = weight.dims2()?;
    let cin = rows / (k * k);
    weight.reshape((k, k, cin, cout))?.permute((3, 2, 0, 1))?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Var};

    /// candle's conv2d as the reference. Its stride-2 backward is wrong for even sizes (the
    /// transposed conv drops a row), so stride 2 is computed as stride 1 then subsampling.
    fn candle_reference(x: &Tensor, w_oihw: &Tensor, stride: usize) -> Tensor {
        let k = w_oihw.dim(2).unwrap();
        let conv = candle_nn::Conv2d::new(w_oihw.clone(), None, candle_nn::Conv2dConfig { padding: k / 2, ..Default::default() });
        let y = conv.forward(&x.permute((0, 3, 1, 2)).unwrap()).unwrap().permute((0, 2, 3, 1)).unwrap();
        if stride == 1 {
            return y;
        }
        let (n, h, w, c) = y.dims4().unwrap();
        let rows = Tensor::arange_step(0u32, h as u32, 2, x.device()).unwrap();
        let cols = Tensor::arange_step(0u32, w as u32, 2, x.device()).unwrap();
        let y = y.contiguous().unwrap().index_select(&rows, 1).unwrap().contiguous().unwrap().index_select(&cols, 2).unwrap();
        assert_eq!(y.dims()[0], n);
        assert_eq!(y.dims()[3], c);
        y
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn forward_and_backward_match_candle_conv2d_on_odd_sizes() {
        let dev = Device::Cpu;
        for (k, stride, h, w, cin, cout) in [(3, 1, 7, 5, 3, 6), (3, 2, 9, 6, 5, 4), (1, 1, 5, 3, 7, 2), (3, 2, 8, 8, 2, 3)] {
            let x = Var::randn(0f32, 1.0, (2, h, w, cin), &dev).unwrap();
            let w_oihw = Var::randn(0f32, 1.0, (cout, cin, k, k), &dev).unwrap();
            let geometry = ConvGeometry { k, stride };
            let ours = conv_nhwc(&x, &oihw_to_kernel(&w_oihw).unwrap(), geometry).unwrap();
            let theirs = candle_reference(&x, &w_oihw, stride);
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_abs_diff(&ours, &theirs) < 1e-4, "forward k={k} s={stride}");

            // Same scalar loss through both; gradients must agree.
            let probe = Tensor::randn(0f32, 1.0, ours.shape(), &dev).unwrap();
            let ours_grads = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let theirs_grads = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for var in [x.as_tensor(), w_oihw.as_tensor()] {
                let a = ours_grads.get(var).unwrap();
                let b = theirs_grads.get(var).unwrap();
                assert!(max_abs_diff(a, b) < 1e-3, "gradient k={k} s={stride}");
            }
        }
    }

    #[test]
    fn bias_add_matches_broadcast_add_and_its_gradient() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 3, 5, 7), &dev).unwrap();
        let b = Var::randn(0f32, 1.0, 7, &dev).unwrap();
        let ours = add_bias(&x, &b).unwrap();
        let theirs = x.broadcast_add(&b).unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-6);
        let probe = Tensor::randn(0f32, 1.0, ours.shape(), &dev).unwrap();
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for var in [x.as_tensor(), b.as_tensor()] {
            assert!(max_abs_diff(g1.get(var).unwrap(), g2.get(var).unwrap()) < 1e-4);
        }
    }

    #[test]
    fn kernel_layout_round_trips() {
        let w = Tensor::randn(0f32, 1.0, (4, 3, 3, 3), &Device::Cpu).unwrap();
        let kernel = oihw_to_kernel(&w).unwrap();
        let values = oihw_values_to_kernel(&w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), 4, 3, 9);
        assert_eq!(kernel.flatten_all().unwrap().to_vec1::<f32>().unwrap(), values, "the plain copy is the same layout");
        let back = kernel_to_oihw(&kernel, 3).unwrap();
        assert_eq!(max_abs_diff(&w, &back), 0.0);
    }
}
