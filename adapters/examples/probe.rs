//! Diagnostics for a training checkpoint or the trained base: activation ranges and, per task,
//! the held-out loss against doing nothing.
//! `cargo run --release -p prism-adapters --example probe [CKPT | MODEL.safetensors]`
use std::path::Path;

use prism_adapters::quad::heldout_examples;
use prism_adapters::recipe::{load_base, model_from_tensors, shipped_config};
use prism_adapters::tasks::ALL_TASKS;
use prism_adapters::train::Batch;
use prism_engine::quant::RangeObserver;

fn main() -> anyhow::Result<()> {
    let data = Path::new("data");
    let base = match std::env::args().nth(1) {
        Some(path) => {
            let file = prism_engine::tensorfile::TensorFile::read(Path::new(&path))?;
            // A model file (an export) carries its config; a checkpoint is the shipped layout.
            if let Ok(model) = prism_engine::unet::Unet::from_file(&file, &candle_core::Device::Cpu) {
                return probe(data, &model);
            }
            let config = shipped_config()?;
            let tensors = (0..config.convs().len() * 3)
                .map(|i| {
                    let raw = &file.tensors[&format!("param.{i}")];
                    Ok(candle_core::Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &candle_core::Device::Cpu)?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            model_from_tensors(&config, &tensors)?
        }
        None => load_base(data)?,
    };
    probe(data, &base)
}

fn probe(data: &Path, base: &prism_engine::unet::Unet) -> anyhow::Result<()> {
    for task in ALL_TASKS {
        let examples = heldout_examples(data, task, 128)?;
        let batch = Batch::new(&examples, base.config().hole_fill)?;
        let mut observer = RangeObserver::default();
        let loss = batch.loss(&base.forward(&batch.input, None, &mut observer)?)?.to_scalar::<f32>()?;
        let largest = observer.absmax.values().cloned().fold(0f32, f32::max);
        println!("{:9} loss {loss:.4} identity {:.4} largest activation {largest:.1}", task.id(), batch.identity_loss()?);
    }
    Ok(())
}
