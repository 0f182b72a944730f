//! `prism demo`: every shipped tool in turn on a sample photo, on the backend chosen, through the
//! same engine thread the editor uses. Each tool's switch, forward and resident memory is
//! printed as it finishes; a summary (or JSON) follows. Made for showing what runs where.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use prism_engine::adapter::Region;
use prism_engine::backends::{AdapterInfo, BackendKind, Precision, Provider};
use prism_engine::engine::{Command, EngineHandle, Event};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, Mask, load_picture};
use prism_engine::job::{DEFAULT_CONTEXT, EditJob, JobStats};
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use serde::Serialize;

use crate::bench::percentile;

/// The photo a demo runs on when none is given: a sample shipped with the model.
pub const DEMO_SAMPLE: &str = "samples/coffee.jpg";

/// One tool's run.
#[derive(Clone, Debug, Serialize)]
pub struct DemoRow {
    pub tool: String,
    pub title: String,
    pub rank: usize,
    /// Binding the tool's adapter (the hot swap).
    pub switch_ms: f64,
    pub forward_ms: f64,
    pub total_ms: f64,
    /// Base and every installed adapter, resident on the backend after the run.
    pub resident_bytes: usize,
    pub adapter_bytes: usize,
    pub precision: Precision,
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub backend: BackendKind,
    pub device: String,
    pub photo: PathBuf,
    pub width: usize,
    pub height: usize,
    pub rounds: usize,
    /// Every run, in order: each round visits every tool.
    pub runs: Vec<DemoRow>,
    /// Per tool, the median over the rounds.
    pub summary: Vec<DemoRow>,
}

impl DemoRow {
    pub fn new(tool: &AdapterInfo, stats: &JobStats) -> Self {
        Self {
            tool: tool.meta.name.clone(),
            title: tool.meta.title.clone(),
            rank: tool.meta.rank,
            switch_ms: stats.switch_time.as_secs_f64() * 1e3,
            forward_ms: stats.forward_time.as_secs_f64() * 1e3,
            total_ms: stats.total_time.as_secs_f64() * 1e3,
            resident_bytes: stats.memory.base_bytes + stats.memory.adapter_bytes,
            adapter_bytes: tool.stored_bytes,
            precision: stats.precision,
        }
    }
}

/// Per tool of `tools` that has runs, the median of its runs.
pub fn summarize(tools: &[AdapterInfo], runs: &[DemoRow]) -> Vec<DemoRow> {
    let mut by_tool: BTreeMap<&str, Vec<&DemoRow>> = BTreeMap::new();
    for run in runs {
        by_tool.entry(run.tool.as_str()).or_default().push(run);
    }
    tools
        .iter()
        .filter_map(|tool| by_tool.get(tool.meta.name.as_str()))
        .map(|rows| {
            let median = |field: fn(&DemoRow) -> f64| percentile(&mut rows.iter().map(|r| field(r)).collect::<Vec<_>>(), 0.5);
            DemoRow {
                switch_ms: median(|r| r.switch_ms),
                forward_ms: median(|r| r.forward_ms),
                total_ms: median(|r| r.total_ms),
                ..rows[0].clone()
            }
        })
        .collect()
}

/// A disc in the middle of the photo, a tenth of its short side across: what a local tool (object
/// removal) is shown removing when no mask is painted.
pub fn demo_mask(width: usize, height: usize) -> Mask {
    let radius = width.min(height) as f32 * 0.1;
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    let data = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| if (x as f32 + 0.5 - cx).hypot(y as f32 + 0.5 - cy) <= radius { 1.0 } else { 0.0 })
        .collect();
    Mask { width, height, data }
}

/// Runs every shipped tool of `model` on `photo` (None: [`DEMO_SAMPLE`]) `rounds` times on
/// `kind` (and `provider`, for ONNX Runtime), calling `on_run` as each run finishes.
pub fn run_demo(
    model: &Model,
    kind: BackendKind,
    provider: Provider,
    photo: Option<&Path>,
    rounds: usize,
    on_run: &mut dyn FnMut(&DemoRow),
) -> Result<DemoReport> {
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let photo = photo.map(Path::to_path_buf).unwrap_or_else(|| model.dir.join(DEMO_SAMPLE));
    let picture = load_picture(&photo, DEFAULT_MAX_PIXELS)?;
    let image = Arc::new(picture.rgb);
    let files = model.shipped_adapters();
    if files.is_empty() {
        bail!("the model in {} ships no tools", model.dir.display());
    }
    let engine = EngineHandle::spawn_kind(model.clone(), kind, provider, files.clone(), None)?;
    let wait = || engine.recv_timeout(Duration::from_secs(3600)).ok_or_else(|| anyhow!("the engine stopped without an answer"));

    // The engine installs the files before it takes a command: one answer per file.
    let mut tools = Vec::new();
    while tools.len() < files.len() {
        match wait()? {
            Event::AdapterInstalled(info) => tools.push(info),
            Event::AdapterRejected { path, error } => bail!("{}: {error}", path.display()),
            Event::BackendUnavailable { reason, .. } => bail!("{reason}"),
            _ => {}
        }
    }
    tools.sort_by(|a, b| a.meta.title.cmp(&b.meta.title));
    let mask = Arc::new(demo_mask(image.width, image.height));
    let mut id = 0;
    for _ in 0..rounds {
        for tool in &tools {
            id += 1;
            let local = tool.meta.region == Region::Local;
            engine.send(Command::Edit(EditJob {
                id,
                image: image.clone(),
                mask: local.then(|| mask.clone()),
                mix: Mix::single(tool.meta.name.clone()),
                strength: 1.0,
                precision: None,
                exposure: None,
                blur_size: None,
                noise_level: None,
                context: DEFAULT_CONTEXT,
                texture: prism_engine::job::DEFAULT_TEXTURE,
            }))?;
        }
    }

    let (mut backend, mut device) = (kind, String::new());
    let mut runs = Vec::new();
    while runs.len() < id as usize {
        match wait()? {
            Event::Done { job, stats, .. } => {
                let tool = &tools[(job as usize - 1) % tools.len()];
                (backend, device) = (stats.backend, stats.device.clone());
                let row = DemoRow::new(tool, &stats);
                on_run(&row);
                runs.push(row);
            }
            Event::Failed { job, error } => {
                let tool = &tools[(job as usize - 1) % tools.len()];
                bail!("{} failed: {error}", tool.meta.title);
            }
            _ => {}
        }
    }

    let summary = summarize(&tools, &runs);
    Ok(DemoReport { backend, device, photo, width: image.width, height: image.height, rounds, runs, summary })
}

pub fn print_run(row: &DemoRow) {
    println!(
        "{:<26} switch {:>7.2} ms   forward {:>8.1} ms   resident {:>6.2} MB",
        row.title,
        row.switch_ms,
        row.forward_ms,
        row.resident_bytes as f64 / 1e6
    );
}

pub fn print_summary(report: &DemoReport) {
    println!();
    println!(
        "{} tools on {} ({}x{}), {} on {}, median of {} round(s):",
        report.summary.len(),
        report.photo.display(),
        report.width,
        report.height,
        report.backend.name(),
        report.device,
        report.rounds
    );
    println!("| tool | rank | adapter KB | switch ms | forward ms | total ms | resident MB | precision |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in &report.summary {
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {} |",
            row.title,
            row.rank,
            row.adapter_bytes as f64 / 1e3,
            row.switch_ms,
            row.forward_ms,
            row.total_ms,
            row.resident_bytes as f64 / 1e6,
            row.precision.name()
        );
    }
}
