//! The model graph lowered for one input size: every activation buffer and bind group made
//! once, a list of dispatches to record per forward. Nearest upsample and concat are never
//! materialised: a conv with a skip input reads both directly.

use std::sync::Arc;

use super::backend::{GpuLayer, WgpuBackend};
use super::backend_error;
use super::context::{AddParams, ConvParams, Gpu, Layouts, MAX_RANK, ShuffleParams, Storage, activation_bytes, bind};
use crate::error::Result;
use crate::graph::{Join, LEAKY_SLOPE, Node, ValueId, missing_value};
use crate::quant::Profile;

/// An activation tensor of a plan.
#[derive(Clone)]
pub(super) struct Act {
    pub(super) buffer: Arc<wgpu::Buffer>,
    /// The quantization point that stores it (QuantSim's name).
    pub(super) point: String,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) scale: f32,
}

pub(super) enum Op {
    Unshuffle { group: wgpu::BindGroup, invocations: usize },
    Conv { layer: usize, group: wgpu::BindGroup, a_group: wgpu::BindGroup, pixels: usize, cout: usize },
    Add { group: wgpu::BindGroup, words: usize },
    Shuffle { group: wgpu::BindGroup, invocations: usize },
}

/// What an op reads and writes, for the layer-by-layer parity check.
pub(super) struct OpIo {
    pub(super) inputs: Vec<Act>,
    pub(super) output: Option<Act>,
    /// A conv's rank-r intermediate (point `<conv>.lora_mid`; its channels are the bound rank).
    pub(super) mid: Option<Act>,
}

/// Everything sized for one input size and storage mode.
pub(super) struct Plan {
    pub(super) input: wgpu::Buffer,
    pub(super) residual: wgpu::Buffer,
    pub(super) residual_bytes: u64,
    pub(super) ops: Vec<Op>,
    pub(super) io: Vec<OpIo>,
    pub(super) bytes: usize,
}

impl WgpuBackend {
    /// Builds (once) the plan for an `h x w` input in `storage`.
    pub(super) fn plan(&mut self, h: usize, w: usize, storage: Storage) -> Result<()> {
        if self.plans.contains_key(&(h, w, storage)) {
            return Ok(());
        }
        let _span = tracing::info_span!("wgpu_plan", h, w).entered();
        let layouts = self.kernels[0].layouts.clone();
        let mut builder = PlanBuilder {
            gpu: &self.gpu,
            layouts: &layouts,
            profile: &self.model.profile,
            layers: &self.layers,
            dummy: &self.dummy,
            storage,
            ops: Vec::new(),
            io: Vec::new(),
            bytes: 0,
            // One rank-r intermediate buffer serves every conv: each is consumed by the next dispatch.
            mid: Arc::new(self.gpu.empty_storage("lora mid", activation_bytes(h / 2, w / 2, MAX_RANK, storage))),
        };
        builder.bytes += activation_bytes(h / 2, w / 2, MAX_RANK, storage) as usize;
        let input = self.gpu.empty_storage("input", (h * w * 4 * 4) as u64);
        let residual_bytes = (h * w * 3 * 4) as u64;
        let residual = self.gpu.empty_storage("residual", residual_bytes);
        let graph = &self.model.config().graph();
        let mut values: Vec<Option<Act>> = vec![None; graph.nodes.len()];
        let act = |values: &[Option<Act>], id: ValueId| values[id].clone().ok_or_else(|| missing_value(id));
        for (index, node) in graph.nodes.iter().enumerate() {
            values[index] = match node {
                // The raw f32 input: the unshuffle kernel quantizes it as it reads.
                Node::Input => None,
                Node::Unshuffle { x } => {
                    if !matches!(graph.nodes[*x], Node::Input) {
                        return Err(backend_error("the wgpu backend pixel-unshuffles only the model input"));
                    }
                    Some(builder.unshuffle(&input, h, w)?)
                }
                Node::Conv { conv, x, join } => {
                    let joined = join.map(|j| act(&values, j.value())).transpose()?;
                    let up = if join.is_some_and(Join::upsamples_x) { 2 } else { 1 };
                    Some(builder.conv(*conv, &act(&values, *x)?, up, joined.as_ref())?)
                }
                Node::Add { x, y, point } => Some(builder.add(&act(&values, *x)?, &act(&values, *y)?, point)?),
                Node::Shuffle { x } => {
                    if index + 1 != graph.nodes.len() {
                        return Err(backend_error("the wgpu backend pixel-shuffles only into the model output"));
                    }
                    builder.shuffle(act(&values, *x)?, &residual, h * w * 3);
                    None
                }
            };
        }
        let bytes = builder.bytes + (h * w * 7 * 4);
        let (ops, io) = (builder.ops, builder.io);
        self.plans.insert((h, w, storage), Plan { input, residual, residual_bytes, ops, io, bytes });
        Ok(())
    }
}

/// The state of one lowering: what it has made so far.
struct PlanBuilder<'a> {
    gpu: &'a Gpu,
    layouts: &'a Layouts,
    profile: &'a Profile,
    layers: &'a [GpuLayer],
    dummy: &'a wgpu::Buffer,
    storage: Storage,
    ops: Vec<Op>,
    io: Vec<OpIo>,
    bytes: usize,
    mid: Arc<wgpu::Buffer>,
}

impl PlanBuilder<'_> {
    fn quantized(&self) -> bool {
        matches!(self.storage, Storage::Quantized { .. })
    }

    /// The static scale stored at `point` (1 on the float path).
    fn scale_of(&self, point: &str) -> Result<f32> {
        if !self.quantized() {
            return Ok(1.0);
        }
        self.profile
            .activations
            .get(point)
            .copied()
            .ok_or_else(|| backend_error(format!("the profile has no activation scale for '{point}'")))
    }

    fn new_act(&mut self, point: &str, h: usize, w: usize, c: usize) -> Result<Act> {
        let size = activation_bytes(h, w, c, self.storage);
        self.bytes += size as usize;
        let scale = self.scale_of(point)?;
        Ok(Act { buffer: Arc::new(self.gpu.empty_storage(point, size)), point: point.to_string(), h, w, c, scale })
    }

    /// The model input `[h, w, 4]` f32, quantized at `input` and pixel-unshuffled.
    fn unshuffle(&mut self, input: &wgpu::Buffer, h: usize, w: usize) -> Result<Act> {
        let (h2, w2) = (h / 2, w / 2);
        let out = self.new_act("input", h2, w2, 16)?;
        let params = ShuffleParams { h: h2 as u32, w: w2 as u32, scale: out.scale, _pad: 0 };
        let uniform = self.gpu.uniform("unshuffle", bytemuck::bytes_of(&params));
        let group = bind(&self.gpu.device, "unshuffle", &self.layouts.shuffle_io, &[&uniform, input, &out.buffer]);
        self.ops.push(Op::Unshuffle { group, invocations: (activation_bytes(h2, w2, 16, self.storage) / 4) as usize });
        self.io.push(OpIo { inputs: Vec::new(), output: Some(out.clone()), mid: None });
        Ok(out)
    }

    /// Conv number `index` on `a` (upsampled by `up`), joined with `skip` when there is one.
    fn conv(&mut self, index: usize, a: &Act, up: usize, skip: Option<&Act>) -> Result<Act> {
        let layer = self.layers.get(index).ok_or_else(|| backend_error(format!("the model has no conv number {index}")))?;
        let spec = &layer.spec;
        if a.c + skip.map_or(0, |s| s.c) != spec.cin {
            return Err(backend_error(format!("'{}' expects {} input channels", spec.name, spec.cin)));
        }
        let (in_h, in_w) = (a.h * up, a.w * up);
        if skip.is_some_and(|s| (s.h, s.w) != (in_h, in_w)) {
            return Err(backend_error(format!("'{}' joins two inputs of different sizes", spec.name)));
        }
        let (out_h, out_w) = (in_h / spec.stride, in_w / spec.stride);
        let out = self.new_act(&format!("{}.out", spec.name), out_h, out_w, spec.cout)?;
        let quantized = self.quantized();
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
            mid_scale: if quantized && quant.is_some() { self.scale_of(&format!("{}.lora_mid", spec.name))? } else { 1.0 },
            lora_b_scale: if quantized { quant.map_or(1.0, |q| q.b.scale) } else { 1.0 },
            lora_b_zero: if quantized { quant.map_or(0.0, |q| q.b.zero_point as f32) } else { 0.0 },
            slope: LEAKY_SLOPE,
            _pad1: [0; 2],
        };
        let b_buffer = skip.map_or(&a.buffer, |s| &s.buffer);
        let device = &self.gpu.device;
        let uniform = self.gpu.uniform(&spec.name, bytemuck::bytes_of(&params));
        let group = bind(device, &spec.name, &self.layouts.conv_io, &[&uniform, &a.buffer, b_buffer, &self.mid, &out.buffer]);
        // The LoRA A pass: the same kernel with A as weights, rank as cout, storing `lora_mid`.
        params.lora_a_pass = 1;
        params.leaky = 0;
        params.out_scale = params.mid_scale;
        params.weight_zero = if quantized { quant.map_or(0.0, |q| q.a.zero_point as f32) } else { 0.0 };
        let uniform = self.gpu.uniform(&spec.name, bytemuck::bytes_of(&params));
        let a_group = bind(device, &spec.name, &self.layouts.conv_io, &[&uniform, &a.buffer, b_buffer, self.dummy, &self.mid]);
        self.ops.push(Op::Conv { layer: index, group, a_group, pixels: out_h * out_w, cout: spec.cout });
        let mid = Act {
            buffer: self.mid.clone(),
            point: format!("{}.lora_mid", spec.name),
            h: out_h,
            w: out_w,
            c: 0,
            scale: params.mid_scale,
        };
        let inputs = std::iter::once(a.clone()).chain(skip.cloned()).collect();
        self.io.push(OpIo { inputs, output: Some(out.clone()), mid: Some(mid) });
        Ok(out)
    }

    /// `a + b` stored at `point`.
    fn add(&mut self, a: &Act, b: &Act, point: &str) -> Result<Act> {
        let out = self.new_act(point, a.h, a.w, a.c)?;
        let words = (activation_bytes(a.h, a.w, a.c, self.storage) / 4) as usize;
        let params = AddParams {
            elements: (words * self.storage.per_word()) as u32,
            scale_a: a.scale,
            scale_b: b.scale,
            out_scale: out.scale,
        };
        let uniform = self.gpu.uniform(point, bytemuck::bytes_of(&params));
        let group = bind(&self.gpu.device, point, &self.layouts.add_io, &[&uniform, &a.buffer, &b.buffer, &out.buffer]);
        self.ops.push(Op::Add { group, words });
        self.io.push(OpIo { inputs: vec![a.clone(), b.clone()], output: Some(out.clone()), mid: None });
        Ok(out)
    }

    /// The head pixel-shuffled into the f32 `residual` buffer (`invocations` values).
    fn shuffle(&mut self, head: Act, residual: &wgpu::Buffer, invocations: usize) {
        let params = ShuffleParams { h: head.h as u32, w: head.w as u32, scale: head.scale, _pad: 0 };
        let uniform = self.gpu.uniform("shuffle", bytemuck::bytes_of(&params));
        let group = bind(&self.gpu.device, "shuffle", &self.layouts.shuffle_io, &[&uniform, &head.buffer, residual]);
        self.ops.push(Op::Shuffle { group, invocations });
        self.io.push(OpIo { inputs: vec![head], output: None, mid: None });
    }
}
