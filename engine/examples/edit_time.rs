//! Two models side by side on the reference CPU backend: the median time of a 512x512 edit (the
//! whole pipeline, int8, one tool bound) for every global tool both ship, the runs of the two models
//! alternating so that a noisy machine slows both alike, and the ratio of the second to the first.
//! Then the same from a cold start, as a one-shot `prism edit` runs it: the model loaded, the
//! backend built and one tool installed before the edit (the files' decoding and encoding left out).
//!
//! `cargo run --release -p prism-engine --example edit_time -- MODEL_DIR_A MODEL_DIR_B`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use prism_engine::adapter::Region;
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::fixtures::synthetic_photo;
use prism_engine::job::{DEFAULT_CONTEXT, EditJob, run_edit};
use prism_engine::mix::Mix;
use prism_engine::model::Model;

const SIZE: usize = 512;
const RUNS: usize = 5;

/// A reference backend with every adapter the model ships installed, and its global tools' names.
fn backend_of(dir: &Path) -> Result<(ReferenceBackend, Vec<String>), Box<dyn std::error::Error>> {
    let model = Model::load(dir)?;
    let mut backend = ReferenceBackend::new(model.clone());
    let mut tools = Vec::new();
    for path in model.shipped_adapters() {
        let adapter = model.read_adapter(&path)?;
        // Global tools only: a local tool (removal) edits a mask, which a whole-photo edit has not.
        if adapter.meta.region == Region::Global {
            tools.push(adapter.meta.name.clone());
        }
        backend.install(&adapter)?;
    }
    Ok((backend, tools))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let [first, second] = dirs.as_slice() else {
        return Err("usage: edit_time MODEL_DIR_A MODEL_DIR_B".into());
    };
    let (mut a, tools_a) = backend_of(first)?;
    let (mut b, tools_b) = backend_of(second)?;
    let image = Arc::new(synthetic_photo(SIZE, SIZE, 4));
    let job = |tool: &str| EditJob {
        id: 0,
        image: image.clone(),
        mask: None,
        mix: Mix::single(tool),
        strength: 1.0,
        precision: Some(Precision::Int8),
        exposure: None,
        blur_size: None,
        noise_level: None,
        context: DEFAULT_CONTEXT,
        texture: prism_engine::job::DEFAULT_TEXTURE,
    };
    let time = |backend: &mut ReferenceBackend, job: &EditJob| -> Result<f64, Box<dyn std::error::Error>> {
        let start = Instant::now();
        run_edit(backend, job, &mut |_, _| true)?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    println!("{SIZE}x{SIZE} edit, int8, reference backend, median of {RUNS} alternating runs");
    println!("A: {}\nB: {}\n", first.display(), second.display());
    println!("| tool | A ms | B ms | B / A |");
    println!("|---|---:|---:|---:|");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for tool in tools_a.iter().filter(|t| tools_b.contains(t)) {
        let edit = job(tool);
        time(&mut a, &edit)?; // warm-up: plans and caches
        time(&mut b, &edit)?;
        let (mut ms_a, mut ms_b) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ms_a.push(time(&mut a, &edit)?);
            ms_b.push(time(&mut b, &edit)?);
        }
        let (ma, mb) = (median(ms_a), median(ms_b));
        println!("| {tool} | {ma:.0} | {mb:.0} | {:.2}x |", mb / ma);
    }
    let cold = |dir: &Path, tool: &str| -> Result<f64, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let model = Model::load(dir)?;
        let mut backend = ReferenceBackend::new(model.clone());
        let path = model.shipped_adapters().into_iter().find(|p| p.file_stem().is_some_and(|s| s == tool));
        backend.install(&model.read_adapter(&path.ok_or("the tool is not installed")?)?)?;
        run_edit(&mut backend, &job(tool), &mut |_, _| true)?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    println!("\n| cold start (load, build, install, edit) | A ms | B ms | B / A |");
    println!("|---|---:|---:|---:|");
    for tool in tools_a.iter().filter(|t| tools_b.contains(t)) {
        let (mut ms_a, mut ms_b) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ms_a.push(cold(first, tool)?);
            ms_b.push(cold(second, tool)?);
        }
        let (ma, mb) = (median(ms_a), median(ms_b));
        println!("| {tool} | {ma:.0} | {mb:.0} | {:.2}x |", mb / ma);
    }
    Ok(())
}
