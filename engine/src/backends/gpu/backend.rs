//! `WgpuBackend`: the base model compiled once (pipelines, layouts, int8 weights in GPU
//! buffers), adapters installed as buffers of their own, a tool switch that selects bind groups.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::adapters::{AdapterLayer, GpuAdapter, Slot, bytes_u32, pack_rows_f32, pack_rows_i8};
use super::context::{Gpu, Kernels, Layouts, LoraScales, Storage, bind, groups_for, padded};
use super::plan::{Op, Plan};
use super::{GpuMemory, SwapMode};
use crate::adapter::{Adapter, ResidentAdapter};
use crate::backends::{AdapterBank, AdapterInfo, Backend, BackendKind, MemoryReport, Precision};
use crate::error::{EngineError, Result};
use crate::graph::ConvSpec;
use crate::mix::Mix;
use crate::model::Model;
use crate::quant::{LoraQuant, quantize_weight_per_channel};
use crate::unet::UnetConfig;

/// One conv's compiled weights.
pub(super) struct GpuLayer {
    pub(super) spec: ConvSpec,
    pub(super) weights_q: wgpu::BindGroup,
    pub(super) weights_f: wgpu::BindGroup,
    pub(super) lora_quant: Option<LoraQuant>,
    pub(super) bytes_int8: usize,
    pub(super) bytes_f32: usize,
}

/// Index 0 = int8 path, 1 = float path.
pub(super) fn path(precision: Precision) -> usize {
    match precision {
        Precision::Int8 => 0,
        Precision::Float => 1,
    }
}

#[derive(Clone, Debug)]
pub(super) enum LoraSource {
    None,
    /// One adapter, its own buffers.
    Adapter(String),
    /// One adapter written into the slot (single-slot mode).
    Slot,
    /// Several adapters: each runs its A pass from its own buffers, B is assembled in the slot.
    Blend(Vec<String>),
}

pub(super) struct Bound {
    pub(super) precision: Precision,
    pub(super) source: LoraSource,
    /// Channels of the rank intermediate (a blend: each adapter's rank padded to 4).
    pub(super) rank: usize,
    /// The adapters' own ranks, in order (the reference concatenates them unpadded).
    pub(super) segments: Vec<usize>,
    /// Per conv: does the bound set have a side path there.
    pub(super) covered: Vec<bool>,
}

pub struct WgpuBackend {
    pub(super) gpu: Arc<Gpu>,
    pub(super) model: Model,
    pub(super) kernels: [Kernels; 2],
    pub(super) layers: Vec<GpuLayer>,
    pub(super) adapters: AdapterBank<GpuAdapter>,
    pub(super) slot: Slot,
    /// Bound when no adapter covers a conv: rank 0.
    pub(super) no_lora: wgpu::BindGroup,
    pub(super) dummy: wgpu::Buffer,
    pub(super) bound: Option<Bound>,
    pub(super) plans: HashMap<(usize, usize, Storage), Plan>,
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
        for (spec, kernel, bias) in model.float()?.layers() {
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
            adapters: AdapterBank::default(),
            slot,
            no_lora,
            dummy,
            bound: None,
            plans: HashMap::new(),
            swap: SwapMode::Rebind,
        })
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

    pub(super) fn storage_for(&self, precision: Precision) -> Storage {
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
    pub(super) fn encode(&self, pass: &mut wgpu::ComputePass<'_>, op: &Op, p: usize) {
        self.encode_parts(pass, op, p, true, true);
    }

    pub(super) fn encode_parts(&self, pass: &mut wgpu::ComputePass<'_>, op: &Op, p: usize, lora_a: bool, main: bool) {
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

    /// The side path bound on conv `index` (path `p`), if the bound set covers it.
    pub(super) fn bound_layer(&self, index: usize, p: usize) -> Option<SidePath<'_>> {
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
                let adapter = self.adapters.get(name).ok()?;
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
                    .filter_map(|name| self.adapters.get(name).ok())
                    .filter_map(|adapter| adapter.layers[index].as_ref().map(|layer| own(layer, p, adapter.rank)))
                    .collect();
                Some(SidePath { a_passes, main: &self.slot.layers[index].b_group[p] })
            }
        }
    }
}

/// A conv's bound LoRA: the A passes (weights group, the group holding the pass's offsets, rank)
/// and the group the main pass reads B and the scales from.
pub(super) struct SidePath<'a> {
    pub(super) a_passes: Vec<(&'a wgpu::BindGroup, &'a wgpu::BindGroup, usize)>,
    pub(super) main: &'a wgpu::BindGroup,
}

impl Backend for WgpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Wgpu
    }

    fn device(&self) -> String {
        self.gpu.describe()
    }

    fn install(&mut self, adapter: &Adapter) -> Result<AdapterInfo> {
        self.model.check_adapter(adapter)?;
        let resident = ResidentAdapter::new(adapter, Some(&self.model.profile), &Device::Cpu)?;
        let gpu_adapter = self.upload_adapter(&resident, adapter.stored_bytes())?;
        self.bound = None;
        Ok(self.adapters.insert(gpu_adapter))
    }

    fn remove(&mut self, name: &str) -> bool {
        self.bound = None;
        self.adapters.remove(name)
    }

    fn installed(&self) -> Vec<AdapterInfo> {
        self.adapters.infos()
    }

    fn bind(&mut self, mix: &Mix, strength: f32, precision: Precision) -> Result<()> {
        let parts: Vec<(&GpuAdapter, f32)> = self
            .adapters
            .resolve(mix)?
            .into_iter()
            .map(|(adapter, weight)| (adapter, adapter.alpha * weight * strength))
            .collect();
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
        let align = self.model.config().alignment();
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

    fn config(&self) -> &UnetConfig {
        self.model.config()
    }
}
