//! Adapters on the GPU: each installed adapter's int8 and f32 A/B in buffers of its own with
//! their bind groups, and the slot a blend (or the single-slot mode) writes into.

use super::backend::{GpuLayer, WgpuBackend, path};
use super::backend_error;
use super::context::{Gpu, Layouts, LoraScales, MAX_RANK, bind, padded};
use crate::adapter::ResidentAdapter;
use crate::backends::{AdapterInfo, Installed, Precision};
use crate::error::Result;

pub(super) fn words_i8(values: &[i8]) -> Vec<u32> {
    values.chunks(4).map(|c| c.iter().enumerate().fold(0u32, |w, (i, v)| w | (u32::from(*v as u8) << (8 * i)))).collect()
}

pub(super) fn bytes_u32(words: &[u32]) -> &[u8] {
    bytemuck::cast_slice(words)
}

/// Rows of `row_len` int8 values, each padded with `fill` to whole words.
pub(super) fn pack_rows_i8(rows: &[Vec<i8>], row_len: usize, fill: i8) -> Vec<u32> {
    let row_words = row_len.div_ceil(4);
    let mut out = Vec::with_capacity(rows.len() * row_words);
    for row in rows {
        let mut padded_row = row.clone();
        padded_row.resize(row_words * 4, fill);
        out.extend(words_i8(&padded_row));
    }
    out
}

pub(super) fn pack_rows_f32(rows: &[Vec<f32>], row_len: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(rows.len() * row_len);
    for row in rows {
        out.extend(row.iter().map(|v| v.to_bits()));
        out.extend(std::iter::repeat_n(0u32, row_len - row.len()));
    }
    out
}

/// One adapter tensor pair on the GPU, both precisions, with bind groups.
pub(super) struct AdapterLayer {
    pub(super) a: [wgpu::Buffer; 2],
    pub(super) b: [wgpu::Buffer; 2],
    pub(super) a_group: [wgpu::BindGroup; 2],
    pub(super) b_group: [wgpu::BindGroup; 2],
    /// Packed words, kept on the CPU for the single-slot mode.
    pub(super) host_a: [Vec<u32>; 2],
    pub(super) host_b: [Vec<u32>; 2],
}

pub(super) struct GpuAdapter {
    pub(super) info: AdapterInfo,
    pub(super) alpha: f32,
    pub(super) rank: usize,
    pub(super) layers: Vec<Option<AdapterLayer>>,
    pub(super) scales: wgpu::Buffer,
    pub(super) bytes_int8: usize,
    pub(super) bytes_f32: usize,
}

/// The blend / single-slot input buffers, sized for `MAX_RANK`.
pub(super) struct Slot {
    pub(super) layers: Vec<AdapterLayer>,
    pub(super) scales: wgpu::Buffer,
    pub(super) bytes: usize,
}

impl Installed for GpuAdapter {
    fn info(&self) -> AdapterInfo {
        self.info.clone()
    }
}

impl WgpuBackend {
    pub(super) fn make_slot(gpu: &Gpu, layouts: &Layouts, layers: &[GpuLayer]) -> Result<Slot> {
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
    pub(super) fn adapter_layer_groups(
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

    pub(super) fn upload_adapter(&self, resident: &ResidentAdapter, stored_bytes: usize) -> Result<GpuAdapter> {
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
    pub(super) fn write_slot(&self, adapter: &GpuAdapter, precision: Precision) {
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
    pub(super) fn blend_slot(&self, mix: &[&GpuAdapter], precision: Precision) -> Vec<bool> {
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
}
