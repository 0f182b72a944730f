//! What `prism bench` times beyond the `Backend` trait: one conv alone, and the device's f32
//! matrix-multiply ceiling.

use super::backend::{WgpuBackend, path};
use super::backend_error;
use super::context::{self, Gpu, bind};
use super::plan::Op;
use crate::backends::Precision;
use crate::error::Result;

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
        source: wgpu::ShaderSource::Wgsl(include_str!("shaders/matmul.wgsl").into()),
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
