//! Held-out PSNR of a lowlight float teacher at a few exposures and at the estimated one, on the
//! inputs `eval` wrote to `data/eval/lowlight`: how a new teacher does before QUAD and eval.
//! `cargo run --release -p prism-adapters --example exposure_sweep [ASSETS] [ADAPTER] [STOPS|auto]`
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prism_adapters::tasks::psnr;
use prism_engine::adapter::Adapter;
use prism_engine::backend::{Backend, Precision, ReferenceBackend};
use prism_engine::imageio::load_picture;
use prism_engine::job::{EditJob, run_edit};
use prism_engine::model::Model;

fn main() -> anyhow::Result<()> {
    let assets = PathBuf::from(std::env::args().nth(1).unwrap_or("assets".into()));
    let adapter = std::env::args().nth(2).map_or_else(|| assets.join("adapters/float/lowlight.prism-lora"), PathBuf::from);
    let model = Model::load(&assets)?;
    let mut backend = ReferenceBackend::new(model.clone());
    backend.install(&Adapter::read(&adapter)?)?;
    let dir = Path::new("data/eval/lowlight");
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix("_clean.png").map(String::from))
        .collect();
    names.sort();
    for exposure in std::env::args().nth(3).map_or(vec![None, Some(2.5), Some(2.75), Some(3.0)], |s| vec![s.parse().ok()]) {
        let mut total = 0.0;
        for name in &names {
            let clean = load_picture(&dir.join(format!("{name}_clean.png")), 64_000_000)?.rgb;
            let input = load_picture(&dir.join(format!("{name}_input.png")), 64_000_000)?.rgb;
            let job = EditJob {
                id: 0,
                image: Arc::new(input),
                mask: None,
                mix: vec![("lowlight".into(), 1.0)],
                strength: 1.0,
                precision: Precision::Float,
                exposure,
            };
            total += psnr(&run_edit(&mut backend, &job, &mut |_, _| true)?.0, &clean, None);
        }
        println!("exposure {exposure:?}: {:.2} dB", total / names.len() as f64);
    }
    Ok(())
}
