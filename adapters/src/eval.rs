//! `prism-adapters eval`: runs every shipped tool on the held-out photos through the real edit
//! pipeline, has `scripts/peers.py` score them beside OpenCV's classical methods in one script,
//! and writes `MODEL_CARD.md`, `NOTICE` and the sample photos into the assets folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prism_engine::adapter::Adapter;
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::imageio::{Mask, RgbImage};
use prism_engine::job::{EditJob, run_edit};
use prism_engine::mix::Mix;
use prism_engine::model::{ADAPTERS_DIR, Model};
use prism_engine::settings::ToolSetting;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

use crate::data::{Credit, Split, read_credits, read_named_images, read_stamps};
use crate::quad::{QUAD_REPORT_FILE, QuadReport};
use crate::tasks::{ALL_TASKS, Example, RemovalMask, Stamp, Task, degrade_for_eval, psnr, removals_for_eval, shaken_for_eval};

/// Side of the centre crop each held-out photo is evaluated on.
pub const EVAL_CROP: usize = 512;

/// Held-out photos shipped as samples (public domain / CC0).
const SAMPLES: [&str; 4] = ["astronaut", "coffee", "chelsea", "citrus-fruits"];

/// One held-out set the eval scores: a tool's own, or sharpen's on camera shake, which runs at
/// the tool's default only (a shake's size is nothing a user would type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EvalSet {
    Tool(Task),
    SharpenShaken,
}

impl EvalSet {
    fn all() -> impl Iterator<Item = EvalSet> {
        ALL_TASKS.into_iter().map(EvalSet::Tool).chain([EvalSet::SharpenShaken])
    }

    fn task(self) -> Task {
        match self {
            EvalSet::Tool(task) => task,
            EvalSet::SharpenShaken => Task::Sharpen,
        }
    }

    /// The folder under `data/eval` and the task name `peers.py` reports.
    fn folder(self) -> String {
        match self {
            EvalSet::Tool(task) => task.id().to_string(),
            EvalSet::SharpenShaken => "sharpen-shaken".to_string(),
        }
    }

    /// The held-out cases of one photo's crop, each with its name, from one seed.
    fn cases(self, name: &str, clean: &RgbImage, stamps: &[Stamp], seed: u64) -> Vec<(String, Example)> {
        let mut rng = StdRng::seed_from_u64(seed);
        match self {
            // Removal is scored on brush strokes and on objects: a pasted cut-out to take out.
            EvalSet::Tool(Task::Remove) => removals_for_eval(clean, stamps, seed)
                .into_iter()
                .map(|(kind, example)| match kind {
                    RemovalMask::Strokes => (name.to_string(), example),
                    RemovalMask::Object => (format!("{name}-object"), example),
                })
                .collect(),
            EvalSet::Tool(task) => vec![(name.to_string(), degrade_for_eval(task, clean, &mut rng))],
            EvalSet::SharpenShaken => vec![(name.to_string(), shaken_for_eval(clean, &mut rng))],
        }
    }
}

/// One method's mean scores on one tool's task, as `peers.py` reports them.
#[derive(Clone, Debug, Deserialize)]
pub struct Score {
    pub method: String,
    pub psnr: f64,
    pub ssim: f64,
    #[serde(default)]
    pub note: String,
    /// Removal only: gradient energy inside the mask over the clean photo's (1 = as sharp).
    #[serde(default)]
    pub sharpness: Option<f64>,
    /// Removal only: mean absolute error in a thin band just outside the mask (0 = untouched).
    #[serde(default)]
    pub edge_band: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TaskScores {
    pub task: String,
    pub metric_region: String,
    pub images: usize,
    pub scores: Vec<Score>,
}

pub fn run_eval(data_dir: &Path, assets: &Path, python: &str) -> Result<()> {
    let model = Model::load(assets)?;
    let mut backend = ReferenceBackend::new(model.clone());
    // The recipe's tools that the folder holds: a shipped folder may leave one out (colorize).
    let installed: Vec<Task> = ALL_TASKS
        .into_iter()
        .filter(|task| assets.join(ADAPTERS_DIR).join(format!("{}.prism-lora", task.id())).exists())
        .collect();
    if installed.is_empty() {
        bail!("{} holds none of the tools' adapters", assets.join(ADAPTERS_DIR).display());
    }
    for &task in &installed {
        let path = assets.join(ADAPTERS_DIR).join(format!("{}.prism-lora", task.id()));
        backend.install(&model.read_adapter(&path)?)?;
        let mut teacher = Adapter::read(&assets.join(ADAPTERS_DIR).join("float").join(format!("{}.prism-lora", task.id())))?;
        teacher.meta.name = format!("{}-float", task.id());
        backend.install(&teacher)?;
    }
    let photos = read_named_images(&data_dir.join("photos/heldout"))?;
    let stamps = read_stamps(&data_dir.join("stamps"))?;
    let out_dir = data_dir.join("eval");
    let (sets, skipped): (Vec<EvalSet>, Vec<EvalSet>) = EvalSet::all().partition(|set| installed.contains(&set.task()));
    for set in skipped {
        // peers.py scores every folder it finds: an earlier run's outputs of a tool not here go.
        eprintln!("eval: {} is not in {}; not scored", set.folder(), assets.display());
        let stale = out_dir.join(set.folder());
        if stale.exists() {
            std::fs::remove_dir_all(&stale)?;
        }
    }
    let bar = indicatif::ProgressBar::new((sets.len() + 1) as u64 * photos.len() as u64);
    let mut by_hand = BTreeMap::new();
    for set in sets {
        let task = set.task();
        let dir = out_dir.join(set.folder());
        std::fs::create_dir_all(&dir)?;
        let mut examples = Vec::new();
        for (i, (name, photo)) in photos.iter().enumerate() {
            let side_w = EVAL_CROP.min(photo.width) / 2 * 2;
            let side_h = EVAL_CROP.min(photo.height) / 2 * 2;
            let clean =
                photo.crop_clamped(((photo.width - side_w) / 2) as isize, ((photo.height - side_h) / 2) as isize, side_w, side_h);
            for (case, example) in set.cases(name, &clean, &stamps, 1000 + i as u64) {
                save(&dir.join(format!("{case}_clean.png")), &clean)?;
                save(&dir.join(format!("{case}_input.png")), &example.input)?;
                save_mask(&dir.join(format!("{case}_mask.png")), &example.mask)?;
                examples.push((case, example));
            }
        }
        // A tool that takes a setting runs as the user would set it, chosen over the held-out set
        // as the peer's parameters are; the tool's default (the estimated exposure, the default blur
        // size) is scored beside it. Sharpen on shakes runs at its default only.
        let setting = match task.setting().filter(|_| set != EvalSet::SharpenShaken) {
            Some(setting) => {
                let value = setting_by_hand(&mut backend, task, setting, &examples)?;
                by_hand.insert(task.id().to_string(), (setting, value));
                Some((setting, value))
            }
            None => None,
        };
        for (name, example) in &examples {
            let mask = (task == Task::Remove).then(|| Arc::new(example.mask.clone()));
            let image = Arc::new(example.input.clone());
            let mut runs = vec![
                ("prism", Mix::single(task.id()), Precision::Int8, setting),
                ("prism_float", Mix::single(format!("{}-float", task.id())), Precision::Float, setting),
            ];
            if setting.is_some() {
                runs.push(("prism_default", Mix::single(task.id()), Precision::Int8, None));
            }
            for (suffix, mix, precision, setting) in runs {
                let mut job = EditJob { mask: mask.clone(), mix, precision: Some(precision), ..plain_job(image.clone()) };
                apply_setting(&mut job, setting);
                let (result, _) = run_edit(&mut backend, &job, &mut |_, _| true)?;
                save(&dir.join(format!("{name}_{suffix}.png")), &result)?;
            }
            bar.inc(1);
        }
    }
    bar.finish();
    let results = out_dir.join("results.json");
    let status = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peers.py"))
        .arg(&out_dir)
        .arg(&results)
        .status()
        .with_context(|| format!("running {python} scripts/peers.py (pip install opencv-python-headless scikit-image)"))?;
    if !status.success() {
        bail!("scripts/peers.py failed");
    }
    let scores: Vec<TaskScores> = serde_json::from_str(&std::fs::read_to_string(&results)?)?;
    let gaps = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gaps.py"))
        .arg(&out_dir)
        .output()
        .with_context(|| format!("running {python} scripts/gaps.py"))?;
    if !gaps.status.success() {
        bail!("scripts/gaps.py failed: {}", String::from_utf8_lossy(&gaps.stderr));
    }
    let gaps = String::from_utf8_lossy(&gaps.stdout).trim().to_string();
    let latency = measure_latency(&mut backend)?;
    let credits = read_credits(data_dir)?;
    write_samples(data_dir, assets)?;
    std::fs::write(assets.join("NOTICE"), notice(&credits))?;
    let Some(quad) = QuadReport::find(data_dir, assets)? else {
        eprintln!(
            "{}: left as it is: the card also reports the QUAD run that made these adapters, and neither {} nor {} holds its report (`prism-adapters quad` writes one)",
            assets.join("MODEL_CARD.md").display(),
            assets.join(QUAD_REPORT_FILE).display(),
            crate::recipe::runs_dir(data_dir).join(QUAD_REPORT_FILE).display()
        );
        return Ok(());
    };
    let card = crate::model_card::model_card(data_dir, &model, &scores, &gaps, &latency, &credits, &by_hand, &quad)?;
    std::fs::write(assets.join("MODEL_CARD.md"), card)?;
    Ok(())
}

/// The values the eval tries by hand: exposures in stops (the held-out set is 2.74 stops under),
/// blur sizes in pixels (its blur is 2; the unsharp-mask peer tries 1, 2 and 3), noise levels in
/// 8-bit levels (its grain is 25; its JPEGs read 14).
pub(crate) fn setting_grid(setting: ToolSetting) -> &'static [f32] {
    match setting {
        ToolSetting::Exposure => &[2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5],
        ToolSetting::BlurSize | ToolSetting::DeblurSize => &[1.0, 1.5, 2.0, 2.5, 3.0],
        ToolSetting::NoiseLevel => &[10.0, 15.0, 20.0, 25.0, 30.0],
    }
}

/// A job on `image` at the default settings; the caller names the tool.
fn plain_job(image: Arc<RgbImage>) -> EditJob {
    EditJob {
        id: 0,
        image,
        mask: None,
        mix: Mix::none(),
        strength: 1.0,
        precision: Some(Precision::Int8),
        exposure: None,
        blur_size: None,
        noise_level: None,
        context: prism_engine::job::DEFAULT_CONTEXT,
        texture: prism_engine::job::DEFAULT_TEXTURE,
    }
}

/// Gives `job` the value of its tool's setting, if it takes one.
fn apply_setting(job: &mut EditJob, setting: Option<(ToolSetting, f32)>) {
    match setting {
        Some((ToolSetting::Exposure, stops)) => job.exposure = Some(stops),
        Some((ToolSetting::BlurSize | ToolSetting::DeblurSize, sigma)) => job.blur_size = Some(sigma),
        Some((ToolSetting::NoiseLevel, level)) => job.noise_level = Some(level),
        None => {}
    }
}

/// The value from `setting_grid` whose int8 edits score the best mean PSNR on `examples`.
fn setting_by_hand(
    backend: &mut ReferenceBackend,
    task: Task,
    setting: ToolSetting,
    examples: &[(String, Example)],
) -> Result<f32> {
    let grid = setting_grid(setting);
    let mut best = (f64::NEG_INFINITY, grid[0]);
    for &value in grid {
        let mut total = 0.0;
        for (_, example) in examples {
            let mut job = EditJob { mix: Mix::single(task.id()), ..plain_job(Arc::new(example.input.clone())) };
            apply_setting(&mut job, Some((setting, value)));
            total += psnr(&run_edit(backend, &job, &mut |_, _| true)?.0, &example.target, None);
        }
        let mean = total / examples.len() as f64;
        tracing::info!(task = task.id(), value, psnr = mean, "setting by hand");
        if mean > best.0 {
            best = (mean, value);
        }
    }
    Ok(best.1)
}

fn save(path: &Path, image: &RgbImage) -> Result<()> {
    let bytes: Vec<u8> = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    image::RgbImage::from_raw(image.width as u32, image.height as u32, bytes).context("image size")?.save(path)?;
    Ok(())
}

fn save_mask(path: &Path, mask: &Mask) -> Result<()> {
    let bytes: Vec<u8> = mask.data.iter().map(|v| if *v > 0.5 { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(mask.width as u32, mask.height as u32, bytes).context("mask size")?.save(path)?;
    Ok(())
}

/// Median time of a 512x512 global edit, int8 and float, plus the tool switch.
pub struct Latency {
    pub int8: Duration,
    pub float: Duration,
    pub switch: Duration,
}

fn measure_latency(backend: &mut ReferenceBackend) -> Result<Latency> {
    let image = Arc::new(crate::tasks::quantize8(&prism_engine::fixtures::synthetic_photo(512, 512, 4)));
    let mut time = |mix: &str, precision: Precision| -> Result<(Duration, Duration)> {
        let mut totals = Vec::new();
        let mut switches = Vec::new();
        for _ in 0..3 {
            let job = EditJob { mix: Mix::single(mix), precision: Some(precision), ..plain_job(image.clone()) };
            let start = Instant::now();
            let (_, stats) = run_edit(backend, &job, &mut |_, _| true)?;
            totals.push(start.elapsed());
            switches.push(stats.switch_time);
        }
        totals.sort();
        switches.sort();
        Ok((totals[1], switches[1]))
    };
    let (int8, switch) = time("denoise", Precision::Int8)?;
    let (float, _) = time("denoise-float", Precision::Float)?;
    Ok(Latency { int8, float, switch })
}

fn write_samples(data_dir: &Path, assets: &Path) -> Result<()> {
    let dir = assets.join("samples");
    std::fs::create_dir_all(&dir)?;
    for name in SAMPLES {
        let source = data_dir.join("photos/heldout").join(format!("{name}.png"));
        let image = image::open(&source).with_context(|| format!("reading {}", source.display()))?.to_rgb8();
        let (w, h) = image.dimensions();
        let f = (768.0 / w.max(h) as f32).min(1.0);
        let image =
            image::imageops::resize(&image, (w as f32 * f) as u32, (h as f32 * f) as u32, image::imageops::FilterType::Lanczos3);
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92).encode_image(&image)?;
        std::fs::write(dir.join(format!("{name}.jpg")), bytes)?;
    }
    Ok(())
}

fn notice(credits: &[Credit]) -> String {
    let mut out = String::from(
        "Prism's shipped model (assets/) was trained by prism-adapters on the photos below. The photos\n\
         themselves are not redistributed here except the samples in assets/samples/; the weights are\n\
         derived from them. Licences are those stated in each Debian package's copyright file or the\n\
         PyPI package's data README.\n\n",
    );
    for (title, split) in
        [("Training photos", Split::Train), ("Held-out photos (evaluation only, never trained on)", Split::Heldout)]
    {
        let _ = writeln!(out, "{title}\n{}", "-".repeat(title.len()));
        for c in credits.iter().filter(|c| c.split == split) {
            let _ = writeln!(out, "- {}: {} — {} ({})", c.id, c.author, c.licence, c.source);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Object cut-outs pasted onto training photos for object removal: Debian package\n\
         tuxpaint-stamps-default, Copyright 2002-2022 Bill Kendrick and the Tux Paint contributors, GPL-2.\n\n\
         Samples in assets/samples/: {} (held-out photos, public domain / CC0; credits above).",
        SAMPLES.join(", ")
    );
    out
}
