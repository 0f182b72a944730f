//! The wgpu backend, Prism's NPU stand-in: the base model is compiled once (pipelines, layouts,
//! int8 weights in GPU buffers, per-size activation buffers); adapters are inputs. Installing an
//! adapter uploads its int8 A/B once into buffers of its own and builds its bind groups; a tool
//! switch then only selects those bind groups and writes the 272-byte rank-scale uniform. A blend
//! is assembled on the GPU by buffer-to-buffer copies into a slot (the shared profile makes int8
//! codes of different adapters concatenable). The single-slot variant writes the active
//! adapter's tensors from the CPU into that slot, as an NPU graph input would be written.
//!
//! Semantics are QuantSim's (engine/src/quant.rs): stored activations are int16 (or int8) on the
//! profile's static scales, computed in f32 after dequantizing. A float path (f32 weights and
//! activations, same kernels) exists for comparison.

mod context;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{Device, Tensor};

use context::{AddParams, ConvParams, Kernels, Layouts, LoraScales, ShuffleParams, activation_bytes, bind, groups_for, padded};
pub use context::{Gpu, MAX_RANK, Storage};

use crate::adapter::{Adapter, ResidentAdapter};
use crate::backend::{AdapterInfo, Backend, BackendKind, MemoryReport, Precision};
use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::quant::{LoraQuant, quantize_weight_per_channel};
use crate::unet::{ConvSpec, LEAKY_SLOPE};

/// How a tool switch reaches the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapMode {
    /// Each adapter keeps its own GPU buffers; a switch selects its bind groups.
    Rebind,
    /// One fixed set of adapter input buffers; a switch writes the adapter's tensors into them.
    SingleSlot,
}

/// Bytes on the GPU, by category.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuMemory {
    pub base_int8: usize,
    pub base_f32: usize,
    pub adapters_int8: usize,
    pub adapters_f32: usize,
    pub slot: usize,
    pub activations: usize,
}

fn backend_error(message: impl Into<String>) -> EngineError {
    EngineError::Backend(message.into())
}

fn words_i8(values: &[i8]) -> Vec<u32> {
    values.chunks(4).map(|c| c.iter().enumerate().fold(0u32, |w, (i, v)| w | (u32::from(*v as u8) << (8 * i)))).collect()
}

fn bytes_u32(words: &[u32]) -> &[u8] {
    bytemuck::cast_slice(words)
}

/// Rows of `row_len` int8 values, each padded with `fill` to whole words.
fn pack_rows_i8(rows: &[Vec<i8>], row_len: usize, fill: i8) -> Vec<u32> {
    let row_words = row_len.div_ceil(4);
    let mut out = Vec::with_capacity(rows.len() * row_words);
    for row in rows {
        let mut padded_row = row.clone();
        padded_row.resize(row_words * 4, fill);
        out.extend(words_i8(&padded_row));
    }
    out
}

fn pack_rows_f32(rows: &[Vec<f32>], row_len: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(rows.len() * row_len);
    for row in rows {
        out.extend(row.iter().map(|v| v.to_bits()));
        out.extend(std::iter::repeat_n(0u32, row_len - row.len()));
    }
    out
}

/// One conv's compiled weights.
struct GpuLayer {
    spec: ConvSpec,
    weights_q: wgpu::BindGroup,
    weights_f: wgpu::BindGroup,
    lora_quant: Option<LoraQuant>,
    bytes_int8: usize,
    bytes_f32: usize,
}

/// One adapter tensor pair on the GPU, both precisions, with bind groups.
struct AdapterLayer {
    a: [wgpu::Buffer; 2],
    b: [wgpu::Buffer; 2],
    a_group: [wgpu::BindGroup; 2],
    b_group: [wgpu::BindGroup; 2],
    /// Packed words, kept on the CPU for the single-slot mode.
    host_a: [Vec<u32>; 2],
    host_b: [Vec<u32>; 2],
}

struct GpuAdapter {
    info: AdapterInfo,
    alpha: f32,
    rank: usize,
    layers: Vec<Option<AdapterLayer>>,
    scales: wgpu::Buffer,
    bytes_int8: usize,
    bytes_f32: usize,
}

/// The blend / single-slot input buffers, sized for `MAX_RANK`.
struct Slot {
    layers: Vec<AdapterLayer>,
    scales: wgpu::Buffer,
    bytes: usize,
}

/// Index 0 = int8 path, 1 = float path.
fn path(precision: Precision) -> usize {
    match precision {
        Precision::Int8 => 0,
        Precision::Float => 1,
    }
}

#[derive(Clone, Debug)]
enum LoraSource {
    None,
    /// One adapter, its own buffers.
    Adapter(String),
    /// One adapter written into the slot (single-slot mode).
    Slot,
    /// Several adapters: each runs its A pass from its own buffers, B is assembled in the slot.
    Blend(Vec<String>),
}

struct Bound {
    precision: Precision,
    source: LoraSource,
    /// Channels of the rank intermediate (a blend: each adapter's rank padded to 4).
    rank: usize,
    /// The adapters' own ranks, in order (the reference concatenates them unpadded).
    segments: Vec<usize>,
    /// Per conv: does the bound set have a side path there.
    covered: Vec<bool>,
}

/// An activation tensor of a plan.
#[derive(Clone)]
struct Act {
    buffer: Arc<wgpu::Buffer>,
    /// The quantization point that stores it (QuantSim's name).
    point: String,
    h: usize,
    w: usize,
    c: usize,
    scale: f32,
}

enum Op {
    Unshuffle { group: wgpu::BindGroup, invocations: usize },
    Conv { layer: usize, group: wgpu::BindGroup, a_group: wgpu::BindGroup, pixels: usize, cout: usize },
    Add { group: wgpu::BindGroup, words: usize },
    Shuffle { group: wgpu::BindGroup, invocations: usize },
}

/// What an op reads and writes, for the layer-by-layer parity check.
struct OpIo {
    inputs: Vec<Act>,
    output: Option<Act>,
    /// A conv's rank-r intermediate (point `<conv>.lora_mid`; its channels are the bound rank).
    mid: Option<Act>,
}

/// Everything sized for one input size and storage mode.
struct Plan {
    input: wgpu::Buffer,
    residual: wgpu::Buffer,
    residual_bytes: u64,
    ops: Vec<Op>,
    io: Vec<OpIo>,
    bytes: usize,
}

pub struct WgpuBackend {
    gpu: Arc<Gpu>,
    model: Model,
    kernels: [Kernels; 2],
    layers: Vec<GpuLayer>,
    adapters: BTreeMap<String, GpuAdapter>,
    slot: Slot,
    /// Bound when no adapter covers a conv: rank 0.
    no_lora: wgpu::BindGroup,
    dummy: wgpu::Buffer,
    bound: Option<Bound>,
    plans: HashMap<(usize, usize, Storage), Plan>,
    pub swap: SwapMode,
}

impl WgpuBackend {
    /// Compiles `model` on the best GPU (a software adapter only when `allow_software`).
    pub fn new(model: Model, allow_software: bool) -> Result<Self> {
        let gpu = Arc::new(Gpu::open(allow_software)?);
        Self::on(gpu, model)
    }

    pub fn on(gpu: Arc<Gpu>, model: Model) -> Result<Self> {
        let _span = tracing::info_span!("wgpu_compile", device = %gpu.describe()).entered();
        let layouts = Arc::new(Layouts::new(&gpu.device));
        let bits = model.profile.activation_bits;
        let kernels = [
            Kernels::new(&gpu, layouts.clone(), Storage::Quantized { bits }),
            Kernels::new(&gpu, layouts.clone(), Storage::Float),
        ];
        let mut layers = Vec::new();
        for (spec, kernel, bias) in model.float.layers() {
            let (q, scales) = quantize_weight_per_channel(kernel)?;
            let values = kernel.flatten_all()?.to_vec1::<f32>()?;
            let bias = bias.to_vec1::<f32>()?;
            // The kernel layout [(ky, kx, ci), cout] with cout padded to 4: one int8 word (or four
            // f32 words) holds the weights of four output channels at one tap.
            let q_rows: Vec<Vec<i8>> = q.chunks(spec.cout).map(<[i8]>::to_vec).collect();
            let q_words = pack_rows_i8(&q_rows, padded(spec.cout), 0);
            let f_rows: Vec<Vec<f32>> = values.chunks(spec.cout).map(<[f32]>::to_vec).collect();
            let f_words = pack_rows_f32(&f_rows, padded(spec.cout));
            let channel_q: Vec<f32> = scales.iter().chain(&bias).copied().collect();
            let channel_f: Vec<f32> = std::iter::repeat_n(1.0, spec.cout).chain(bias.iter().copied()).collect();
            let wq = gpu.storage(&format!("{} int8", spec.name), bytes_u32(&q_words));
            let cq = gpu.storage(&format!("{} scales", spec.name), bytemuck::cast_slice(&channel_q));
            let wf = gpu.storage(&format!("{} f32", spec.name), bytes_u32(&f_words));
            let cf = gpu.storage(&format!("{} bias", spec.name), bytemuck::cast_slice(&channel_f));
            layers.push(GpuLayer {
                weights_q: bind(&gpu.device, &spec.name, &layouts.conv_weights, &[&wq, &cq]),
                weights_f: bind(&gpu.device, &spec.name, &layouts.conv_weights, &[&wf, &cf]),
                lora_quant: model.profile.lora.get(&spec.name).copied(),
                bytes_int8: q_words.len() * 4 + channel_q.len() * 4,
                bytes_f32: f_words.len() * 4 + channel_f.len() * 4,
                spec: spec.clone(),
            });
        }
        let dummy = gpu.empty_storage("dummy", 16);
        let zero_scales = gpu.uniform("no lora", bytemuck::bytes_of(&LoraScales::new(&[])?));
        let no_lora = bind(&gpu.device, "no lora", &layouts.conv_lora, &[&dummy, &zero_scales]);
        let slot = Self::make_slot(&gpu, &layouts, &layers)?;
        Ok(Self {
            gpu,
            model,
            kernels,
            layers,

            adapters: BTreeMap::new(),
            slot,
            no_lora,
            dummy,
            bound: None,
            plans: HashMap::new(),
            swap: SwapMode::Rebind,
        })
    }

    fn make_slot(gpu: &Gpu, layouts: &Layouts, layers: &[GpuLayer]) -> Result<Slot> {
        let scales = gpu.uniform("slot scales", bytemuck::bytes_of(&LoraScales::new(&[])?));
        let mut slot_layers = Vec::new();
        let mut bytes = 0;
        for layer in layers {
            let spec = &layer.spec;
            let rows = spec.k * spec.k * spec.cin;
            let sizes =
                [(rows * MAX_RANK, MAX_RANK * padded(spec.cout)), (rows * MAX_RANK * 4, MAX_RANK * padded(spec.cout) * 4)];
            let a = [gpu.empty_storage("slot a int8", sizes[0].0 as u64), gpu.empty_storage("slot a f32", sizes[1].0 as u64)];
            let b = [gpu.empty_storage("slot b int8", sizes[0].1 as u64), gpu.empty_storage("slot b f32", sizes[1].1 as u64)];
            bytes += sizes[0].0 + sizes[0].1 + sizes[1].0 + sizes[1].1;
            slot_layers.push(Self::adapter_layer_groups(
                gpu,
                layouts,
                layer,
                a,
                b,
                &scales,
                [Vec::new(), Vec::new()],
                [Vec::new(), Vec::new()],
            ));
        }
        Ok(Slot { layers: slot_layers, scales, bytes })
    }

    #[allow(clippy::too_many_arguments)]
    fn adapter_layer_groups(
        gpu: &Gpu,
        layouts: &Layouts,
        layer: &GpuLayer,
        a: [wgpu::Buffer; 2],
        b: [wgpu::Buffer; 2],
        scales: &wgpu::Buffer,
        host_a: [Vec<u32>; 2],
        host_b: [Vec<u32>; 2],
    ) -> AdapterLayer {
        let a_scale = layer.lora_quant.map_or(1.0, |q| q.a.scale);
        let channel_q = gpu.storage("a scale", bytemuck::cast_slice(&[a_scale]));
        let channel_f = gpu.storage("a scale f32", bytemuck::cast_slice(&[1.0f32]));
        let name = &layer.spec.name;
        let a_group = [
            bind(&gpu.device, name, &layouts.conv_weights, &[&a[0], &channel_q]),
            bind(&gpu.device, name, &layouts.conv_weights, &[&a[1], &channel_f]),
        ];
        let b_group = [
            bind(&gpu.device, name, &layouts.conv_lora, &[&b[0], scales]),
            bind(&gpu.device, name, &layouts.conv_lora, &[&b[1], scales]),
        ];
        AdapterLayer { a, b, a_group, b_group, host_a, host_b }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    pub fn gpu_memory(&self) -> GpuMemory {
        GpuMemory {
            base_int8: self.layers.iter().map(|l| l.bytes_int8).sum(),
            base_f32: self.layers.iter().map(|l| l.bytes_f32).sum(),
            adapters_int8: self.adapters.values().map(|a| a.bytes_int8).sum(),
            adapters_f32: self.adapters.values().map(|a| a.bytes_f32).sum(),
            slot: self.slot.bytes,
            activations: self.plans.values().map(|p| p.bytes).sum(),
        }
    }

    fn upload_adapter(&self, resident: &ResidentAdapter, stored_bytes: usize) -> Result<GpuAdapter> {
        let meta = &resident.meta;
        let rank = meta.rank;
        if rank > MAX_RANK {
            return Err(backend_error(format!(
                "adapter '{}' has rank {rank}; the wgpu backend binds at most {MAX_RANK}",
                meta.name
            )));
        }
        let scales = self.gpu.uniform(&format!("{} scales", meta.name), bytemuck::bytes_of(&LoraScales::new(&vec![0.0; rank])?));
        let layouts = &self.kernels[0].layouts;
        let mut layers = Vec::with_capacity(self.layers.len());
        let (mut bytes_int8, mut bytes_f32) = (0, 0);
        for layer in &self.layers {
            let spec = &layer.spec;
            let (Some((qa, qb)), Some((fa, fb))) = (resident.quantized.get(&spec.name), resident.float.get(&spec.name)) else {
                layers.push(None);
                continue;
            };
            let quant =
                layer.lora_quant.ok_or_else(|| backend_error(format!("the profile has no LoRA grid for '{}'", spec.name)))?;
            // Kernel layout A [rows, rank] packs like the base weights (four rank channels per word
            // at each tap); B [rank, cout] stays rank-major, so a blend concatenates B by copies.
            let qa_rows: Vec<Vec<f32>> = qa.to_vec2::<f32>()?;
            let qb_rows: Vec<Vec<f32>> = qb.to_vec2::<f32>()?;
            // The quantized tensors hold values on the shared grid: their codes are exact.
            let codes = |rows: &[Vec<f32>], grid: crate::quant::Affine| -> Vec<Vec<i8>> {
                rows.iter().map(|r| r.iter().map(|v| grid.quantize(*v)).collect()).collect()
            };
            let a_q = pack_rows_i8(&codes(&qa_rows, quant.a), padded(rank), quant.a.zero_point as i8);
            let b_q = pack_rows_i8(&codes(&qb_rows, quant.b), padded(spec.cout), quant.b.zero_point as i8);
            let a_f = pack_rows_f32(&fa.to_vec2::<f32>()?, padded(rank));
            let b_f = pack_rows_f32(&fb.to_vec2::<f32>()?, padded(spec.cout));
            bytes_int8 += (a_q.len() + b_q.len()) * 4;
            bytes_f32 += (a_f.len() + b_f.len()) * 4;
            let label = format!("{} {}", meta.name, spec.name);
            let a = [self.gpu.storage(&label, bytes_u32(&a_q)), self.gpu.storage(&label, bytes_u32(&a_f))];
            let b = [self.gpu.storage(&label, bytes_u32(&b_q)), self.gpu.storage(&label, bytes_u32(&b_f))];
            layers.push(Some(Self::adapter_layer_groups(&self.gpu, layouts, layer, a, b, &scales, [a_q, a_f], [b_q, b_f])));
        }
        let info = AdapterInfo { meta: meta.clone(), quantized_on_load: resident.quantized_on_load, stored_bytes };
        Ok(GpuAdapter { info, alpha: meta.alpha, rank, layers, scales, bytes_int8, bytes_f32 })
    }

    /// Writes `adapter`'s tensors from the CPU into the slot: the single-slot mode, where the
    /// adapter is a graph input written per switch.
    fn write_slot(&self, adapter: &GpuAdapter, precision: Precision) {
        let p = path(precision);
        for (slot, layer) in self.slot.layers.iter().zip(&adapter.layers) {
            if let Some(source) = layer {
                self.gpu.queue.write_buffer(&slot.a[p], 0, bytes_u32(&source.host_a[p]));
                self.gpu.queue.write_buffer(&slot.b[p], 0, bytes_u32(&source.host_b[p]));
            }
        }
    }

    /// Assembles a blend's B in the slot by GPU copies: each adapter's rows, padded with zero
    /// rows to a multiple of 4 (where its A pass writes). Returns which convs any adapter covers.
    fn blend_slot(&self, mix: &[&GpuAdapter], precision: Precision) -> Vec<bool> {
        let p = path(precision);
        let mut encoder = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("blend") });
        let mut covered = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let b_row = match precision {
                Precision::Int8 => padded(layer.spec.cout),
                Precision::Float => padded(layer.spec.cout) * 4,
            } as u64;
            covered.push(mix.iter().any(|a| a.layers[index].is_some()));
            // Zero-valued rows: the grid's zero point in int8, 0.0 in f32.
            let zeros = |rows: u64| -> Vec<u32> {
                match (precision, layer.lora_quant) {
                    (Precision::Int8, Some(q)) => words_i8(&vec![q.b.zero_point as i8; (rows * b_row) as usize]),
                    _ => vec![0u32; (rows * b_row / 4) as usize],
                }
            };
            let slot = &self.slot.layers[index];
            let mut offset = 0u64;
            for adapter in mix {
                let (rank, segment) = (adapter.rank as u64, padded(adapter.rank) as u64);
                match &adapter.layers[index] {
                    Some(source) => {
                        encoder.copy_buffer_to_buffer(&source.b[p], 0, &slot.b[p], offset, rank * b_row);
                        if segment > rank {
                            self.gpu.queue.write_buffer(&slot.b[p], offset + rank * b_row, bytes_u32(&zeros(segment - rank)));
                        }
                    }
                    None => self.gpu.queue.write_buffer(&slot.b[p], offset, bytes_u32(&zeros(segment))),
                }
                offset += segment * b_row;
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
        covered
    }

    fn plan(&mut self, h: usize, w: usize, storage: Storage) -> Result<()> {
        if self.plans.contains_key(&(h, w, storage)) {
            return Ok(());
        }
        let _span = tracing::info_span!("wgpu_plan", h, w).entered();
        let gpu = self.gpu.clone();
        let layouts = self.kernels[0].layouts.clone();
        let profile = &self.model.profile;
        let quantized = matches!(storage, Storage::Quantized { .. });
        let scale_of = |point: &str| -> Result<f32> {
            if !quantized {
                return Ok(1.0);
            }
            profile
                .activations
                .get(point)
                .copied()
                .ok_or_else(|| backend_error(format!("the profile has no activation scale for '{point}'")))
        };
        let bytes = std::cell::Cell::new(0usize);
        let mut new_act = |point: &str, h: usize, w: usize, c: usize, scale: f32| {
            let size = activation_bytes(h, w, c, storage);
            bytes.set(bytes.get() + size as usize);
            Act { buffer: Arc::new(gpu.empty_storage(point, size)), point: point.to_string(), h, w, c, scale }
        };
        let input = gpu.empty_storage("input", (h * w * 4 * 4) as u64);
        let residual_bytes = (h * w * 3 * 4) as u64;
        let residual = gpu.empty_storage("residual", residual_bytes);
        let (h2, w2) = (h / 2, w / 2);
        let mut ops = Vec::new();
        let mut io = Vec::new();
        let x0 = new_act("input", h2, w2, 16, scale_of("input")?);
        let params = ShuffleParams { h: h2 as u32, w: w2 as u32, scale: x0.scale, _pad: 0 };
        ops.push(Op::Unshuffle {
            group: bind(
                &gpu.device,
                "unshuffle",
                &layouts.shuffle_io,
                &[&gpu.uniform("unshuffle", bytemuck::bytes_of(&params)), &input, &x0.buffer],
            ),
            invocations: (activation_bytes(h2, w2, 16, storage) / 4) as usize,
        });
        io.push(OpIo { inputs: Vec::new(), output: Some(x0.clone()), mid: None });
        // One rank-r intermediate buffer serves every conv: each is consumed by the next dispatch.
        let mid_bytes = activation_bytes(h2, w2, MAX_RANK, storage);
        bytes.set(bytes.get() + mid_bytes as usize);
        let mid = Arc::new(gpu.empty_storage("lora mid", mid_bytes));
        let mut conv_index = 0usize;
        let layers = &self.layers;
        let dummy = &self.dummy;
        let mut conv = |ops: &mut Vec<Op>,
                        io: &mut Vec<OpIo>,
                        a: &Act,
                        skip: Option<&Act>,
                        new_act: &mut dyn FnMut(&str, usize, usize, usize, f32) -> Act|
         -> Result<Act> {
            let layer = layers.get(conv_index).ok_or_else(|| backend_error("the model graph ran out of convolutions"))?;
            conv_index += 1;
            let spec = &layer.spec;
            let up = if skip.is_some() { 2 } else { 1 };
            let (in_h, in_w) = (a.h * up, a.w * up);
            let (out_h, out_w) = (in_h / spec.stride, in_w / spec.stride);
            let point = format!("{}.out", spec.name);
            let out = new_act(&point, out_h, out_w, spec.cout, scale_of(&point)?);
            let quant = layer.lora_quant;
            let mut params = ConvParams {
                out_h: out_h as u32,
                out_w: out_w as u32,
                cout: spec.cout as u32,
                k: spec.k as u32,
                stride: spec.stride as u32,
                pad: (spec.k / 2) as u32,
                in_h: in_h as u32,
                in_w: in_w as u32,
                cin_a: a.c as u32,
                cin_b: skip.map_or(0, |s| s.c as u32),
                up_a: up as u32,
                _pad0: 0,
                scale_a: a.scale,
                scale_b: skip.map_or(1.0, |s| s.scale),
                out_scale: out.scale,
                weight_zero: 0.0,
                leaky: u32::from(spec.leaky_relu),
                lora_a_pass: 0,
                mid_scale: if quantized && quant.is_some() { scale_of(&format!("{}.lora_mid", spec.name))? } else { 1.0 },
                lora_b_scale: if quantized { quant.map_or(1.0, |q| q.b.scale) } else { 1.0 },
                lora_b_zero: if quantized { quant.map_or(0.0, |q| q.b.zero_point as f32) } else { 0.0 },
                slope: LEAKY_SLOPE,
                _pad1: [0; 2],
            };
            if a.c + skip.map_or(0, |s| s.c) != spec.cin {
                return Err(backend_error(format!("'{}' expects {} input channels", spec.name, spec.cin)));
            }
            let b_buffer = skip.map_or(&a.buffer, |s| &s.buffer);
            let group = bind(
                &gpu.device,
                &spec.name,
                &layouts.conv_io,
                &[&gpu.uniform(&spec.name, bytemuck::bytes_of(&params)), &a.buffer, b_buffer, &mid, &out.buffer],
            );
            params.lora_a_pass = 1;
            params.leaky = 0;
            params.out_scale = params.mid_scale;
            params.weight_zero = if quantized { quant.map_or(0.0, |q| q.a.zero_point as f32) } else { 0.0 };
            let a_group = bind(
                &gpu.device,
                &spec.name,
                &layouts.conv_io,
                &[&gpu.uniform(&spec.name, bytemuck::bytes_of(&params)), &a.buffer, b_buffer, dummy, &mid],
            );
            ops.push(Op::Conv { layer: conv_index - 1, group, a_group, pixels: out_h * out_w, cout: spec.cout });
            let mid_act = Act {
                buffer: mid.clone(),
                point: format!("{}.lora_mid", spec.name),
                h: out_h,
                w: out_w,
                c: 0,
                scale: params.mid_scale,
            };
            io.push(OpIo {
                inputs: std::iter::once(a.clone()).chain(skip.cloned()).collect(),
                output: Some(out.clone()),
                mid: Some(mid_act),
            });
            Ok(out)
        };
        let add = |ops: &mut Vec<Op>,
                   io: &mut Vec<OpIo>,
                   a: &Act,
                   b: &Act,
                   point: &str,
                   new_act: &mut dyn FnMut(&str, usize, usize, usize, f32) -> Act|
         -> Result<Act> {
            let out = new_act(point, a.h, a.w, a.c, scale_of(point)?);
            let words = (activation_bytes(a.h, a.w, a.c, storage) / 4) as usize;
            let params = AddParams {
                elements: (words * storage.per_word()) as u32,
                scale_a: a.scale,
                scale_b: b.scale,
                out_scale: out.scale,
            };
            ops.push(Op::Add {
                group: bind(
                    &gpu.device,
                    point,
                    &layouts.add_io,
                    &[&gpu.uniform(point, bytemuck::bytes_of(&params)), &a.buffer, &b.buffer, &out.buffer],
                ),
                words,
            });
            io.push(OpIo { inputs: vec![a.clone(), b.clone()], output: Some(out.clone()), mid: None });
            Ok(out)
        };
        let config = self.model.float.config().clone();
        let levels = config.channels.len();
        let mut x = conv(&mut ops, &mut io, &x0, None, &mut new_act)?;
        let mut skips = Vec::new();
        for level in 0..levels {
            for b in 0..config.blocks[level] {
                let inner = conv(&mut ops, &mut io, &x, None, &mut new_act)?;
                let inner = conv(&mut ops, &mut io, &inner, None, &mut new_act)?;
                x = add(&mut ops, &mut io, &x, &inner, &format!("enc{level}.res{b}.add"), &mut new_act)?;
            }
            if level + 1 < levels {
                skips.push(x.clone());
                x = conv(&mut ops, &mut io, &x, None, &mut new_act)?;
            }
        }
        for level in (0..levels - 1).rev() {
            let skip = skips.pop().ok_or_else(|| backend_error("the model graph lost a skip connection"))?;
            x = conv(&mut ops, &mut io, &x, Some(&skip), &mut new_act)?;
            for b in 0..config.blocks[level] {
                let inner = conv(&mut ops, &mut io, &x, None, &mut new_act)?;
                let inner = conv(&mut ops, &mut io, &inner, None, &mut new_act)?;
                x = add(&mut ops, &mut io, &x, &inner, &format!("dec{level}.res{b}.add"), &mut new_act)?;
            }
        }
        let head = conv(&mut ops, &mut io, &x, None, &mut new_act)?;
        let params = ShuffleParams { h: head.h as u32, w: head.w as u32, scale: head.scale, _pad: 0 };
        ops.push(Op::Shuffle {
            group: bind(
                &gpu.device,
                "shuffle",
                &layouts.shuffle_io,
                &[&gpu.uniform("shuffle", bytemuck::bytes_of(&params)), &head.buffer, &residual],
            ),
            invocations: h * w * 3,
        });
        io.push(OpIo { inputs: vec![head], output: None, mid: None });
        let bytes = bytes.get() + (h * w * 7 * 4);
        self.plans.insert((h, w, storage), Plan { input, residual, residual_bytes, ops, io, bytes });
        Ok(())
    }

    fn storage_for(&self, precision: Precision) -> Storage {
        match precision {
            Precision::Int8 => Storage::Quantized { bits: self.model.profile.activation_bits },
            Precision::Float => Storage::Float,
        }
    }

    /// Runs the bound model on `[H, W, 4]` values (row-major) and returns the `[H, W, 3]` residual.
    pub fn run(&mut self, h: usize, w: usize, input: &[f32]) -> Result<Vec<f32>> {
        let precision = self.bound.as_ref().map_or(Precision::Int8, |b| b.precision);
        let storage = self.storage_for(precision);
        self.plan(h, w, storage)?;
        let plan = &self.plans[&(h, w, storage)];
        let p = path(precision);
        self.gpu.queue.write_buffer(&plan.input, 0, bytemuck::cast_slice(input));
        let mut encoder = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        {
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("prism-unet"), timestamp_writes: None });
            for op in &plan.ops {
                self.encode(&mut pass, op, p);
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
        let bytes = self.gpu.read(&plan.residual, plan.residual_bytes)?;
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes).to_vec())
    }

    /// Records one op into `pass` with the bound adapters (a conv: its LoRA A pass, when
    /// `lora_a`, and its main pass, when `main`).
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, op: &Op, p: usize) {
        self.encode_parts(pass, op, p, true, true);
    }

    fn encode_parts(&self, pass: &mut wgpu::ComputePass<'_>, op: &Op, p: usize, lora_a: bool, main: bool) {
        let kernels = &self.kernels[p];
        match op {
            Op::Unshuffle { group, invocations } => {
                pass.set_pipeline(&kernels.unshuffle);
                pass.set_bind_group(0, group, &[]);
                let (x, y) = groups_for(*invocations);
                pass.dispatch_workgroups(x, y, 1);
            }
            Op::Shuffle { group, invocations } => {
                pass.set_pipeline(&kernels.shuffle);
                pass.set_bind_group(0, group, &[]);
                let (x, y) = groups_for(*invocations);
                pass.dispatch_workgroups(x, y, 1);
            }
            Op::Add { group, words } => {
                pass.set_pipeline(&kernels.add);
                pass.set_bind_group(0, group, &[]);
                let (x, y) = groups_for(*words);
                pass.dispatch_workgroups(x, y, 1);
            }
            Op::Conv { layer, group, a_group, pixels, cout } => {
                let gpu_layer = &self.layers[*layer];
                pass.set_pipeline(&kernels.conv);
                let lora = self.bound_layer(*layer, p);
                let pixel_groups = pixels.div_ceil(64) as u32;
                if let Some(side) = &lora
                    && lora_a
                {
                    pass.set_bind_group(0, a_group, &[]);
                    for (a, holder, rank) in &side.a_passes {
                        pass.set_bind_group(1, *a, &[]);
                        pass.set_bind_group(2, *holder, &[]);
                        pass.dispatch_workgroups(pixel_groups, rank.div_ceil(4) as u32, 1);
                    }
                }
                if !main {
                    return;
                }
                pass.set_bind_group(0, group, &[]);
                pass.set_bind_group(1, if p == 0 { &gpu_layer.weights_q } else { &gpu_layer.weights_f }, &[]);
                pass.set_bind_group(2, lora.as_ref().map_or(&self.no_lora, |side| side.main), &[]);
                pass.dispatch_workgroups(pixel_groups, cout.div_ceil(4) as u32, 1);
            }
        }
    }

    /// Layer by layer against reference values: every op is fed the reference's stored inputs
    /// (`reference[point]`, NHWC, unpadded) and its output compared with the reference's at the
    /// same point. Returns, per point, the largest difference in quantization steps of that
    /// point (float path: in absolute value). The residual is compared under the key `residual`.
    pub fn layerwise_check(
        &mut self,
        h: usize,
        w: usize,
        input: &[f32],
        reference: &HashMap<String, Vec<f32>>,
    ) -> Result<Vec<(String, f32)>> {
        let precision = self.bound.as_ref().map_or(Precision::Int8, |b| b.precision);
        let storage = self.storage_for(precision);
        self.plan(h, w, storage)?;
        let plan = &self.plans[&(h, w, storage)];
        let p = path(precision);
        let rank = self.bound.as_ref().map_or(0, |b| b.rank);
        let segments = self.bound.as_ref().map(|b| b.segments.clone()).unwrap_or_default();
        let lookup =
            |point: &str| reference.get(point).ok_or_else(|| backend_error(format!("no reference values for '{point}'")));
        self.gpu.queue.write_buffer(&plan.input, 0, bytemuck::cast_slice(input));
        let mut report = Vec::new();
        for (index, (op, io)) in plan.ops.iter().zip(&plan.io).enumerate() {
            // The model's `input` point is stored pixel-unshuffled here.
            let stored = |point: &str| -> Result<Vec<f32>> {
                let values = lookup(point)?;
                Ok(if point == "input" { unshuffle_reference(values, h, w) } else { values.clone() })
            };
            for act in &io.inputs {
                let words = pack_activation(&stored(&act.point)?, act.c, act.scale, storage);
                self.gpu.queue.write_buffer(&act.buffer, 0, bytes_u32(&words));
            }
            let run = |lora_a: bool, main: bool| {
                let mut encoder =
                    self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("layerwise") });
                {
                    let mut pass = encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("layerwise"), timestamp_writes: None });
                    self.encode_parts(&mut pass, op, p, lora_a, main);
                }
                self.gpu.queue.submit([encoder.finish()]);
            };
            let mut outputs: Vec<(&str, &Act, usize)> = Vec::new();
            if let (Some(mid), Op::Conv { layer, .. }) = (&io.mid, op)
                && self.bound_layer(*layer, p).is_some()
            {
                // The A pass alone, checked; then the main pass reads the reference's intermediate.
                run(true, false);
                // A blend's adapters sit side by side, each padded to 4 channels.
                let expected =
                    if segments.len() > 1 { spread_segments(&stored(&mid.point)?, &segments) } else { stored(&mid.point)? };
                let bytes = self.gpu.read(&mid.buffer, activation_bytes(mid.h, mid.w, rank, storage))?;
                let got = unpack_activation(bytemuck::cast_slice(&bytes), mid.h * mid.w, rank, mid.scale, storage);
                report.push((mid.point.clone(), max_steps(&expected, &got, mid.scale, storage)?));
                let words = pack_activation(&expected, rank, mid.scale, storage);
                self.gpu.queue.write_buffer(&mid.buffer, 0, bytes_u32(&words));
                run(false, true);
            } else {
                run(true, true);
            }
            if let Some(out) = &io.output {
                outputs.push((&out.point, out, out.c));
            }
            for (point, act, channels) in outputs {
                let bytes = self.gpu.read(&act.buffer, activation_bytes(act.h, act.w, channels, storage))?;
                let got = unpack_activation(bytemuck::cast_slice(&bytes), act.h * act.w, channels, act.scale, storage);
                report.push((point.to_string(), max_steps(&stored(point)?, &got, act.scale, storage)?));
            }
            if matches!(op, Op::Shuffle { .. }) {
                let bytes = self.gpu.read(&plan.residual, plan.residual_bytes)?;
                let got: Vec<f32> = bytemuck::cast_slice::<u8, f32>(&bytes).to_vec();
                let step = plan.io[index].inputs[0].scale;
                report.push(("residual".into(), max_steps(lookup("residual")?, &got, step, storage)?));
            }
        }
        Ok(report)
    }

    /// The side path bound on conv `index` (path `p`), if the bound set covers it.
    fn bound_layer(&self, index: usize, p: usize) -> Option<SidePath<'_>> {
        let bound = self.bound.as_ref()?;
        if !bound.covered.get(index).copied().unwrap_or(false) || bound.rank == 0 {
            return None;
        }
        fn own(layer: &AdapterLayer, p: usize, rank: usize) -> (&wgpu::BindGroup, &wgpu::BindGroup, usize) {
            (&layer.a_group[p], &layer.b_group[p], rank)
        }
        match &bound.source {
            LoraSource::None => None,
            LoraSource::Adapter(name) => {
                let adapter = self.adapters.get(name)?;
                let layer = adapter.layers[index].as_ref()?;
                Some(SidePath { a_passes: vec![own(layer, p, adapter.rank)], main: &layer.b_group[p] })
            }
            LoraSource::Slot => {
                let layer = &self.slot.layers[index];
                Some(SidePath { a_passes: vec![own(layer, p, bound.rank)], main: &layer.b_group[p] })
            }
            LoraSource::Blend(names) => {
                let a_passes = names
                    .iter()
                    .filter_map(|name| self.adapters.get(name))
                    .filter_map(|adapter| adapter.layers[index].as_ref().map(|layer| own(layer, p, adapter.rank)))
                    .collect();
                Some(SidePath { a_passes, main: &self.slot.layers[index].b_group[p] })
            }
        }
    }
}

/// A conv's bound LoRA: the A passes (weights group, the group holding the pass's offsets, rank)
/// and the group the main pass reads B and the scales from.
struct SidePath<'a> {
    a_passes: Vec<(&'a wgpu::BindGroup, &'a wgpu::BindGroup, usize)>,
    main: &'a wgpu::BindGroup,
}

/// Reference values `[pixels, c]` as stored: codes on `scale` (or f32), channels padded to 4.
fn pack_activation(values: &[f32], c: usize, scale: f32, storage: Storage) -> Vec<u32> {
    let cp = padded(c);
    let pixels = values.len() / c.max(1);
    let mut lanes = vec![0f32; pixels * cp];
    for px in 0..pixels {
        lanes[px * cp..px * cp + c].copy_from_slice(&values[px * c..px * c + c]);
    }
    match storage {
        Storage::Float => lanes.iter().map(|v| v.to_bits()).collect(),
        Storage::Quantized { bits } => {
            let limit = (1i32 << (bits - 1)) as f32;
            let mask = (1u32 << bits) - 1;
            lanes
                .chunks(storage.per_word())
                .map(|chunk| {
                    chunk.iter().enumerate().fold(0u32, |word, (lane, v)| {
                        let q = (v / scale).round().clamp(-limit, limit - 1.0) as i32;
                        word | ((q as u32 & mask) << (lane as u32 * bits))
                    })
                })
                .collect()
        }
    }
}

/// Stored words back to values `[pixels, c]`.
fn unpack_activation(words: &[u32], pixels: usize, c: usize, scale: f32, storage: Storage) -> Vec<f32> {
    let cp = padded(c);
    let lane = |i: usize| -> f32 {
        match storage {
            Storage::Float => f32::from_bits(words[i]),
            Storage::Quantized { bits } => {
                let n = storage.per_word();
                let word = words[i / n];
                let shifted = (word << (32 - bits * (i % n + 1) as u32)) as i32;
                (shifted >> (32 - bits)) as f32 * scale
            }
        }
    };
    (0..pixels).flat_map(|px| (0..c).map(move |ch| px * cp + ch)).map(lane).collect()
}

/// `[pixels][sum of segments]` to `[pixels][sum of segments padded to 4]` with zeros between.
fn spread_segments(values: &[f32], segments: &[usize]) -> Vec<f32> {
    let total: usize = segments.iter().sum();
    let mut out = Vec::with_capacity(values.len() / total.max(1) * segments.iter().map(|s| padded(*s)).sum::<usize>());
    for pixel in values.chunks(total.max(1)) {
        let mut start = 0;
        for segment in segments {
            out.extend_from_slice(&pixel[start..start + segment]);
            out.extend(std::iter::repeat_n(0.0, padded(*segment) - segment));
            start += segment;
        }
    }
    out
}

/// The reference's `input` point `[H, W, 4]` pixel-unshuffled like unshuffle.wgsl.
fn unshuffle_reference(values: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (h2, w2) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(values.len());
    for oy in 0..h2 {
        for ox in 0..w2 {
            for dy in 0..2 {
                for dx in 0..2 {
                    let i = ((oy * 2 + dy) * w + ox * 2 + dx) * 4;
                    out.extend_from_slice(&values[i..i + 4]);
                }
            }
        }
    }
    out
}

/// Largest difference in grid steps (codes compared as integers: an f32 value far from zero
/// carries rounding of its own), or in absolute value for the float path.
fn max_steps(expected: &[f32], got: &[f32], step: f32, storage: Storage) -> Result<f32> {
    if expected.len() != got.len() {
        return Err(backend_error(format!("reference has {} values, the GPU {}", expected.len(), got.len())));
    }
    Ok(match storage {
        Storage::Float => expected.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max),
        Storage::Quantized { .. } => {
            expected.iter().zip(got).map(|(a, b)| ((a / step).round() - (b / step).round()).abs()).fold(0.0, f32::max)
        }
    })
}

/// What `prism bench` measures beyond the Backend trait.
impl WgpuBackend {
    /// Builds the buffers and bind groups for an `h x w` input (done by the first forward anyway).
    pub fn prepare(&mut self, h: usize, w: usize, precision: Precision) -> Result<()> {
        let storage = self.storage_for(precision);
        self.plan(h, w, storage)
    }

    /// Seconds per dispatch of conv `name` alone at input `h x w` with what is bound now
    /// (its LoRA A pass included), and its multiply-adds x 2.
    pub fn time_conv(&mut self, h: usize, w: usize, name: &str, repeats: usize) -> Result<(f64, u64)> {
        let precision = self.bound.as_ref().map_or(Precision::Int8, |b| b.precision);
        let storage = self.storage_for(precision);
        self.plan(h, w, storage)?;
        let plan = &self.plans[&(h, w, storage)];
        let p = path(precision);
        let (op, pixels, spec) = plan
            .ops
            .iter()
            .find_map(|op| match op {
                Op::Conv { layer, pixels, .. } if self.layers[*layer].spec.name == name => {
                    Some((op, *pixels, &self.layers[*layer].spec))
                }
                _ => None,
            })
            .ok_or_else(|| backend_error(format!("no conv named '{name}'")))?;
        let flops = 2 * (pixels * spec.k * spec.k * spec.cin * spec.cout) as u64;
        let submit = |count: usize| -> Result<f64> {
            let start = std::time::Instant::now();
            let mut encoder =
                self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("time conv") });
            {
                let mut pass =
                    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("time conv"), timestamp_writes: None });
                for _ in 0..count {
                    self.encode(&mut pass, op, p);
                }
            }
            self.gpu.queue.submit([encoder.finish()]);
            self.gpu.wait()?;
            Ok(start.elapsed().as_secs_f64())
        };
        submit(1)?;
        Ok((submit(repeats.max(1))? / repeats.max(1) as f64, flops))
    }
}

/// The f32 matrix-multiply ceiling of `gpu`: seconds per `n x n x n` product (`n` a multiple of 4;
/// 4 x 4 outputs per invocation).
pub fn matmul_seconds(gpu: &Gpu, n: usize, repeats: usize) -> Result<f64> {
    let layout = gpu.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("matmul"),
        entries: &[
            context::layout_entry(0, wgpu::BufferBindingType::Uniform),
            context::layout_entry(1, wgpu::BufferBindingType::Storage { read_only: true }),
            context::layout_entry(2, wgpu::BufferBindingType::Storage { read_only: true }),
            context::layout_entry(3, wgpu::BufferBindingType::Storage { read_only: false }),
        ],
    });
    let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("matmul"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../shaders/matmul.wgsl").into()),
    });
    let pipeline_layout = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("matmul"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("matmul"),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let values: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let params = [n as u32, n as u32, n as u32, 0];
    let a = gpu.storage("a", bytemuck::cast_slice(&values));
    let b = gpu.storage("b", bytemuck::cast_slice(&values));
    let c = gpu.empty_storage("c", (n * n * 4) as u64);
    let group = bind(&gpu.device, "matmul", &layout, &[&gpu.uniform("matmul", bytemuck::cast_slice(&params)), &a, &b, &c]);
    let run = |count: usize| -> Result<f64> {
        let start = std::time::Instant::now();
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("matmul") });
        {
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("matmul"), timestamp_writes: None });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            for _ in 0..count {
                pass.dispatch_workgroups((n * n / 16).div_ceil(64) as u32, 1, 1);
            }
        }
        gpu.queue.submit([encoder.finish()]);
        gpu.wait()?;
        Ok(start.elapsed().as_secs_f64())
    };
    run(1)?;
    Ok(run(repeats.max(1))? / repeats.max(1) as f64)
}

/// The "one compiled model per tool" deployment: `adapter` merged into the base weights
/// (`W + alpha x strength x A B` per conv), to be requantized and compiled like a new model.
pub fn merged_model(model: &Model, adapter: &Adapter, strength: f32) -> Result<Model> {
    let resident = ResidentAdapter::new(adapter, Some(&model.profile), &Device::Cpu)?;
    let scale = f64::from(resident.meta.alpha * strength);
    let merged = model.float.map_weights(|spec, weight| match resident.float.get(&spec.name) {
        Some((a, b)) => Ok((weight + (a.matmul(b)? * scale)?)?),
        None => Ok(weight.clone()),
    })?;
    Ok(Model {
        dir: model.dir.clone(),
        quantized: crate::quant::quantized_weights_model(&merged)?,
        hash: merged.content_hash()?,
        float: merged,
        profile: model.profile.clone(),
    })
}

impl Backend for WgpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Wgpu
    }

    fn device(&self) -> String {
        self.gpu.describe()
    }

    fn install(&mut self, adapter: &Adapter) -> Result<AdapterInfo> {
        adapter.check_compatible(&self.model.float, &self.model.hash, Some(&self.model.profile))?;
        let resident = ResidentAdapter::new(adapter, Some(&self.model.profile), &Device::Cpu)?;
        let gpu_adapter = self.upload_adapter(&resident, adapter.stored_bytes())?;
        let info = gpu_adapter.info.clone();
        self.bound = None;
        self.adapters.insert(info.meta.name.clone(), gpu_adapter);
        Ok(info)
    }

    fn remove(&mut self, name: &str) -> bool {
        self.bound = None;
        self.adapters.remove(name).is_some()
    }

    fn installed(&self) -> Vec<AdapterInfo> {
        self.adapters.values().map(|a| a.info.clone()).collect()
    }

    fn bind(&mut self, mix: &[(String, f32)], strength: f32, precision: Precision) -> Result<()> {
        let mut parts = Vec::with_capacity(mix.len());
        for (name, weight) in mix {
            if !weight.is_finite() {
                return Err(EngineError::Job(format!("the weight of '{name}' is not a number")));
            }
            let adapter = self.adapters.get(name).ok_or_else(|| {
                let names: Vec<&str> = self.adapters.keys().map(String::as_str).collect();
                EngineError::Job(format!("no tool named '{name}' is installed (installed: {})", names.join(", ")))
            })?;
            parts.push((adapter, adapter.alpha * weight * strength));
        }
        let segments: Vec<usize> = parts.iter().map(|(a, _)| a.rank).collect();
        let (source, rank, covered) = match (parts.as_slice(), self.swap) {
            ([], _) => (LoraSource::None, 0, vec![false; self.layers.len()]),
            ([(adapter, scale)], mode) => {
                let uniform = LoraScales::new(&vec![*scale; adapter.rank])?;
                let covered = adapter.layers.iter().map(Option::is_some).collect();
                if mode == SwapMode::SingleSlot {
                    self.write_slot(adapter, precision);
                    self.gpu.queue.write_buffer(&self.slot.scales, 0, bytemuck::bytes_of(&uniform));
                    (LoraSource::Slot, adapter.rank, covered)
                } else {
                    self.gpu.queue.write_buffer(&adapter.scales, 0, bytemuck::bytes_of(&uniform));
                    (LoraSource::Adapter(adapter.info.meta.name.clone()), adapter.rank, covered)
                }
            }
            (_, _) => {
                // Each adapter's A pass writes its own segment of the intermediate; the main pass
                // reads them all against the slot's concatenated B.
                let stride: usize = parts.iter().map(|(a, _)| padded(a.rank)).sum();
                let mut scales = Vec::with_capacity(stride);
                let mut offset = 0;
                for (adapter, scale) in &parts {
                    let mut own = LoraScales::new(&vec![*scale; adapter.rank])?;
                    own.offset = offset as u32;
                    own.stride = stride as u32;
                    self.gpu.queue.write_buffer(&adapter.scales, 0, bytemuck::bytes_of(&own));
                    scales.extend(std::iter::repeat_n(*scale, adapter.rank));
                    scales.extend(std::iter::repeat_n(0.0, padded(adapter.rank) - adapter.rank));
                    offset += padded(adapter.rank);
                }
                let uniform = LoraScales::new(&scales)?;
                let adapters: Vec<&GpuAdapter> = parts.iter().map(|(a, _)| *a).collect();
                let covered = self.blend_slot(&adapters, precision);
                self.gpu.queue.write_buffer(&self.slot.scales, 0, bytemuck::bytes_of(&uniform));
                (LoraSource::Blend(parts.iter().map(|(a, _)| a.info.meta.name.clone()).collect()), stride, covered)
            }
        };
        self.bound = Some(Bound { precision, source, rank, segments, covered });
        Ok(())
    }

    fn forward(&mut self, input: &Tensor) -> Result<Tensor> {
        let (n, h, w, c) = input.dims4()?;
        let align = self.model.float.config().alignment();
        if n != 1 || c != 4 || h % align != 0 || w % align != 0 || h == 0 || w == 0 {
            return Err(EngineError::Model(format!(
                "model input must be [1,H,W,4] with H and W multiples of {align}, got {:?}",
                input.dims()
            )));
        }
        let values = input.flatten_all()?.to_vec1::<f32>()?;
        let residual = self.run(h, w, &values)?;
        Ok(Tensor::from_vec(residual, (1, h, w, 3), &Device::Cpu)?)
    }

    fn memory(&self) -> MemoryReport {
        let m = self.gpu_memory();
        MemoryReport { base_bytes: m.base_int8, adapter_bytes: m.adapters_int8, adapters: self.adapters.len() }
    }

    fn alignment(&self) -> usize {
        self.model.float.config().alignment()
    }
}
