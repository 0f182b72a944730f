//! What binding one adapter costs the reference backend's int8 forward: base and LoRA forwards
//! at 512x512 timed in alternating pairs (a load spike on a shared machine hits both alike),
//! with the median of the per-pair ratios. `prism bench` reports the same ratio from fewer runs
//! beside everything else; this is the quick loop for kernel work.
//!
//! `cargo run --release -p prism-engine --example lora_overhead [-- MODEL_DIR [PAIRS]]`

use std::path::PathBuf;
use std::time::Instant;

use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::fixtures::{photo_input, synthetic_photo};
use prism_engine::mix::Mix;
use prism_engine::model::Model;

const SIZE: usize = 512;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets"), PathBuf::from);
    let pairs: usize = args.next().map_or(Ok(15), |p| p.parse())?;
    let model = Model::load(&dir)?;
    let tool = model.shipped_adapters().first().cloned().ok_or("the model has no adapters")?;
    let adapter = model.read_adapter(&tool)?;
    let one = Mix::single(adapter.meta.name.clone());
    let input = photo_input(&synthetic_photo(SIZE, SIZE, 1))?;
    let mut backend = ReferenceBackend::new(model.clone());
    backend.install(&adapter)?;
    let mut time = |mix: &Mix| -> Result<f64, Box<dyn std::error::Error>> {
        backend.bind(mix, 1.0, Precision::Int8)?;
        let start = Instant::now();
        std::hint::black_box(backend.forward(&input)?);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    time(&Mix::none())?;
    time(&one)?;
    let (mut base, mut lora, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        let (b, l) = (time(&Mix::none())?, time(&one)?);
        base.push(b);
        lora.push(l);
        ratios.push(l / b);
    }
    println!(
        "{SIZE}x{SIZE} int8, {} (rank {}) bound against none, {pairs} alternating pairs: base {:.1} ms, LoRA {:.1} ms (medians), per-pair ratio {:.3}x",
        adapter.meta.name,
        adapter.meta.rank,
        median(base),
        median(lora),
        median(ratios)
    );
    Ok(())
}
