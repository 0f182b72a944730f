//! The integer lowering of the model graph: every conv multiplies int16 activations by int8
//! weights in the panels' integer tiles, and stores its output on the profile's int16 grid, the
//! values QuantSim computes (to within one step of each stored tensor: the integer sums are
//! exact where QuantSim's f32 sums round).

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::elementwise::{self, Finish, Rounding};
use super::narrow::{MAX_NARROW_RANK, NarrowPanels, READ_PAST};
use super::panels::{Kernel, PANEL, Panels};
use crate::conv::ConvGeometry;
use crate::error::{EngineError, Result};
use crate::graph::{Graph, INPUT_CHANNELS, Node, SHUFFLE, ValueId, missing_value};
use crate::model::Model;
use crate::quant::{Profile, StoredTensors};
use crate::unet::{ConvSpec, LoraSet, UnetConfig};

/// Output pixels per block: a multiple of every path's tile rows (8, 6, 4, 3), and small enough
/// for the block's im2col rows to stay in L2.
const BLOCK_PIXELS: usize = 96;

/// An activation on its int16 grid: `value = scale * q`, NHWC.
struct Grid {
    q: Vec<i16>,
    dims: (usize, usize, usize, usize),
    scale: f32,
}

/// One conv's int8 weights, split by input segment (a fuse conv reads the upsampled value and the
/// skip, stored at different scales).
struct IntegerConv {
    spec: ConvSpec,
    /// Input channels of each segment, in concat order.
    segments: Vec<usize>,
    weights: Vec<Panels>,
    weight_scale: Vec<f32>,
    bias: Vec<f32>,
}

/// The model for the integer kernels: int8 weights packed once, the profile's scales.
pub struct IntegerUnet {
    kernel: Kernel,
    config: UnetConfig,
    graph: Graph,
    convs: Vec<IntegerConv>,
    profile: Profile,
}

/// A bound LoRA set on the integer path: A on the shared profile's int8 grid (relative to its zero
/// point) in panels, B and the per-rank scales as QuantSim applies them.
pub struct IntegerLora {
    layers: Vec<Option<IntegerLoraLayer>>,
}

struct IntegerLoraLayer {
    rank: usize,
    /// Per input segment.
    a: LoraA,
    a_scale: f32,
    mid: Rounding,
    /// B on its int8 grid, multiplied into the conv's tile in the integer tiles like a weight: one
    /// part per run of rank channels that share a rank scale (an adapter of a blend).
    b: Vec<BPart>,
}

/// B's rows of one run of rank channels (the others zero), and the column scales that turn its
/// integer sums into the conv's f32 tile: mid scale x rank scale x B's scale.
struct BPart {
    panels: Panels,
    scales: Vec<f32>,
}

/// Runs of equal values in `scales`: `(first, end, value)`.
fn runs(scales: &[f32]) -> Vec<(usize, usize, f32)> {
    let mut out: Vec<(usize, usize, f32)> = Vec::new();
    for (j, &s) in scales.iter().enumerate() {
        match out.last_mut() {
            Some(run) if run.2 == s => run.1 = j + 1,
            _ => out.push((j, j + 1, s)),
        }
    }
    out
}

/// The values of `t` as codes on the int8 grid `scale` (relative to its zero point); a value off
/// the grid is an error that names `what`.
fn grid_codes(t: &Tensor, scale: f32, what: &str) -> Result<Vec<f32>> {
    let mut codes = tensor_values(t)?;
    for v in &mut codes {
        let code = (*v / scale).round();
        if (*v - code * scale).abs() > scale * 1e-3 || code.abs() > 255.0 {
            return Err(EngineError::Model(format!("{what} is not on the shared profile's int8 grid")));
        }
        *v = code;
    }
    Ok(codes)
}

/// LoRA's A per input segment: narrow where the path has a narrow tile and the rank fits it
/// (`narrow` says why), else in full panels.
enum LoraA {
    Wide(Vec<Panels>),
    Narrow(Vec<NarrowPanels>),
}

impl LoraA {
    /// Floats per pixel of the tile `A x` is summed into.
    fn width(&self) -> usize {
        match self {
            LoraA::Wide(a) => a[0].count() * PANEL,
            LoraA::Narrow(a) => a[0].rank(),
        }
    }
}

/// Rows `(ky, kx, c)` of a `[k*k*cin, n]` matrix for the input channels `first..first + count`.
fn segment_rows(values: &[i16], k: usize, cin: usize, n: usize, first: usize, count: usize) -> Vec<i16> {
    let mut rows = Vec::with_capacity(k * k * count * n);
    for tap in 0..k * k {
        let start = (tap * cin + first) * n;
        rows.extend_from_slice(&values[start..start + count * n]);
    }
    rows
}

/// `codes [k*k*cin, n]` cut by input segment, each packed by `pack` (`Panels::new` or
/// `NarrowPanels::new`).
fn split_into_panels<P>(
    codes: &[i16],
    spec: &ConvSpec,
    segments: &[usize],
    n: usize,
    pack: impl Fn(&[i16], usize, usize) -> Result<P>,
) -> Result<Vec<P>> {
    let mut first = 0;
    let mut panels = Vec::with_capacity(segments.len());
    for &count in segments {
        let rows = segment_rows(codes, spec.k, spec.cin, n, first, count);
        panels.push(pack(&rows, spec.k * spec.k * count, n)?);
        first += count;
    }
    Ok(panels)
}

fn tensor_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

impl IntegerUnet {
    /// Packs `model`'s int8 weights for `kernel`.
    pub fn new(model: &Model, kernel: Kernel) -> Result<Self> {
        let config = model.config().clone();
        let graph = config.graph();
        let mut segments_of = vec![Vec::new(); graph.convs.len()];
        for node in &graph.nodes {
            if let Node::Conv { conv, join, .. } = node {
                let spec = &graph.convs[*conv];
                segments_of[*conv] = match join {
                    Some(join) => {
                        let joined = graph.channels(join.value());
                        vec![spec.cin - joined, joined]
                    }
                    None => vec![spec.cin],
                };
            }
        }
        // The file's codes are packed as they are, the convs side by side: this is most of what a
        // one-shot CLI edit spends before its first forward.
        let layers: Vec<_> = graph.convs.iter().zip(&model.int8.convs).zip(segments_of).collect();
        let convs = layers
            .into_par_iter()
            .map(|((spec, stored), segments)| {
                let codes: Vec<i16> = stored.codes.iter().map(|&c| i16::from(c)).collect();
                let weights = split_into_panels(&codes, spec, &segments, spec.cout, Panels::new)?;
                Ok(IntegerConv {
                    spec: spec.clone(),
                    segments,
                    weights,
                    weight_scale: stored.scales.clone(),
                    bias: stored.bias.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        model.profile.check_covers(&config)?;
        Ok(Self { kernel, config, graph, convs, profile: model.profile.clone() })
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    fn scale(&self, point: &str) -> Result<f32> {
        self.profile
            .activations
            .get(point)
            .copied()
            .ok_or_else(|| EngineError::Model(format!("quantization profile {} has no scale for '{point}'", self.profile.id)))
    }

    /// Puts a LoRA set bound for int8 (its A and B on the shared profile's grids) into the
    /// integer kernels' form; an A value off the grid is an error.
    pub fn bind(&self, set: &LoraSet) -> Result<IntegerLora> {
        let mut layers: Vec<Option<IntegerLoraLayer>> = (0..self.convs.len()).map(|_| None).collect();
        for (name, layer) in &set.layers {
            let index = self
                .convs
                .iter()
                .position(|c| &c.spec.name == name)
                .ok_or_else(|| EngineError::Model(format!("adapter layer '{name}' is not a conv of the model")))?;
            let conv = &self.convs[index];
            let quant = self.profile.lora.get(name).ok_or_else(|| {
                EngineError::Model(format!("quantization profile {} has no LoRA quantizer for '{name}'", self.profile.id))
            })?;
            let (rows, rank) = layer.a.dims2()?;
            let a_scale = quant.a.scale;
            let codes: Vec<i16> =
                grid_codes(&layer.a, a_scale, &format!("adapter layer '{name}'"))?.iter().map(|&v| v as i16).collect();
            debug_assert_eq!(rows, conv.spec.k * conv.spec.k * conv.spec.cin);
            let mid_point = format!("{name}.lora_mid");
            let mid_scale = self.scale(&mid_point)?;
            let cout = conv.spec.cout;
            let b_codes = grid_codes(&layer.b, quant.b.scale, &format!("adapter layer '{name}'"))?;
            let mut b = Vec::new();
            for (first, end, rank_scale) in runs(&tensor_values(&layer.rank_scale)?) {
                let mut run = vec![0i16; rank * cout];
                for (j, row) in run.chunks_exact_mut(cout).enumerate().take(end).skip(first) {
                    row.iter_mut().zip(&b_codes[j * cout..]).for_each(|(r, &v)| *r = v as i16);
                }
                let panels = Panels::new(&run, rank, cout)?;
                let scales = vec![mid_scale * rank_scale * quant.b.scale; panels.count() * PANEL];
                b.push(BPart { panels, scales });
            }
            layers[index] = Some(IntegerLoraLayer {
                rank,
                a: match self.kernel.narrow_lanes() {
                    Some(lanes) if rank <= MAX_NARROW_RANK.min(lanes) => {
                        let pack = |values: &[i16], k, n| NarrowPanels::new(values, k, n, lanes);
                        LoraA::Narrow(split_into_panels(&codes, &conv.spec, &conv.segments, rank, pack)?)
                    }
                    _ => LoraA::Wide(split_into_panels(&codes, &conv.spec, &conv.segments, rank, Panels::new)?),
                },
                a_scale,
                mid: Rounding::new(mid_scale, self.profile.activation_bits),
                b,
            });
        }
        Ok(IntegerLora { layers })
    }

    /// Runs the model on `input [N,H,W,4]` and returns the RGB residual `[N,H,W,3]`, as
    /// `Unet::forward` with QuantSim does.
    pub fn forward(&self, input: &Tensor, lora: Option<&IntegerLora>) -> Result<Tensor> {
        self.run(input, lora, None)
    }

    /// Layer by layer against QuantSim: every op is fed the reference's stored inputs
    /// (`reference`: QuantSim's value at each stored point, by point name) and its output is
    /// compared with the reference's at its point. Returns each point with the largest
    /// difference in quantization steps.
    pub fn layerwise_check(
        &self,
        input: &Tensor,
        lora: Option<&IntegerLora>,
        reference: &StoredTensors,
    ) -> Result<Vec<(String, f32)>> {
        let mut report = Vec::new();
        self.run(input, lora, Some((reference, &mut report)))?;
        Ok(report)
    }

    fn run(
        &self,
        input: &Tensor,
        lora: Option<&IntegerLora>,
        mut check: Option<(&StoredTensors, &mut Vec<(String, f32)>)>,
    ) -> Result<Tensor> {
        let (n, h, w, c) = input.dims4()?;
        let align = self.config.alignment();
        if c != INPUT_CHANNELS || h % align != 0 || w % align != 0 || h == 0 || w == 0 {
            return Err(EngineError::Model(format!(
                "model input must be [N,H,W,{INPUT_CHANNELS}] with H and W multiples of {align}, got {:?}",
                input.dims()
            )));
        }
        let mut values: Vec<Option<Grid>> = (0..self.graph.nodes.len()).map(|_| None).collect();
        let mut output = None;
        for (index, (node, last_reads)) in self.graph.nodes.iter().zip(self.graph.last_reads()).enumerate() {
            let (mut value, point) = match node {
                Node::Input => {
                    let scale = self.scale("input")?;
                    let x = tensor_values(input)?;
                    let mut q = vec![0i16; x.len()];
                    elementwise::quantize(self.kernel, &x, Rounding::new(scale, self.profile.activation_bits), &mut q);
                    (Grid { q, dims: (n, h, w, c), scale }, Some("input".to_string()))
                }
                Node::Unshuffle { x } => (unshuffle(take(&values, *x)?), None),
                Node::Conv { conv, x, join } => {
                    let x = take(&values, *x)?;
                    let joined = join.map(|j| Ok::<_, EngineError>((take(&values, j.value())?, j.upsamples_x()))).transpose()?;
                    let layer = lora.and_then(|l| l.layers.get(*conv)).and_then(Option::as_ref);
                    let conv = &self.convs[*conv];
                    (self.conv(conv, x, joined, layer)?, Some(format!("{}.out", conv.spec.name)))
                }
                Node::Add { x, y, point } => (
                    add(self.kernel, take(&values, *x)?, take(&values, *y)?, self.scale(point)?, &self.profile),
                    Some(point.clone()),
                ),
                Node::Shuffle { x } => {
                    output = Some(shuffle_to_tensor(take(&values, *x)?)?);
                    continue;
                }
            };
            if let (Some((reference, report)), Some(point)) = (check.as_mut(), point) {
                let expected = reference
                    .get(&point)
                    .ok_or_else(|| EngineError::Model(format!("the reference has no value at '{point}'")))?;
                if expected.len() != value.q.len() {
                    return Err(EngineError::Model(format!("the reference's '{point}' has another shape")));
                }
                let steps =
                    value.q.iter().zip(expected).map(|(&q, &v)| (q as f32 - (v / value.scale).round()).abs()).fold(0.0, f32::max);
                report.push((point, steps));
                // The next ops read the reference's value, so each op is checked on its own.
                value.q = expected.iter().map(|&v| (v / value.scale).round() as i16).collect();
            }
            values[index] = Some(value);
            for read in last_reads {
                values[read] = None;
            }
        }
        output.ok_or_else(|| missing_value(self.graph.nodes.len()))
    }

    /// Conv `conv` on `x`, joined with a second grid when there is one (and `x` then read
    /// upsampled x2 beside it if the flag says so).
    fn conv(&self, conv: &IntegerConv, x: &Grid, joined: Option<(&Grid, bool)>, lora: Option<&IntegerLoraLayer>) -> Result<Grid> {
        let spec = &conv.spec;
        // Sources are (grid, read upsampled).
        let sources: Vec<(&Grid, bool)> = match joined {
            Some((other, upsample_x)) => vec![(x, upsample_x), (other, false)],
            None => vec![(x, false)],
        };
        let (n, h, w) = match joined {
            Some((other, _)) => (other.dims.0, other.dims.1, other.dims.2),
            None => (x.dims.0, x.dims.1, x.dims.2),
        };
        for ((grid, _), &channels) in sources.iter().zip(&conv.segments) {
            if grid.dims.3 != channels {
                return Err(EngineError::Model(format!(
                    "conv '{}' reads {} channels, expected {channels}",
                    spec.name, grid.dims.3
                )));
            }
        }
        let geometry = spec.geometry();
        let (oh, ow) = geometry.output_size(h, w);
        let cout = spec.cout;
        let width = conv.weights[0].count() * PANEL;
        let weight_scales: Vec<Vec<f32>> = sources
            .iter()
            .map(|(grid, _)| (0..width).map(|c| conv.weight_scale.get(c).map_or(0.0, |s| s * grid.scale)).collect())
            .collect();
        let lora_width = lora.map_or(0, |l| l.a.width());
        let a_scales: Vec<Vec<f32>> = match lora {
            Some(l) => sources.iter().map(|(grid, _)| vec![l.a_scale * grid.scale; lora_width]).collect(),
            None => Vec::new(),
        };
        let out_point = format!("{}.out", spec.name);
        let out_scale = self.scale(&out_point)?;
        let rounding = Rounding::new(out_scale, self.profile.activation_bits);
        let tile_rows = self.kernel.rows();
        let kernel = self.kernel;

        let mut out = vec![0i16; n * oh * ow * cout];
        out.par_chunks_mut(oh * ow * cout)
            .enumerate()
            .flat_map(|(image, image_out)| {
                image_out.par_chunks_mut(BLOCK_PIXELS * cout).enumerate().map(move |(block, dst)| (image, block, dst))
            })
            .for_each_init(Scratch::default, |scratch, (image, block, dst)| {
                let first = block * BLOCK_PIXELS;
                let pixels = dst.len() / cout;
                let rows = pixels.next_multiple_of(tile_rows);
                scratch.tile.clear();
                scratch.tile.resize(rows * width, 0.0);
                scratch.lora_tile.clear();
                scratch.lora_tile.resize(rows * lora_width, 0.0);
                for (s, &(grid, upsampled)) in sources.iter().enumerate() {
                    let stride = 2 * conv.weights[s].pairs();
                    scratch.cols.resize(rows * stride + READ_PAST, 0);
                    im2col(grid, image, upsampled, (h, w), geometry, ow, first, pixels, stride, &mut scratch.cols);
                    kernel.multiply(&scratch.cols, rows, &conv.weights[s], &weight_scales[s], &mut scratch.tile, width);
                    match lora.map(|l| &l.a) {
                        Some(LoraA::Wide(a)) => {
                            kernel.multiply(&scratch.cols, rows, &a[s], &a_scales[s], &mut scratch.lora_tile, lora_width)
                        }
                        Some(LoraA::Narrow(a)) => {
                            kernel.multiply_narrow(&scratch.cols, rows, &a[s], &a_scales[s], &mut scratch.lora_tile, lora_width)
                        }
                        None => {}
                    }
                }
                if let Some(lora) = lora {
                    // B(s * q(A x)): A x to the mid-point's int16 codes, then B's runs into the tile.
                    let mid_stride = 2 * lora.b[0].panels.pairs();
                    scratch.mid.clear();
                    scratch.mid.resize(rows * mid_stride, 0);
                    elementwise::quantize_rows(
                        kernel,
                        &scratch.lora_tile,
                        lora_width,
                        lora.rank,
                        lora.mid,
                        &mut scratch.mid,
                        mid_stride,
                    );
                    for part in &lora.b {
                        kernel.multiply(&scratch.mid, rows, &part.panels, &part.scales, &mut scratch.tile, width);
                    }
                }
                let finish = Finish {
                    tile: &mut scratch.tile,
                    stride: width,
                    bias: &conv.bias,
                    leaky_relu: spec.leaky_relu,
                    rounding,
                    out: dst,
                };
                elementwise::finish_rows(kernel, finish);
            });
        Ok(Grid { q: out, dims: (n, oh, ow, cout), scale: out_scale })
    }
}

/// Per-thread buffers of a conv.
#[derive(Default)]
struct Scratch {
    cols: Vec<i16>,
    tile: Vec<f32>,
    lora_tile: Vec<f32>,
    /// LoRA's mid-point codes, `2 * B's pairs` per pixel.
    mid: Vec<i16>,
}

/// Fills `cols` (`pixels` rows of `stride` values) with the receptive fields of output pixels
/// `first..first + pixels` of image `image` of `grid`: zero outside the `h x w` input, read at
/// half resolution when `upsampled` (nearest x2), zero in the row's padding.
#[allow(clippy::too_many_arguments)]
fn im2col(
    grid: &Grid,
    image: usize,
    upsampled: bool,
    (h, w): (usize, usize),
    geometry: ConvGeometry,
    out_w: usize,
    first: usize,
    pixels: usize,
    stride: usize,
    cols: &mut [i16],
) {
    let (_, gh, gw, c) = grid.dims;
    let data = &grid.q[image * gh * gw * c..(image + 1) * gh * gw * c];
    let k = geometry.k;
    let pad = (k / 2) as isize;
    for p in 0..pixels {
        let (oy, ox) = ((first + p) / out_w, (first + p) % out_w);
        let row = &mut cols[p * stride..(p + 1) * stride];
        for ky in 0..k {
            let iy = (oy * geometry.stride) as isize + ky as isize - pad;
            let left = (ox * geometry.stride) as isize - pad;
            // Inside the image, a tap row's k pixels are side by side in the source: one copy.
            if !upsampled && iy >= 0 && iy < h as isize && left >= 0 && left + k as isize <= w as isize {
                let src = (iy as usize * gw + left as usize) * c;
                row[ky * k * c..(ky + 1) * k * c].copy_from_slice(&data[src..src + k * c]);
                continue;
            }
            for kx in 0..k {
                let ix = (ox * geometry.stride) as isize + kx as isize - pad;
                let dst = &mut row[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                    dst.fill(0);
                } else {
                    let (sy, sx) = if upsampled { (iy as usize / 2, ix as usize / 2) } else { (iy as usize, ix as usize) };
                    let src = (sy * gw + sx) * c;
                    dst.copy_from_slice(&data[src..src + c]);
                }
            }
        }
        row[k * k * c..].fill(0);
    }
}

fn take(values: &[Option<Grid>], id: ValueId) -> Result<&Grid> {
    values[id].as_ref().ok_or_else(|| missing_value(id))
}

/// `[N,H,W,C] -> [N,H/2,W/2,4C]`, channel order `(dy, dx, c)` (as `unet::pixel_unshuffle`).
fn unshuffle(x: &Grid) -> Grid {
    let (n, h, w, c) = x.dims;
    let (oh, ow, f) = (h / SHUFFLE, w / SHUFFLE, SHUFFLE);
    let mut q = Vec::with_capacity(x.q.len());
    for b in 0..n {
        for y in 0..oh {
            for xx in 0..ow {
                for dy in 0..f {
                    for dx in 0..f {
                        let src = ((b * h + y * f + dy) * w + xx * f + dx) * c;
                        q.extend_from_slice(&x.q[src..src + c]);
                    }
                }
            }
        }
    }
    Grid { q, dims: (n, oh, ow, c * f * f), scale: x.scale }
}

/// The residual add, stored at its point: `round((qx sx + qy sy) / s)`.
fn add(kernel: Kernel, x: &Grid, y: &Grid, scale: f32, profile: &Profile) -> Grid {
    let mut q = vec![0i16; x.q.len()];
    elementwise::add(kernel, &x.q, x.scale, &y.q, y.scale, Rounding::new(scale, profile.activation_bits), &mut q);
    Grid { q, dims: x.dims, scale }
}

/// Pixel shuffle of the head's stored output back to `[N,2H,2W,C/4]` floats.
fn shuffle_to_tensor(x: &Grid) -> Result<Tensor> {
    let (n, h, w, cff) = x.dims;
    let f = SHUFFLE;
    let c = cff / (f * f);
    let mut out = vec![0f32; n * h * f * w * f * c];
    for b in 0..n {
        for y in 0..h {
            for xx in 0..w {
                for dy in 0..f {
                    for dx in 0..f {
                        let src = ((b * h + y) * w + xx) * cff + (dy * f + dx) * c;
                        let dst = ((b * h * f + y * f + dy) * w * f + xx * f + dx) * c;
                        for ch in 0..c {
                            out[dst + ch] = x.q[src + ch] as f32 * x.scale;
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (n, h * f, w * f, c), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{ResidentAdapter, bind_mix};
    use crate::fixtures::{photo_input, synthetic_photo, write_model_dir};
    use crate::int8::KernelPath;
    use crate::quant::{QuantSim, Recorder};

    /// Every path this CPU runs (NEON too, where the tests run on ARM) stores every tensor within
    /// one step of QuantSim, layer by layer, with a blend of two adapters bound across a skip.
    #[test]
    fn every_path_is_within_one_step_of_quantsim() {
        let dir = tempfile::tempdir().unwrap();
        let config = UnetConfig::new(vec![6, 10, 12], vec![1, 0, 1], 4).unwrap();
        let model = write_model_dir(dir.path(), &config, 3).unwrap();
        let input = photo_input(&synthetic_photo(40, 24, 5)).unwrap();
        let residents: Vec<ResidentAdapter> = model
            .shipped_adapters()
            .iter()
            .map(|f| ResidentAdapter::new(&model.read_adapter(f).unwrap(), Some(&model.profile), &Device::Cpu).unwrap())
            .collect();
        let parts: Vec<(&ResidentAdapter, f32)> = residents.iter().map(|a| (a, 0.7)).collect();
        let set = bind_mix(&parts, 1.0, true).unwrap();
        let mut recorder = Recorder::new(Some(QuantSim { profile: &model.profile }));
        let expected = tensor_values(&model.quantized().unwrap().forward(&input, Some(&set), &mut recorder).unwrap()).unwrap();
        for path in KernelPath::ALL.into_iter().filter(|p| p.supported()) {
            let unet = IntegerUnet::new(&model, Kernel::new(path).unwrap()).unwrap();
            let lora = unet.bind(&set).unwrap();
            let report = unet.layerwise_check(&input, Some(&lora), &recorder.values).unwrap();
            assert_eq!(report.len(), recorder.values.len() - config.convs().len(), "every stored point but lora_mid");
            for (point, steps) in &report {
                assert!(*steps <= 1.0, "{path:?} '{point}': {steps} steps");
            }
            let got = tensor_values(&unet.forward(&input, Some(&lora)).unwrap()).unwrap();
            let mse = got.iter().zip(&expected).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / got.len() as f64;
            let psnr = 10.0 * (4.0 / mse.max(1e-30)).log10();
            assert!(psnr >= 60.0, "{path:?}: {psnr:.1} dB end to end");
        }
    }
}
