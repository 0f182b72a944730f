//! `prism bench`: the paper's effects measured side by side in one run, on the shipped model and
//! every shipped tool: hot-swap against rebuilding a merged model, memory of one shared model
//! against one merged model per tool, the LoRA side path's cost, int8 against f32 on wgpu, the
//! reference CPU backend, and the conv kernels against a matrix-multiply ceiling on the device.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use candle_core::{Device, Tensor};
use prism_engine::backends::gpu::{SwapMode, WgpuBackend, matmul_seconds};
use prism_engine::backends::{Backend, BackendKind, Precision, ReferenceBackend};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, load_picture};
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use prism_engine::model::merged_model;
use serde::Serialize;

/// The side of the CPU forwards: the size an edit works at.
const CPU_SIZE: usize = 512;

#[derive(Debug, Serialize)]
pub struct KernelRate {
    pub conv: String,
    pub ms: f64,
    pub gflops: f64,
    pub of_ceiling: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub tools: usize,
    pub backend: BackendKind,
    pub device: String,
    pub size: usize,
    pub switch_us_p50: f64,
    pub switch_us_p99: f64,
    pub switch_single_slot_us_p50: f64,
    pub switch_blend_us_p50: f64,
    /// Submitting the switch's queued writes and waiting for the GPU (any empty submission).
    pub flush_us_p50: f64,
    pub rebuild_ms_p50: f64,
    pub resident_bytes_unified: usize,
    pub resident_bytes_merged_int8: usize,
    pub resident_bytes_merged_f32: usize,
    /// wgpu, int8: the base alone and with the first tool bound, timed in alternation.
    pub forward_ms_base: f64,
    /// The first same-size tool bound (its name and rank beside the time).
    pub lora_tool: String,
    pub lora_rank: usize,
    pub forward_ms_lora: f64,
    /// The highest-rank same-size tool bound, when its rank is above the first tool's.
    pub largest_rank: Option<(String, usize, f64)>,
    pub forward_ms_int8_wgpu: f64,
    pub forward_ms_f32_wgpu: f64,
    pub forward_ms_reference: f64,
    /// The reference CPU backend (int8) at 512x512, whatever `size` is: the base alone and
    /// with the first tool bound, timed in alternation in this run.
    pub forward_ms_base_cpu: f64,
    pub forward_ms_lora_cpu: f64,
    /// The reference backend at 512x512 with the first tool bound, int8 (integer kernels) and
    /// f32, timed in alternation in this run.
    pub forward_ms_int8_cpu: f64,
    pub forward_ms_f32_cpu: f64,
    /// The integer kernels the CPU's int8 ran on (`PRISM_CPU_KERNEL` name).
    pub cpu_int8_path: String,
    /// f32 matrix multiply (gemm, 1024^3, all threads): the CPU's practical ceiling.
    pub cpu_matmul_gflops: f64,
    /// The two forwards above as GFLOP/s of the model's multiply-accumulates.
    pub cpu_int8_gflops: f64,
    pub cpu_f32_gflops: f64,
    /// ONNX Runtime (CPU provider) on the exported graph, when the runtime is found.
    pub forward_ms_ort: Option<f64>,
    pub switch_us_ort_p50: Option<f64>,
    pub ort_device: Option<String>,
    pub matmul_gflops: f64,
    pub kernels: Vec<KernelRate>,
}

/// The `p` quantile of `samples` (sorted in place); NaN when there are none.
pub(crate) fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or(f64::NAN)
}

fn median_ms(repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        run()?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(percentile(&mut samples, 0.5))
}

/// A `size x size` crop of a shipped sample as model input (mask all ones: a global edit).
fn bench_input(model: &Model, size: usize) -> Result<Tensor> {
    let sample = model.dir.join("samples").join("coffee.jpg");
    let photo = load_picture(&sample, DEFAULT_MAX_PIXELS).with_context(|| format!("the bench photo {}", sample.display()))?.rgb;
    let side = photo.width.min(photo.height);
    let square = photo
        .crop_clamped(((photo.width - side) / 2) as isize, ((photo.height - side) / 2) as isize, side, side)
        .resized(size, size);
    let data: Vec<f32> =
        square.data.chunks_exact(3).flat_map(|p| [p[0] * 2.0 - 1.0, p[1] * 2.0 - 1.0, p[2] * 2.0 - 1.0, 1.0]).collect();
    Ok(Tensor::from_vec(data, (1, size, size, 4), &Device::Cpu)?)
}

pub fn run_bench(model: &Model, size: usize, repeats: usize, progress: &dyn Fn(&str)) -> Result<BenchReport> {
    let align = model.config().alignment();
    if size == 0 || !size.is_multiple_of(align) {
        bail!("--size must be a positive multiple of {align}");
    }
    let files = model.shipped_adapters();
    let adapters: Vec<_> = files.iter().map(|f| model.read_adapter(f)).collect::<prism_engine::Result<_>>()?;
    if adapters.is_empty() {
        bail!("the model in {} has no adapters to measure", model.dir.display());
    }
    let tools: Vec<String> = adapters.iter().filter(|a| a.meta.scale == 1).map(|a| a.meta.name.clone()).collect();
    let first = tools.first().cloned().ok_or_else(|| anyhow!("no same-size tool to measure"))?;
    progress("compiling the model on the GPU");
    let mut wgpu = WgpuBackend::new(model.clone(), true)?;
    let gpu = wgpu.gpu().clone();
    for adapter in &adapters {
        wgpu.install(adapter)?;
    }
    let input = bench_input(model, size)?;

    progress("tool switches");
    // A switch is `bind`: what it queues (a uniform write, tensor writes or copies) reaches the GPU
    // with the next forward's submission. The flush is timed apart: on a software Vulkan driver an
    // empty submission alone costs hundreds of microseconds, whatever was queued.
    let mut flush = Vec::new();
    let mut switch = |mode: SwapMode, mixes: &[Mix], count: usize| -> Result<Vec<f64>> {
        wgpu.swap = mode;
        let mut samples = Vec::with_capacity(count);
        for i in 0..count {
            let mix = &mixes[i % mixes.len()];
            let start = Instant::now();
            wgpu.bind(mix, 1.0, Precision::Int8)?;
            samples.push(start.elapsed().as_secs_f64() * 1e6);
            let start = Instant::now();
            gpu.queue.submit([]);
            gpu.wait()?;
            flush.push(start.elapsed().as_secs_f64() * 1e6);
        }
        Ok(samples)
    };
    let singles: Vec<Mix> = tools.iter().map(Mix::single).collect();
    let blends: Vec<Mix> =
        tools.windows(2).map(|w| Mix::new([(w[0].clone(), 0.6), (w[1].clone(), 0.4)])).collect::<Result<_, _>>()?;
    let mut rebind = switch(SwapMode::Rebind, &singles, 400)?;
    let mut slot = switch(SwapMode::SingleSlot, &singles, 200)?;
    let mut blend = switch(SwapMode::Rebind, &blends, 200)?;
    let flush_us_p50 = percentile(&mut flush, 0.5);
    wgpu.swap = SwapMode::Rebind;

    progress("forwards");
    let one = Mix::single(first.clone());
    // Base and LoRA alternate, as on the CPU below: their ratio is the claim, and lavapipe's
    // timings drift with the machine's load.
    let [forward_ms_base, forward_ms_lora] =
        alternating_ms(repeats, &mut wgpu, [(&Mix::none(), Precision::Int8), (&one, Precision::Int8)], &input)?;
    let mut forward = |mix: &Mix, precision: Precision| -> Result<f64> {
        wgpu.bind(mix, 1.0, precision)?;
        wgpu.forward(&input)?; // plan and warm-up
        median_ms(repeats, || wgpu.forward(&input).map(|_| ()).map_err(Into::into))
    };
    let rank_of = |tool: &str| adapters.iter().find(|a| a.meta.name == tool).map_or(0, |a| a.meta.rank);
    let lora_rank = rank_of(&first);
    let forward_ms_f32_wgpu = forward(&one, Precision::Float)?;
    let largest = tools.iter().max_by_key(|t| rank_of(t)).filter(|t| rank_of(t) > lora_rank).cloned();
    let largest_rank = match largest {
        Some(tool) => Some((tool.clone(), rank_of(&tool), forward(&Mix::single(tool), Precision::Int8)?)),
        None => None,
    };

    progress("conv kernels and the matmul ceiling");
    wgpu.bind(&one, 1.0, Precision::Int8)?;
    let matmul_n = 512;
    let matmul = matmul_seconds(&gpu, matmul_n, repeats.max(2))?;
    let matmul_gflops = 2.0 * (matmul_n as f64).powi(3) / matmul / 1e9;
    let mut kernels = Vec::new();
    for conv in ["stem", "enc0.res0.conv1", "enc1.res0.conv1", "dec0.fuse", "head"] {
        let (seconds, flops) = wgpu.time_conv(size, size, conv, repeats.max(2))?;
        let gflops = flops as f64 / seconds / 1e9;
        kernels.push(KernelRate { conv: conv.into(), ms: seconds * 1e3, gflops, of_ceiling: gflops / matmul_gflops });
    }

    progress("reference CPU backend");
    let mut reference = ReferenceBackend::new(model.clone());
    reference.install(&adapters[files.iter().position(|f| f.file_stem().is_some_and(|s| s == first.as_str())).unwrap_or(0)])?;
    reference.bind(&one, 1.0, Precision::Int8)?;
    reference.forward(&input)?;
    let forward_ms_reference = median_ms(repeats, || reference.forward(&input).map(|_| ()).map_err(Into::into))?;
    let input_512 = bench_input(model, CPU_SIZE)?;
    let [forward_ms_base_cpu, forward_ms_lora_cpu] =
        alternating_ms(repeats.max(5), &mut reference, [(&Mix::none(), Precision::Int8), (&one, Precision::Int8)], &input_512)?;

    progress("CPU int8 kernels against f32");
    let cpu_int8_path = reference.int8_path().map_or_else(|| "quantsim".to_string(), |p| p.name().to_string());
    let [forward_ms_int8_cpu, forward_ms_f32_cpu] =
        alternating_ms(repeats.max(3), &mut reference, [(&one, Precision::Int8), (&one, Precision::Float)], &input_512)?;
    let n = 1024;
    let (a, b, mut c) = (vec![0.5f32; n * n], vec![0.25f32; n * n], vec![0f32; n * n]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let matmul_ms = median_ms(repeats.max(3), || {
        prism_engine::conv::matmul_into(&mut c, &a, &b, (n, n, n), false, threads);
        Ok(())
    })?;
    let cpu_matmul_gflops = 2.0 * (n as f64).powi(3) / matmul_ms / 1e6;
    let config = model.config();
    let cpu_gflop = (config.flops(CPU_SIZE, CPU_SIZE) + config.lora_flops(CPU_SIZE, CPU_SIZE, lora_rank)) as f64 / 1e9;

    progress("ONNX Runtime");
    let ort = ort_peer(model, &adapters, &tools, &input, repeats);
    if let Err(error) = &ort {
        eprintln!("bench: ONNX Runtime left out: {error:#}");
    }
    let (forward_ms_ort, switch_us_ort_p50, ort_device) = match ort {
        Ok((forward, switch, device)) => (Some(forward), Some(switch), Some(device)),
        Err(_) => (None, None, None),
    };

    progress("rebuilding a merged model per tool");
    let adapter = &adapters[0];
    let rebuild_ms_p50 = median_ms(repeats, || {
        let merged = merged_model(model, adapter, 1.0)?;
        let mut compiled = WgpuBackend::on(gpu.clone(), merged)?;
        compiled.prepare(size, size, Precision::Int8)?;
        gpu.wait()?;
        Ok(())
    })?;

    let memory = wgpu.gpu_memory();
    Ok(BenchReport {
        tools: adapters.len(),
        backend: BackendKind::Wgpu,
        device: wgpu.device(),
        size,
        switch_us_p50: percentile(&mut rebind, 0.5),
        switch_us_p99: percentile(&mut rebind, 0.99),
        switch_single_slot_us_p50: percentile(&mut slot, 0.5),
        switch_blend_us_p50: percentile(&mut blend, 0.5),
        flush_us_p50,
        rebuild_ms_p50,
        resident_bytes_unified: memory.base_int8 + memory.adapters_int8,
        resident_bytes_merged_int8: adapters.len() * memory.base_int8,
        resident_bytes_merged_f32: adapters.len() * memory.base_f32,
        forward_ms_base,
        lora_tool: first,
        lora_rank,
        forward_ms_lora,
        largest_rank,
        forward_ms_int8_wgpu: forward_ms_lora,
        forward_ms_f32_wgpu,
        forward_ms_reference,
        forward_ms_base_cpu,
        forward_ms_lora_cpu,
        forward_ms_int8_cpu,
        forward_ms_f32_cpu,
        cpu_int8_path,
        cpu_matmul_gflops,
        cpu_int8_gflops: cpu_gflop / forward_ms_int8_cpu * 1e3,
        cpu_f32_gflops: cpu_gflop / forward_ms_f32_cpu * 1e3,
        forward_ms_ort,
        switch_us_ort_p50,
        ort_device,
        matmul_gflops,
        kernels,
    })
}

/// Medians of forwards on a backend (each a mix and a precision) timed in alternation, so that a
/// load spike on a shared machine hits them all alike.
fn alternating_ms<const N: usize>(
    repeats: usize,
    backend: &mut impl Backend,
    forwards: [(&Mix, Precision); N],
    input: &Tensor,
) -> Result<[f64; N]> {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for round in 0..=repeats {
        for (slot, (mix, precision)) in forwards.iter().enumerate() {
            backend.bind(mix, 1.0, *precision)?;
            let start = Instant::now();
            backend.forward(input)?;
            // The first round warms up.
            if round > 0 {
                samples[slot].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(samples.map(|mut ms| percentile(&mut ms, 0.5)))
}

/// ONNX Runtime as a peer: (forward ms, switch µs p50, device).
#[cfg(feature = "ort")]
fn ort_peer(
    model: &Model,
    adapters: &[prism_engine::adapter::Adapter],
    tools: &[String],
    input: &Tensor,
    repeats: usize,
) -> Result<(f64, f64, String)> {
    let mut ort = prism_engine::backends::ort::OrtBackend::new(model.clone(), prism_engine::backends::Provider::Cpu)?;
    for adapter in adapters {
        ort.install(adapter)?;
    }
    let mut switches = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        ort.bind(&Mix::single(tools[i % tools.len()].clone()), 1.0, Precision::Int8)?;
        switches.push(start.elapsed().as_secs_f64() * 1e6);
    }
    ort.bind(&Mix::single(tools[0].clone()), 1.0, Precision::Int8)?;
    ort.forward(input)?;
    let forward = median_ms(repeats, || ort.forward(input).map(|_| ()).map_err(Into::into))?;
    Ok((forward, percentile(&mut switches, 0.5), ort.device()))
}

#[cfg(not(feature = "ort"))]
fn ort_peer(_: &Model, _: &[prism_engine::adapter::Adapter], _: &[String], _: &Tensor, _: usize) -> Result<(f64, f64, String)> {
    bail!("this build has no ort feature")
}

/// The readable table, with the ratios the targets are stated in.
pub fn print_report(r: &BenchReport) {
    let n = r.tools as f64;
    println!("prism bench: {} tools, {}x{} input, {} on {}", r.tools, r.size, r.size, r.backend, r.device);
    println!();
    println!("| measure | value | ratio | target |");
    println!("|---|---:|---:|---|");
    println!("| switch (rebind), p50 / p99 | {:.1} / {:.1} µs | | p50 ≤ 1000 µs |", r.switch_us_p50, r.switch_us_p99);
    println!("| switch (single slot: tensors written), p50 | {:.1} µs | | |", r.switch_single_slot_us_p50);
    println!("| switch to a blend of two (GPU copies), p50 | {:.1} µs | | |", r.switch_blend_us_p50);
    println!("| submit + wait with nothing else queued (the driver's floor), p50 | {:.1} µs | | |", r.flush_us_p50);
    println!(
        "| rebuild a merged model (merge, requantize, upload, pipelines), p50 | {:.1} ms | {:.0}x the switch | ≥ 100x |",
        r.rebuild_ms_p50,
        r.rebuild_ms_p50 * 1e3 / r.switch_us_p50
    );
    println!("| resident: unified (base + {} adapters) | {:.3} MB | | |", r.tools, r.resident_bytes_unified as f64 / 1e6);
    println!(
        "| resident: {} merged int8 models | {:.3} MB | {:.2}x unified | ≥ {:.2}x (0.85 N) |",
        r.tools,
        r.resident_bytes_merged_int8 as f64 / 1e6,
        r.resident_bytes_merged_int8 as f64 / r.resident_bytes_unified as f64,
        0.85 * n
    );
    println!(
        "| resident: {} merged f32 models | {:.3} MB | {:.2}x unified | |",
        r.tools,
        r.resident_bytes_merged_f32 as f64 / 1e6,
        r.resident_bytes_merged_f32 as f64 / r.resident_bytes_unified as f64
    );
    println!("| forward, base (no adapter) | {:.1} ms | | |", r.forward_ms_base);
    println!(
        "| forward, one adapter bound ({}, rank {}) | {:.1} ms | {:.3}x base | ≤ 1.10x |",
        r.lora_tool,
        r.lora_rank,
        r.forward_ms_lora,
        r.forward_ms_lora / r.forward_ms_base
    );
    if let Some((tool, rank, ms)) = &r.largest_rank {
        println!("| forward, one adapter bound ({tool}, rank {rank}) | {ms:.1} ms | {:.3}x base | |", ms / r.forward_ms_base);
    }
    println!(
        "| forward int8 / f32 on wgpu | {:.1} / {:.1} ms | {:.3}x | ≤ 1.00x |",
        r.forward_ms_int8_wgpu,
        r.forward_ms_f32_wgpu,
        r.forward_ms_int8_wgpu / r.forward_ms_f32_wgpu
    );
    println!(
        "| forward, reference CPU backend (int8, {}) | {:.1} ms | {:.2}x wgpu int8 | |",
        r.cpu_int8_path,
        r.forward_ms_reference,
        r.forward_ms_reference / r.forward_ms_int8_wgpu
    );
    println!(
        "| forward on the CPU at {CPU_SIZE}x{CPU_SIZE}, one adapter bound ({}) / base alone | {:.1} / {:.1} ms | {:.3}x | ≤ 1.10x |",
        r.lora_tool,
        r.forward_ms_lora_cpu,
        r.forward_ms_base_cpu,
        r.forward_ms_lora_cpu / r.forward_ms_base_cpu
    );
    println!(
        "| forward on the CPU at {CPU_SIZE}x{CPU_SIZE}, int8 ({}) / f32, one adapter bound | {:.1} / {:.1} ms | {:.3}x | ≤ 0.60x |",
        r.cpu_int8_path,
        r.forward_ms_int8_cpu,
        r.forward_ms_f32_cpu,
        r.forward_ms_int8_cpu / r.forward_ms_f32_cpu
    );
    println!(
        "| the same as GFLOP/s, int8 / f32, against an f32 matmul ceiling of {:.0} GFLOP/s | {:.0} / {:.0} | {:.0}% / {:.0}% of ceiling | |",
        r.cpu_matmul_gflops,
        r.cpu_int8_gflops,
        r.cpu_f32_gflops,
        100.0 * r.cpu_int8_gflops / r.cpu_matmul_gflops,
        100.0 * r.cpu_f32_gflops / r.cpu_matmul_gflops
    );
    if let (Some(forward), Some(switch), Some(device)) = (r.forward_ms_ort, r.switch_us_ort_p50, &r.ort_device) {
        println!(
            "| forward, {device}, the exported graph | {forward:.1} ms | {:.2}x wgpu int8, {:.2}x reference | |",
            forward / r.forward_ms_int8_wgpu,
            forward / r.forward_ms_reference
        );
        println!("| switch on ONNX Runtime (choose the tensors the next run feeds; same session), p50 | {switch:.2} µs | | |");
    }
    println!();
    println!(
        "Kernels (int8 weights, int16 activations, one adapter bound) against an f32 matmul ceiling of {:.2} GFLOP/s:",
        r.matmul_gflops
    );
    println!();
    println!("| conv | ms | GFLOP/s | of ceiling |");
    println!("|---|---:|---:|---:|");
    for k in &r.kernels {
        println!("| {} | {:.2} | {:.2} | {:.0}% |", k.conv, k.ms, k.gflops, k.of_ceiling * 100.0);
    }
}
