//! The layer-by-layer parity harness: every op is fed the reference's stored inputs and its
//! output compared, in quantization steps, with the reference's at the same point.

use super::adapters::bytes_u32;
use super::backend::{WgpuBackend, path};
use super::backend_error;
use super::context::{Storage, activation_bytes, padded};
use super::plan::{Act, Op};
use crate::backends::Precision;
use crate::error::Result;
use crate::quant::StoredTensors;

impl WgpuBackend {
    /// Layer by layer against reference values: every op is fed the reference's stored inputs
    /// (`reference[point]`, NHWC, unpadded) and its output compared with the reference's at the
    /// same point. Returns, per point, the largest difference in quantization steps of that
    /// point (float path: in absolute value). The residual is compared under the key `residual`.
    pub fn layerwise_check(
        &mut self,
        h: usize,
        w: usize,
        input: &[f32],
        reference: &StoredTensors,
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
