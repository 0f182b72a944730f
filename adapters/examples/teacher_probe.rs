//! Held-out PSNR of one float teacher before QUAD and eval, on the inputs the last `eval` wrote to
//! `data/eval/TASK`. Tools that take a setting are scored at each value given (`default`, or
//! anything that is not a number: the tool's default, i.e. the estimated exposure, noise level or
//! blur size, or the shipped sharpen's 1.5 px).
//! The base is the model in `assets/`, the one in `--model DIR` (e.g. a model-v2 round's QUAD
//! output, `data/v2-model`), or a trained float base `--base FILE` before any QUAD (e.g. a joint
//! run's `data/runs/base.safetensors`; it is put in a scratch model folder with a profile from
//! synthetic photos, which the float forward does not use). The teacher must have been trained on
//! that base.
//! `cargo run --release -p prism-adapters --example teacher_probe -- [--model DIR | --base FILE] TASK ADAPTER [SETTING ...]`
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use prism_adapters::tasks::{Task, psnr};
use prism_engine::adapter::Adapter;
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::calibrate::build_profile;
use prism_engine::fixtures::{photo_input, synthetic_photo};
use prism_engine::imageio::load_picture;
use prism_engine::job::{EditJob, run_edit};
use prism_engine::model::Model;
use prism_engine::settings::ToolSetting;
use prism_engine::tensorfile::TensorFile;
use prism_engine::unet::Unet;

/// A model folder in the system's temporary folder holding the float base in `file`.
fn scratch_model_dir(file: &Path) -> anyhow::Result<PathBuf> {
    let base = Unet::from_file(&TensorFile::read(file)?, &candle_core::Device::Cpu)?;
    let samples = (0..2).map(|i| photo_input(&synthetic_photo(64, 64, i))).collect::<Result<Vec<_>, _>>()?;
    let profile = build_profile(&base, &samples, &[], 16, "ptq-pooled")?;
    let dir = std::env::temp_dir().join(format!("teacher-probe-{}", base.content_hash()?));
    Model::save(&dir, &base, &profile)?;
    Ok(dir)
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let model_dir = match args.first().map(String::as_str) {
        Some("--model") => {
            let dir = PathBuf::from(args.get(1).context("--model DIR")?);
            args.drain(..2);
            dir
        }
        Some("--base") => {
            let file = PathBuf::from(args.get(1).context("--base FILE")?);
            args.drain(..2);
            scratch_model_dir(&file)?
        }
        _ => PathBuf::from("assets"),
    };
    let (task, adapter) = (args.first().context("TASK")?, PathBuf::from(args.get(1).context("ADAPTER")?));
    let settings: Vec<Option<f32>> = if args.len() > 2 { args[2..].iter().map(|s| s.parse().ok()).collect() } else { vec![None] };
    let model = Model::load(&model_dir)?;
    let mut backend = ReferenceBackend::new(model.clone());
    let mut teacher = Adapter::read(&adapter)?;
    teacher.meta.name = task.clone();
    // Teachers written before a tool took its setting do not name it; the others keep theirs (the
    // shipped sharpen unsharp-masks, model v2's deconvolves).
    if teacher.meta.setting.is_none() {
        teacher.meta.setting = Task::parse(task).context("unknown task")?.setting();
    }
    let takes = teacher.meta.setting;
    backend.install(&teacher)?;
    let dir = Path::new("data/eval").join(task);
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix("_clean.png").map(String::from))
        .collect();
    names.sort();
    for setting in settings {
        let mut total = 0.0;
        for name in &names {
            let clean = load_picture(&dir.join(format!("{name}_clean.png")), 64_000_000)?.rgb;
            let input = load_picture(&dir.join(format!("{name}_input.png")), 64_000_000)?.rgb;
            let mask = (task == "remove")
                .then(|| -> anyhow::Result<_> {
                    Ok(Arc::new(prism_engine::imageio::load_mask(&dir.join(format!("{name}_mask.png")), 64_000_000)?))
                })
                .transpose()?;
            let job = EditJob {
                id: 0,
                image: Arc::new(input),
                mask: mask.clone(),
                mix: prism_engine::mix::Mix::single(task.clone()),
                strength: 1.0,
                precision: Some(Precision::Float),
                exposure: setting.filter(|_| takes == Some(ToolSetting::Exposure)),
                blur_size: setting.filter(|_| matches!(takes, Some(ToolSetting::BlurSize | ToolSetting::DeblurSize))),
                noise_level: setting.filter(|_| takes == Some(ToolSetting::NoiseLevel)),
                context: prism_engine::job::DEFAULT_CONTEXT,
                texture: prism_engine::job::DEFAULT_TEXTURE,
            };
            total += psnr(&run_edit(&mut backend, &job, &mut |_, _| true)?.0, &clean, mask.as_deref());
        }
        println!("{task} setting {setting:?}: {:.2} dB", total / names.len() as f64);
    }
    Ok(())
}
