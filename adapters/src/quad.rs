//! QUAD: one quantization profile for every adapter.
//!
//! 1. Float teachers come from `train-adapter`.
//! 2. Sensitivity: each teacher is quantized with its own post-training settings; the divergence
//!    of its quantized output from its float output says how fragile it is. The most sensitive
//!    adapter is the anchor and its settings become the shared LoRA grids, unless the adapters
//!    are about equally sensitive, when grids pooled over all of them are used.
//! 3. Distillation: every adapter is fine-tuned (LoRA weights only) as a fake-quantized student
//!    on the int8 base under the shared profile: loss = |student - teacher| + task loss.
//! 4. Export: the base (float and int8), the profile, the int8 adapters and the float teachers.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use prism_engine::adapter::{Adapter, AdapterPrecision, ResidentAdapter, bind_mix, pooled_lora_quantizers};
use prism_engine::calibrate::calibrate_activations;
use prism_engine::hole_fill::HoleFill;
use prism_engine::job::add_residual;
use prism_engine::model::{ADAPTERS_DIR, Model};
use prism_engine::quant::{Affine, LoraQuant, Profile, QuantSim};
use prism_engine::unet::{ActivationHook, FloatActivations, Unet};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::recipe::{
    adapter_pairs, float_adapter, load_base, lora_set, placed_convs, placement_of, runs_dir, task_meta, teacher_path, var_pairs,
};
use crate::tasks::{ALL_TASKS, Example, Task, as_model_sees, degrade, degrade_for_eval, upscale_input};
use crate::train::{Batch, Run, RunSettings, TrainingSet};

/// Room above the calibrated activation ranges: held-out photos reach past what calibration saw.
const ACTIVATION_HEADROOM: f32 = 1.5;
/// Adapters whose sensitivities lie within this factor of each other count as equally sensitive.
const EQUAL_SENSITIVITY: f64 = 2.0;
/// Side of the held-out crops the QUAD table is measured on.
pub const TABLE_CROP: usize = 256;

/// The file, in the model folder QUAD wrote the adapters into (and in the runs folder), that keeps
/// its report: the model card is written from it.
pub const QUAD_REPORT_FILE: &str = "quad.json";

/// What `quad` measured, for the model card.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuadReport {
    pub anchor: String,
    /// "anchor" or "pooled".
    pub mode: String,
    pub reason: String,
    pub rows: Vec<QuadRow>,
    pub distill_steps: usize,
    pub seconds: f64,
}

/// PSNR (dB) of quantized against float output for one adapter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuadRow {
    pub task: String,
    /// Mean squared output divergence under its own PTQ grids (calibration crops).
    pub sensitivity: f64,
    /// (a) its own per-adapter PTQ profile.
    pub own_ptq_db: f64,
    /// (b) the shared profile, plain PTQ.
    pub shared_ptq_db: f64,
    /// (c) QUAD: distilled onto the shared profile.
    pub quad_db: f64,
    /// (c) with int8 activations.
    pub quad_w8a8_db: f64,
}

/// Activations fake-quantized with a straight-through gradient (QAT).
struct QuantSimTraining<'a> {
    profile: &'a Profile,
}

impl ActivationHook for QuantSimTraining<'_> {
    fn visit(&mut self, point: &str, x: Tensor) -> prism_engine::Result<Tensor> {
        // The engine's own QuantSim gives the forward value (and its error for a missing scale).
        let q = QuantSim { profile: self.profile }.visit(point, x.clone())?;
        Ok((&x + (q - &x)?.detach())?)
    }
}

/// Affine int8 fake-quant with a straight-through gradient.
fn fake_affine(x: &Tensor, q: &Affine) -> Result<Tensor> {
    let z = q.zero_point as f64;
    let codes = ((x / q.scale as f64)?.round()? + z)?.clamp(-128f32, 127f32)?;
    let values = ((codes - z)? * q.scale as f64)?;
    Ok((x + (values - x)?.detach())?)
}

/// Fixed examples of `task` from training crops (calibration) or held-out photos (the table).
fn training_examples(set: &TrainingSet, task: Task, count: usize, seed: u64) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|_| degrade(task, &set.random_crop(128, &mut rng), &set.stamps, &mut rng)).collect()
}

pub fn heldout_examples(data_dir: &Path, task: Task, crop: usize) -> Result<Vec<Example>> {
    let photos = crate::data::read_named_images(&data_dir.join("photos/heldout"))?;
    let mut out = Vec::new();
    for (i, (_, photo)) in photos.iter().enumerate() {
        let side = crop.min(photo.width).min(photo.height) / 8 * 8;
        let x0 = (photo.width - side) / 2;
        let y0 = (photo.height - side) / 2;
        let clean = photo.crop_clamped(x0 as isize, y0 as isize, side, side);
        let mut rng = StdRng::seed_from_u64(1000 + i as u64);
        let mut ex = as_model_sees(task, degrade_for_eval(task, &clean, &mut rng));
        if task == Task::Upscale {
            // The table compares model outputs at the size the model runs at.
            ex.input = upscale_input(&clean);
        }
        out.push(ex);
    }
    Ok(out)
}

fn inputs_of(examples: &[Example], hole_fill: HoleFill) -> Result<Vec<Tensor>> {
    examples.iter().map(|e| Ok(prism_engine::job::model_input(&e.input, &e.mask, e.hide_masked.then_some(hole_fill))?)).collect()
}

/// PSNR of the quantized model's output images against the float model's, over `inputs`.
fn agreement(model: &Model, teacher: &Adapter, quantized: &Adapter, profile: &Profile, inputs: &[Tensor]) -> Result<(f64, f64)> {
    let float_side = ResidentAdapter::new(teacher, None, &Device::Cpu)?;
    let quant_side = ResidentAdapter::new(quantized, Some(profile), &Device::Cpu)?;
    let float_set = bind_mix(&[(&float_side, 1.0)], 1.0, false)?;
    let quant_set = bind_mix(&[(&quant_side, 1.0)], 1.0, true)?;
    let (mut sum, mut count) = (0f64, 0usize);
    for input in inputs {
        let f = add_residual(input, &model.float()?.forward(input, Some(&float_set), &mut FloatActivations)?)?;
        let q = add_residual(input, &model.quantized()?.forward(input, Some(&quant_set), &mut QuantSim { profile })?)?;
        for (a, b) in f.data.iter().zip(&q.data) {
            sum += ((a - b) as f64).powi(2);
        }
        count += f.data.len();
    }
    let mse = sum / count.max(1) as f64;
    Ok((10.0 * (1.0 / mse.max(1e-12)).log10(), mse))
}

fn with_lora(profile: &Profile, lora: BTreeMap<String, LoraQuant>, method: &str) -> Result<Profile> {
    Ok(Profile::new(&profile.base_model, profile.activation_bits, profile.activations.clone(), lora, method)?)
}

fn with_bits(profile: &Profile, bits: u32) -> Result<Profile> {
    let factor = ((1i64 << (profile.activation_bits - 1)) - 1) as f32 / ((1i64 << (bits - 1)) - 1) as f32;
    let activations = profile.activations.iter().map(|(k, s)| (k.clone(), s * factor)).collect();
    Ok(Profile::new(&profile.base_model, bits, activations, profile.lora.clone(), &profile.method)?)
}

/// How the shared LoRA grids are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridChoice {
    /// The paper's rule: the anchor's grids unless the adapters are about equally sensitive.
    Auto,
    /// Always the anchor's grids.
    Anchor,
    /// Always grids covering every adapter.
    Pooled,
}

/// Runs QUAD on the teachers in `data_dir` and writes the shipped model into `assets`.
pub fn quad(data_dir: &Path, assets: &Path, settings: &RunSettings, grids: GridChoice) -> Result<QuadReport> {
    let started = std::time::Instant::now();
    let set = TrainingSet::load(data_dir)?;
    let base = load_base(data_dir)?;
    let hash = base.content_hash()?;
    let fill = base.config().hole_fill;
    let mut teachers = BTreeMap::new();
    for task in ALL_TASKS {
        let path = teacher_path(data_dir, task);
        let mut teacher =
            Adapter::read(&path).with_context(|| format!("run `prism-adapters train-adapter --task {}`", task.id()))?;
        // The setting is the tool's: a teacher trained before its tool took one does not name it.
        teacher.meta.setting = task.setting();
        teacher.check_compatible(base.config(), &hash, None).context("the teacher was trained on another base model")?;
        teachers.insert(task, teacher);
    }

    eprintln!("calibrating activations");
    let calibration: BTreeMap<Task, Vec<Example>> =
        ALL_TASKS.iter().map(|&t| (t, training_examples(&set, t, 6, 77 + t as u64))).collect();
    let all_inputs: Vec<Tensor> = calibration.values().map(|e| inputs_of(e, fill)).collect::<Result<Vec<_>>>()?.concat();
    let teacher_refs: Vec<&Adapter> = teachers.values().collect();
    let activations: BTreeMap<String, f32> = calibrate_activations(&base, &all_inputs, &teacher_refs, 16)?
        .into_iter()
        .map(|(k, s)| (k, s * ACTIVATION_HEADROOM))
        .collect();
    let pooled = pooled_lora_quantizers(&teacher_refs);
    let calibrated = Profile::new(&hash, 16, activations, pooled.clone(), "ptq-pooled")?;
    let mut model = Model::in_memory(assets, &base, calibrated.clone())?;

    eprintln!("measuring sensitivity");
    let mut own_profiles = BTreeMap::new();
    let mut sensitivity = BTreeMap::new();
    for (&task, teacher) in &teachers {
        let own = with_lora(&calibrated, pooled_lora_quantizers(&[teacher]), &format!("ptq-own:{}", task.id()))?;
        let (_, mse) = agreement(&model, teacher, teacher, &own, &inputs_of(&calibration[&task], fill)?)?;
        sensitivity.insert(task, mse);
        own_profiles.insert(task, own);
    }
    let (&anchor, &most) = sensitivity.iter().max_by(|a, b| a.1.total_cmp(b.1)).context("no adapters")?;
    let least = sensitivity.values().cloned().fold(f64::INFINITY, f64::min);
    let ratio = most / least.max(1e-18);
    let pooled_wanted = match grids {
        GridChoice::Auto => ratio <= EQUAL_SENSITIVITY,
        GridChoice::Anchor => false,
        GridChoice::Pooled => true,
    };
    let (mode, reason, shared_lora) = if pooled_wanted && grids == GridChoice::Pooled {
        (
            "pooled",
            format!(
                "grids pooled over all adapters, chosen by --grids pooled ('{}' is the most sensitive, {ratio:.1}x the least; its own grids clip the others' tensors)",
                anchor.id()
            ),
            pooled.clone(),
        )
    } else if pooled_wanted {
        (
            "pooled",
            format!(
                "sensitivities lie within {:.2}x of each other (<= {EQUAL_SENSITIVITY}x): grids pooled over all adapters",
                most / least
            ),
            pooled.clone(),
        )
    } else {
        (
            "anchor",
            format!(
                "'{}' is {:.1}x more sensitive than the least sensitive adapter: its own grids are shared",
                anchor.id(),
                most / least
            ),
            own_profiles[&anchor].lora.clone(),
        )
    };
    let mut shared = with_lora(&calibrated, shared_lora, &format!("quad-{mode}:{}", anchor.id()))?;
    // Convs no adapter touches still need a grid in the profile.
    for spec in base.convs() {
        shared
            .lora
            .entry(spec.name.clone())
            .or_insert(LoraQuant { a: Affine::covering(-0.5, 0.5), b: Affine::covering(-0.05, 0.05) });
    }
    let shared = with_lora(&shared, shared.lora.clone(), &shared.method.clone())?;
    model.profile = shared.clone();
    eprintln!("shared profile {} ({mode}): {reason}", shared.id);

    let mut rows = Vec::new();
    let assets_adapters = assets.join(ADAPTERS_DIR);
    std::fs::create_dir_all(assets_adapters.join("float"))?;
    let mut students = BTreeMap::new();
    for (&task, teacher) in &teachers {
        let student = distill(data_dir, &set, &model, task, teacher, settings)?;
        students.insert(task, student);
    }
    for (&task, teacher) in &teachers {
        let table_inputs = inputs_of(&heldout_examples(data_dir, task, TABLE_CROP)?, fill)?;
        let (own_ptq_db, _) = agreement(&model, teacher, teacher, &own_profiles[&task], &table_inputs)?;
        let (shared_ptq_db, _) = agreement(&model, teacher, teacher, &shared, &table_inputs)?;
        let student = &students[&task];
        let (quad_db, _) = agreement(&model, teacher, &student.quantize(&shared)?, &shared, &table_inputs)?;
        let w8a8 = with_bits(&shared, 8)?;
        let (quad_w8a8_db, _) = agreement(&model, teacher, &student.quantize(&w8a8)?, &w8a8, &table_inputs)?;
        eprintln!(
            "{:9} own PTQ {own_ptq_db:.2} dB, shared PTQ {shared_ptq_db:.2} dB, QUAD {quad_db:.2} dB (W8A8 {quad_w8a8_db:.2} dB)",
            task.id()
        );
        rows.push(QuadRow {
            task: task.id().into(),
            sensitivity: sensitivity[&task],
            own_ptq_db,
            shared_ptq_db,
            quad_db,
            quad_w8a8_db,
        });
    }

    Model::save(assets, &base, &shared)?;
    for (&task, teacher) in &teachers {
        let row = rows.iter().find(|r| r.task == task.id()).context("row")?;
        let mut int8 = students[&task].quantize(&shared)?;
        int8.meta.metrics = serde_json::json!({
            "quantized_vs_float_psnr_db": row.quad_db,
            "shared_ptq_vs_float_psnr_db": row.shared_ptq_db,
        });
        int8.write(&assets_adapters.join(format!("{}.prism-lora", task.id())))?;
        teacher.write(&assets_adapters.join("float").join(format!("{}.prism-lora", task.id())))?;
    }
    let report = QuadReport {
        anchor: anchor.id().into(),
        mode: mode.into(),
        reason,
        rows,
        distill_steps: settings.steps,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(runs_dir(data_dir).join(QUAD_REPORT_FILE), &json)?;
    // Beside the adapters it describes, so the card can be written wherever the model goes.
    std::fs::write(assets.join(QUAD_REPORT_FILE), &json)?;
    Ok(report)
}

impl QuadReport {
    /// The report of the QUAD run that made `assets`' adapters: in the model folder, else in the
    /// runs folder of `data_dir`; None when neither has one (a fresh clone of a model shipped
    /// before the report went with it).
    pub fn find(data_dir: &Path, assets: &Path) -> Result<Option<Self>> {
        for path in [assets.join(QUAD_REPORT_FILE), runs_dir(data_dir).join(QUAD_REPORT_FILE)] {
            if path.exists() {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                return Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?));
            }
        }
        Ok(None)
    }
}

/// Fine-tunes `teacher`'s LoRA weights as a fake-quantized student on the int8 base.
fn distill(
    data_dir: &Path,
    set: &TrainingSet,
    model: &Model,
    task: Task,
    teacher: &Adapter,
    settings: &RunSettings,
) -> Result<Adapter> {
    let profile = &model.profile;
    let base = model.float()?;
    let placement = placement_of(base, teacher)?;
    let teacher_pairs = adapter_pairs(base, teacher)?;
    let teacher_set = lora_set(base, &teacher_pairs, teacher.meta.alpha, placement)?;
    let grids: Vec<LoraQuant> = placed_convs(base, placement)
        .map(|s| profile.lora.get(&s.name).copied().context("profile lacks a LoRA grid"))
        .collect::<Result<_>>()?;
    let init: Vec<Tensor> = teacher_pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
    let checkpoint = runs_dir(data_dir).join(format!("quad-{}-{}.ckpt", task.id(), profile.id));
    let info = serde_json::json!({ "kind": "quad", "task": task.id(), "profile": profile.id });
    let mut run = Run::open(&checkpoint, init, settings, info)?;
    let (batch, crop) = (settings.batch, settings.crop);
    let quantized: &Unet = model.quantized()?;
    let fill = base.config().hole_fill;
    let validation = set.validation_batch(&[task], 8, crop, fill)?.with_penalty(task.penalty());
    run.train(
        &format!("quad {}", task.id()),
        settings,
        &validation,
        &mut |rng| Ok(set.batch(&[task], batch, crop, fill, rng)?.with_penalty(task.penalty())),
        &mut |vars, batch: &Batch| {
            let teacher_out = base.forward(&batch.input, Some(&teacher_set), &mut FloatActivations)?.detach();
            let mut pairs = Vec::with_capacity(grids.len());
            for ((a, b), grid) in var_pairs(vars).iter().zip(&grids) {
                pairs.push((fake_affine(a, &grid.a)?, fake_affine(b, &grid.b)?));
            }
            let student_set = lora_set(base, &pairs, teacher.meta.alpha, placement)?;
            let student_out = quantized.forward(&batch.input, Some(&student_set), &mut QuantSimTraining { profile })?;
            let distill = (&student_out - &teacher_out)?.abs()?.mean_all()?;
            Ok((distill + batch.loss(&student_out)?)?)
        },
    )?;
    let meta = task_meta(task, &model.hash, AdapterPrecision::Float, "")?;
    float_adapter(base, &var_pairs(&run.vars), meta, placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_found_beside_the_model_first_and_its_absence_is_no_error() {
        let (data, assets) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert!(QuadReport::find(data.path(), assets.path()).unwrap().is_none(), "a fresh clone has none");
        let report = |mode: &str| QuadReport {
            anchor: "denoise".into(),
            mode: mode.into(),
            reason: String::new(),
            rows: Vec::new(),
            distill_steps: 1,
            seconds: 1.0,
        };
        std::fs::create_dir_all(runs_dir(data.path())).unwrap();
        let write =
            |path: std::path::PathBuf, mode: &str| std::fs::write(path, serde_json::to_string(&report(mode)).unwrap()).unwrap();
        write(runs_dir(data.path()).join(QUAD_REPORT_FILE), "anchor");
        assert_eq!(QuadReport::find(data.path(), assets.path()).unwrap().unwrap().mode, "anchor", "the runs folder's");
        write(assets.path().join(QUAD_REPORT_FILE), "pooled");
        assert_eq!(QuadReport::find(data.path(), assets.path()).unwrap().unwrap().mode, "pooled", "the model's own first");
        std::fs::write(assets.path().join(QUAD_REPORT_FILE), "{").unwrap();
        assert!(QuadReport::find(data.path(), assets.path()).unwrap_err().to_string().contains("damaged"));
    }
}
