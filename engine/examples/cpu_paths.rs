//! Every CPU path of the reference backend on the shipped model at 512x512 with one tool bound,
//! side by side in one run: float (candle + gemm), int8 through QuantSim, and int8 on each
//! integer kernel path this CPU runs, as ratios to float and as GFLOP/s against the f32 matmul
//! ceiling measured in the same run.
//!
//! `cargo run --release -p prism-engine --example cpu_paths [-- MODEL_DIR]`

use std::path::PathBuf;
use std::time::Instant;

use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::conv::matmul_into;
use prism_engine::fixtures::{photo_input, synthetic_photo};
use prism_engine::int8::KernelPath;
use prism_engine::mix::Mix;
use prism_engine::model::Model;

const SIZE: usize = 512;
const RUNS: usize = 5;

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets"), PathBuf::from);
    let model = Model::load(&dir)?;
    let tool = model.shipped_adapters().first().cloned().ok_or("the model has no adapters")?;
    let adapter = model.read_adapter(&tool)?;
    let mix = Mix::single(adapter.meta.name.clone());
    let input = photo_input(&synthetic_photo(SIZE, SIZE, 1))?;
    let config = model.config();
    let gflop = (config.flops(SIZE, SIZE) + config.lora_flops(SIZE, SIZE, adapter.meta.rank)) as f64 / 1e9;

    let n = 1024;
    let (a, b) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
    let mut c = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    let ceiling = 2.0 * (n * n * n) as f64 / median_ms(RUNS, || matmul_into(&mut c, &a, &b, (n, n, n), false, threads)) / 1e6;

    let time = |mut backend: ReferenceBackend, precision: Precision| -> Result<f64, Box<dyn std::error::Error>> {
        backend.install(&adapter)?;
        backend.bind(&mix, 1.0, precision)?;
        Ok(median_ms(RUNS, || {
            std::hint::black_box(backend.forward(&input).ok());
        }))
    };
    println!(
        "{SIZE}x{SIZE}, {} bound (rank {}), {gflop:.1} GFLOP a forward, {threads} threads, f32 matmul ceiling {ceiling:.0} GFLOP/s\n",
        adapter.meta.name, adapter.meta.rank
    );
    println!("| path | ms | vs float | GFLOP/s | of ceiling |");
    println!("|---|---:|---:|---:|---:|");
    let float = time(ReferenceBackend::quantsim(model.clone()), Precision::Float)?;
    let row = |name: &str, ms: f64| {
        println!(
            "| {name} | {ms:.1} | {:.3}x | {:.1} | {:.0}% |",
            ms / float,
            gflop / ms * 1e3,
            100.0 * gflop / ms * 1e3 / ceiling
        )
    };
    row("float (candle, gemm f32)", float);
    row("int8 QuantSim", time(ReferenceBackend::quantsim(model.clone()), Precision::Int8)?);
    for path in KernelPath::ALL.into_iter().filter(|p| p.supported()) {
        row(path.describe(), time(ReferenceBackend::on_kernel(model.clone(), path)?, Precision::Int8)?);
    }
    Ok(())
}
