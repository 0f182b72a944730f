//! The wgpu device and the compute pipelines, created once per backend. Every kernel is one WGSL
//! file in `shaders/` beside this one; its parameter struct and dispatch size live here beside it.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{EngineError, Result};

/// A GPU adapter and its device.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
}

fn gpu_error(message: impl Into<String>) -> EngineError {
    EngineError::Backend(message.into())
}

/// Every adapter wgpu sees (Vulkan, Metal, DX12, or `WGPU_BACKEND`), without opening any.
pub fn adapters() -> Vec<wgpu::AdapterInfo> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    descriptor.backends = backends;
    let instance = wgpu::Instance::new(descriptor);
    pollster::block_on(instance.enumerate_adapters(backends)).iter().map(wgpu::Adapter::get_info).collect()
}

impl Gpu {
    /// Opens the first GPU adapter. A software one (llvmpipe/lavapipe) is taken only when
    /// `allow_software`: it is correct but far slower than the CPU backend.
    pub fn open(allow_software: bool) -> Result<Self> {
        // Vulkan, Metal and DX12 only (WGPU_BACKEND overrides): compute needs no GL, and probing
        // GL through EGL prints driver noise on machines without a display.
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        descriptor.backends = backends;
        let instance = wgpu::Instance::new(descriptor);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let mut found: Vec<String> = Vec::new();
        let mut chosen = None;
        for adapter in adapters {
            let info = adapter.get_info();
            found.push(format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type));
            let software = info.device_type == wgpu::DeviceType::Cpu;
            let rank = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
                wgpu::DeviceType::Cpu => 3,
            };
            if (!software || allow_software) && chosen.as_ref().is_none_or(|(r, _)| rank < *r) {
                chosen = Some((rank, adapter));
            }
        }
        let Some((_, adapter)) = chosen else {
            let seen = if found.is_empty() { "none".to_string() } else { found.join(", ") };
            return Err(gpu_error(format!(
                "no GPU adapter for wgpu (adapters seen: {seen}); use --backend reference (the CPU backend)"
            )));
        };
        let info = adapter.get_info();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: adapter.limits().max_storage_buffer_binding_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("prism"),
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| gpu_error(format!("cannot open {}: {e}", info.name)))?;
        Ok(Self { device, queue, info })
    }

    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// "NVIDIA GeForce RTX 4060 (Vulkan, driver 550.1)".
    pub fn describe(&self) -> String {
        let driver = if self.info.driver_info.is_empty() {
            self.info.driver.clone()
        } else {
            format!("{} {}", self.info.driver, self.info.driver_info)
        };
        format!("{} ({:?}, {})", self.info.name, self.info.backend, driver.trim())
    }

    pub fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        // wgpu refuses zero-sized bindings; an empty tensor gets one unused word.
        let contents: &[u8] = if bytes.is_empty() { &[0; 4] } else { bytes };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        })
    }

    pub fn empty_storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    pub fn uniform(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Copies `buffer` back to the CPU (blocking).
    pub fn read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_error(format!("the GPU stopped: {e}")))?;
        receiver
            .recv()
            .map_err(|_| gpu_error("the GPU never answered the readback"))?
            .map_err(|e| gpu_error(format!("cannot read the result back: {e}")))?;
        let view = staging.slice(..).get_mapped_range().map_err(|e| gpu_error(format!("cannot map the result: {e}")))?;
        let data = view.to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }

    /// Waits until the GPU has finished everything submitted.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| gpu_error(format!("the GPU stopped: {e}")))
    }
}

/// Activations as stored: f32 words (float path) or int16/int8 packed into u32 words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    Float,
    Quantized { bits: u32 },
}

impl Storage {
    pub fn per_word(self) -> usize {
        match self {
            Self::Float => 1,
            Self::Quantized { bits } => (32 / bits) as usize,
        }
    }

    fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            Self::Float => vec![("FLOAT", 1.0), ("ACT_BITS", 16.0)],
            Self::Quantized { bits } => vec![("FLOAT", 0.0), ("ACT_BITS", f64::from(bits))],
        }
    }
}

/// Channels are padded to a multiple of 4 in every stored tensor.
pub fn padded(channels: usize) -> usize {
    channels.div_ceil(4) * 4
}

/// Bytes of an activation tensor `[h, w, c]`.
pub fn activation_bytes(h: usize, w: usize, c: usize, storage: Storage) -> u64 {
    ((h * w * padded(c)).div_ceil(storage.per_word()) * 4) as u64
}

/// `conv.wgsl`'s parameters (one uniform per dispatch, fixed for a plan).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    pub out_h: u32,
    pub out_w: u32,
    pub cout: u32,
    pub k: u32,
    pub stride: u32,
    pub pad: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub cin_a: u32,
    pub cin_b: u32,
    pub up_a: u32,
    pub _pad0: u32,
    pub scale_a: f32,
    pub scale_b: f32,
    pub out_scale: f32,
    pub weight_zero: f32,
    pub leaky: u32,
    /// 1: this is a LoRA A pass (cout = the bound rank, no side path of its own).
    pub lora_a_pass: u32,
    pub mid_scale: f32,
    pub lora_b_scale: f32,
    pub lora_b_zero: f32,
    pub slope: f32,
    pub _pad1: [u32; 2],
}

/// The bound adapters' rank and per-rank scales (`alpha x weight x strength`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LoraScales {
    pub rank: u32,
    /// An A pass writes its channels from `offset` in an intermediate of `stride` channels.
    pub offset: u32,
    pub stride: u32,
    pub _pad: u32,
    pub values: [f32; MAX_RANK],
}

/// Largest total rank bound at once (a blend concatenates ranks): room for four rank-32
/// adapters.
pub const MAX_RANK: usize = 128;

impl LoraScales {
    pub fn new(scales: &[f32]) -> Result<Self> {
        if scales.len() > MAX_RANK {
            return Err(gpu_error(format!(
                "the bound adapters have rank {} in all; the wgpu backend binds at most {MAX_RANK}",
                scales.len()
            )));
        }
        let mut values = [0.0; MAX_RANK];
        values[..scales.len()].copy_from_slice(scales);
        let rank = scales.len() as u32;
        Ok(Self { rank, offset: 0, stride: rank, _pad: 0, values })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddParams {
    pub elements: u32,
    pub scale_a: f32,
    pub scale_b: f32,
    pub out_scale: f32,
}

/// `unshuffle.wgsl` and `shuffle.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ShuffleParams {
    pub h: u32,
    pub w: u32,
    pub scale: f32,
    pub _pad: u32,
}

/// The pipelines of one storage mode.
pub struct Kernels {
    pub conv: wgpu::ComputePipeline,
    pub add: wgpu::ComputePipeline,
    pub unshuffle: wgpu::ComputePipeline,
    pub shuffle: wgpu::ComputePipeline,
    /// Layouts shared by both storage modes' pipelines.
    pub layouts: Arc<Layouts>,
}

pub struct Layouts {
    /// conv group 0: params, input a, input b, mid, output.
    pub conv_io: wgpu::BindGroupLayout,
    /// conv group 1: weights, channel scales + biases.
    pub conv_weights: wgpu::BindGroupLayout,
    /// conv group 2: LoRA B, LoRA scales.
    pub conv_lora: wgpu::BindGroupLayout,
    /// add: params, a, b, output. unshuffle/shuffle: params, input, output.
    pub add_io: wgpu::BindGroupLayout,
    pub shuffle_io: wgpu::BindGroupLayout,
}

pub fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

const UNIFORM: wgpu::BufferBindingType = wgpu::BufferBindingType::Uniform;
const READ: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: true };
const WRITE: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: false };

impl Layouts {
    pub fn new(device: &wgpu::Device) -> Self {
        let layout = |label: &str, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
        };
        Self {
            conv_io: layout(
                "conv io",
                &[
                    layout_entry(0, UNIFORM),
                    layout_entry(1, READ),
                    layout_entry(2, READ),
                    layout_entry(3, READ),
                    layout_entry(4, WRITE),
                ],
            ),
            conv_weights: layout("conv weights", &[layout_entry(0, READ), layout_entry(1, READ)]),
            conv_lora: layout("conv lora", &[layout_entry(0, READ), layout_entry(1, UNIFORM)]),
            add_io: layout(
                "add io",
                &[layout_entry(0, UNIFORM), layout_entry(1, READ), layout_entry(2, READ), layout_entry(3, WRITE)],
            ),
            shuffle_io: layout("shuffle io", &[layout_entry(0, UNIFORM), layout_entry(1, READ), layout_entry(2, WRITE)]),
        }
    }
}

impl Kernels {
    pub fn new(gpu: &Gpu, layouts: Arc<Layouts>, storage: Storage) -> Self {
        let device = &gpu.device;
        let constants = storage.constants();
        let pipeline = |label: &str, source: &str, groups: &[&wgpu::BindGroupLayout]| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &groups.iter().map(|g| Some(*g)).collect::<Vec<_>>(),
                immediate_size: 0,
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
                cache: None,
            })
        };
        Self {
            conv: pipeline(
                "conv",
                concat!(include_str!("shaders/activations.wgsl"), include_str!("shaders/conv.wgsl")),
                &[&layouts.conv_io, &layouts.conv_weights, &layouts.conv_lora],
            ),
            add: pipeline(
                "add",
                concat!(include_str!("shaders/activations.wgsl"), include_str!("shaders/add.wgsl")),
                &[&layouts.add_io],
            ),
            unshuffle: pipeline(
                "unshuffle",
                concat!(include_str!("shaders/activations.wgsl"), include_str!("shaders/unshuffle.wgsl")),
                &[&layouts.shuffle_io],
            ),
            shuffle: pipeline(
                "shuffle",
                concat!(include_str!("shaders/activations.wgsl"), include_str!("shaders/shuffle.wgsl")),
                &[&layouts.shuffle_io],
            ),
            layouts,
        }
    }
}

pub fn bind(device: &wgpu::Device, label: &str, layout: &wgpu::BindGroupLayout, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
}

/// Workgroups of 64 along x for `n` invocations, spilling into y past the 65535 limit.
pub fn groups_for(n: usize) -> (u32, u32) {
    let groups = n.div_ceil(64) as u32;
    if groups <= 65535 { (groups, 1) } else { (65535, groups.div_ceil(65535)) }
}
