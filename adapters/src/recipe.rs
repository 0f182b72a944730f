//! The shipped recipe: model size, base training on every degradation, one LoRA adapter per tool
//! with the base frozen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor, Var};
use prism_engine::adapter::{Adapter, AdapterMeta, AdapterPrecision, LoraTensors};
use prism_engine::conv::kernel_to_oihw;
use prism_engine::graph::{ConvSpec, LoraPlacement};
use prism_engine::learned_doubling::DoublingFilters;
use prism_engine::tensorfile::TensorFile;
use prism_engine::unet::{FloatActivations, LoraLayer, LoraSet, Unet, UnetConfig};
use prism_engine::upscale_prepass::Upsampling;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::tasks::{SharpenInput, Task};
use crate::train::{Batch, Penalty, Run, RunSettings, TrainingBatch, TrainingSet, Weighting};

/// The model's max LoRA rank and `train-adapter`'s default. The shipped tools are rank 4 on every
/// conv (`--rank 4`): on model v2 each doubling of the rank bought upscale about 0.1 dB for 7-10%
/// of a CPU forward (docs/model-v2.md); the look tool's basis uses the whole 32.
pub const RANK: usize = 32;

/// The shipped model's layout (model v2: parameters, FLOPs and edit time in the model card): two
/// coarse levels where parameters are cheap in FLOPs, so a 512-px crop's coarsest convolutions
/// see all of it.
pub fn shipped_config() -> Result<UnetConfig> {
    Ok(UnetConfig::new(vec![32, 48, 96, 192, 384], vec![1, 1, 1, 2, 3], RANK)?)
}

/// Where runs keep their checkpoints and results.
pub fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

pub fn base_path(data_dir: &Path) -> PathBuf {
    runs_dir(data_dir).join("base.safetensors")
}

pub fn teacher_path(data_dir: &Path, task: Task) -> PathBuf {
    runs_dir(data_dir).join("teachers").join(format!("{}.prism-lora", task.id()))
}

pub fn load_base(data_dir: &Path) -> Result<Unet> {
    let path = base_path(data_dir);
    let file = TensorFile::read(&path).with_context(|| format!("{}: run `prism-adapters train-base` first", path.display()))?;
    Ok(Unet::from_file(&file, &Device::Cpu)?)
}

/// The base as a run of `train-base` left it in its checkpoint (`<data>/runs/base.ckpt`), e.g.
/// when a session ends mid-stage: the weight-normalized parameters folded into plain convs.
pub fn base_from_checkpoint(data_dir: &Path) -> Result<Unet> {
    let path = runs_dir(data_dir).join("base.ckpt");
    let file = TensorFile::read(&path).with_context(|| format!("{}: no base run to export", path.display()))?;
    let info: serde_json::Value = serde_json::from_str(file.meta("info").unwrap_or("null"))?;
    let config: UnetConfig = serde_json::from_value(info["config"].clone()).context("the checkpoint names no model config")?;
    let mut params = Vec::new();
    while let Some(raw) = file.tensors.get(&format!("param.{}", params.len())) {
        params.push(Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?);
    }
    if params.len() != 3 * config.convs().len() {
        bail!(
            "{} holds {} parameters, not a base run's {} (V, g, bias per conv)",
            path.display(),
            params.len(),
            3 * config.convs().len()
        );
    }
    model_from_tensors(&config, &params)
}

/// Makes the f16 export at `export` the run's base. A fresh clone has only the export, so the
/// run goes on from exactly what a clone sees, and the teachers made for the base it was exported
/// from are stamped with the export's hash (f16 moves each weight by at most 2^-11 of itself);
/// teachers of any other base are left as they are. Returns how many were stamped.
pub fn adopt_export(data_dir: &Path, export: &Path) -> Result<usize> {
    let exported_from = load_base(data_dir)?.content_hash()?;
    let exported = Unet::from_file(&TensorFile::read(export)?, &Device::Cpu)?;
    let hash = exported.content_hash()?;
    exported.to_file()?.write(&base_path(data_dir))?;
    let mut stamped = 0;
    for task in crate::tasks::ALL_TASKS {
        let path = teacher_path(data_dir, task);
        if !path.exists() {
            continue;
        }
        let mut teacher = Adapter::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if teacher.meta.base_model == exported_from {
            teacher.meta.base_model = hash.clone();
            teacher.write(&path)?;
            stamped += 1;
        }
    }
    Ok(stamped)
}

/// Grows `<data>/runs/base.safetensors` and every float teacher in `<data>/runs/teachers` to
/// `config` (see [`crate::grow`]) into `<data>/runs/grown`, which it returns.
pub fn grow_runs(data_dir: &Path, config: &UnetConfig, seed: u64) -> Result<PathBuf> {
    let small = load_base(data_dir)?;
    let grown = crate::grow::grow_model(&small, config, seed)?;
    let out = runs_dir(data_dir).join("grown");
    std::fs::create_dir_all(out.join("teachers"))?;
    grown.to_file()?.write(&out.join("base.safetensors"))?;
    let grown_hash = grown.content_hash()?;
    for task in crate::tasks::ALL_TASKS {
        let path = teacher_path(data_dir, task);
        if !path.exists() {
            continue;
        }
        let teacher = Adapter::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut wide = crate::grow::grow_adapter(&teacher, small.config(), config)?;
        wide.meta.base_model = grown_hash.clone();
        wide.write(&out.join("teachers").join(format!("{}.prism-lora", task.id())))?;
    }
    Ok(out)
}

/// Trains the base on a mixture of every tool's degradations (a general image prior), from
/// random weights or, with `init`, from an earlier float base (a longer run continued with a new
/// schedule).
pub fn train_base(
    data_dir: &Path,
    config: &UnetConfig,
    settings: &RunSettings,
    tasks: &[Task],
    weighting: Weighting,
    fresh: bool,
    init: Option<&Path>,
) -> Result<Unet> {
    let set = TrainingSet::load(data_dir)?;
    let checkpoint = runs_dir(data_dir).join("base.ckpt");
    if fresh {
        let _ = std::fs::remove_file(&checkpoint);
    }
    let start = match init {
        Some(path) => {
            let file = TensorFile::read(path).with_context(|| format!("reading the starting base {}", path.display()))?;
            let model = Unet::from_file(&file, &Device::Cpu)?;
            // Only the shape must match: a later stage may show the hidden pixels differently.
            let shape_only = UnetConfig { hole_fill: config.hole_fill, ..model.config().clone() };
            if shape_only != *config {
                bail!("{} is a {:?} model, not the {:?} being trained", path.display(), model.config(), config);
            }
            Some(Unet::new(config, &model.tensors()?)?)
        }
        None => None,
    };
    let (run, validation) = base_run(&set, config, settings, tasks, weighting, &checkpoint, start.as_ref())?;
    let model = model_from_vars(config, &run.vars)?;
    model.to_file()?.write(&base_path(data_dir))?;
    write_summary(data_dir, "base", &run, &validation)?;
    Ok(model)
}

/// The base-model run behind [`train_base`], on any photos and config; resumes `checkpoint`,
/// else starts from `start` (or random weights).
///
/// Weights are trained weight-normalized (`W = g * V / |V|` per output channel, Salimans &
/// Kingma 2016) and folded back to plain convolutions for inference. Without it, Adam grew the
/// gains of the deep, normalization-free layers until activations reached 1e6 and the decoder's
/// ReLUs died; with it each layer's gain moves only as fast as its one scale `g` learns.
pub fn base_run(
    set: &TrainingSet,
    config: &UnetConfig,
    settings: &RunSettings,
    tasks: &[Task],
    weighting: Weighting,
    checkpoint: &Path,
    start: Option<&Unet>,
) -> Result<(Run, Batch)> {
    let random;
    let start = match start {
        Some(model) => model,
        None => {
            random = Unet::new(config, &Unet::random_tensors(config, settings.seed, &Device::Cpu)?)?;
            &random
        }
    };
    let init = weight_norm_vars(start)?;
    let info = serde_json::json!({ "kind": "base", "config": config, "parametrization": "weight-norm", "weighting": weighting });
    let mut run = Run::open(checkpoint, init, settings, info)?;
    let (batch, crop) = (settings.batch, settings.crop);
    let fill = config.hole_fill;
    let validation = weighting.apply(set.validation_batch(tasks, 4, crop, fill)?)?;
    let mut next_batch = |rng: &mut _| weighting.apply(set.batch(tasks, batch, crop, fill, rng)?);
    run.train("base", settings, &validation, &mut next_batch, &mut |vars, batch| {
        let model = model_from_vars(config, vars)?;
        batch.loss(&model.forward(&batch.input, None, &mut FloatActivations)?)
    })?;
    Ok((run, validation))
}

/// The weight-normalized variables that stand for `model` (`V`, `g`, bias per conv, in conv
/// order; [`model_from_vars`] folds them back).
pub fn weight_norm_vars(model: &Unet) -> Result<Vec<Tensor>> {
    let mut vars = Vec::new();
    for (_, weight, bias) in model.layers() {
        vars.push(weight.clone());
        vars.push(column_norms(weight)?);
        vars.push(bias.clone());
    }
    Ok(vars)
}

/// `|V|` of every output channel (column) of a kernel-layout weight `[rows, cout]`.
fn column_norms(weight: &Tensor) -> Result<Tensor> {
    Ok(weight.sqr()?.sum(0)?.sqrt()?)
}

/// The model a weight-normalized base run stands for: `(V, g, bias)` triplets in conv order.
pub fn model_from_vars(config: &UnetConfig, vars: &[Var]) -> Result<Unet> {
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    model_from_tensors(config, &tensors)
}

pub fn model_from_tensors(config: &UnetConfig, tensors: &[Tensor]) -> Result<Unet> {
    let mut layers = Vec::with_capacity(tensors.len() / 3);
    for t in tensors.chunks_exact(3) {
        let (direction, gain, bias) = (&t[0], &t[1], &t[2]);
        let scale = (gain / column_norms(direction)?.clamp(1e-12, f64::MAX)?)?;
        layers.push((direction.broadcast_mul(&scale)?, bias.clone()));
    }
    Ok(Unet::from_kernel_tensors(config, layers)?)
}

/// What a training run reports to the model card.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub steps: usize,
    pub samples: usize,
    pub seconds: f64,
    pub samples_per_second: f64,
    pub first_loss: f64,
    pub last_loss: f64,
    /// Loss on the fixed validation batch: doing nothing, then at the end.
    pub identity_validation: f64,
    pub last_validation: f64,
}

pub fn write_summary(data_dir: &Path, name: &str, run: &Run, validation: &impl TrainingBatch) -> Result<()> {
    let summary = RunSummary {
        name: name.into(),
        steps: run.step,
        samples: run.samples,
        seconds: run.seconds,
        samples_per_second: run.samples as f64 / run.seconds.max(1e-9),
        first_loss: run.losses.first().map_or(f64::NAN, |l| l.1),
        last_loss: run.losses.last().map_or(f64::NAN, |l| l.1),
        identity_validation: validation.identity_loss()?,
        last_validation: run.validation.last().map_or(f64::NAN, |l| l.1),
    };
    let dir = runs_dir(data_dir).join("summaries");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(&summary)?)?;
    Ok(())
}

pub fn read_summaries(data_dir: &Path) -> Result<BTreeMap<String, RunSummary>> {
    let dir = runs_dir(data_dir).join("summaries");
    let mut out = BTreeMap::new();
    if dir.exists() {
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            let summary: RunSummary = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            out.insert(summary.name.clone(), summary);
        }
    }
    Ok(out)
}

/// The rank and the convs of an adapter being trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterLayout {
    pub rank: usize,
    pub placement: LoraPlacement,
}

/// How an adapter's training examples are charged, what sharpen's show the model, and what they
/// ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterExamples {
    pub penalty: Penalty,
    pub sharpen_input: SharpenInput,
    /// A model directory whose float base and float teacher of the task (`adapters/float/`) make
    /// the targets instead of the clean photo: distillation, e.g. from the shipped model to a new
    /// base. Validation still scores against the clean photo.
    pub distil_from: Option<PathBuf>,
}

/// A model's tool, run in float to make training targets.
struct TargetMaker {
    base: Unet,
    lora: LoraSet,
}

impl TargetMaker {
    fn load(model_dir: &Path, task: Task) -> Result<Self> {
        // A local tool's input shows the hole as the student's config says, which need not be
        // what the teacher was trained to see.
        anyhow::ensure!(
            task.region() == prism_engine::adapter::Region::Global,
            "distilling is for global tools, not {}",
            task.id()
        );
        let base = prism_engine::model::Model::load(model_dir)?.float()?.clone();
        let path = model_dir.join("adapters").join("float").join(format!("{}.prism-lora", task.id()));
        let teacher = Adapter::read(&path).with_context(|| format!("the teacher to distil from, {}", path.display()))?;
        let lora = lora_set(&base, &adapter_pairs(&base, &teacher)?, teacher.meta.alpha, placement_of(&base, &teacher)?)?;
        Ok(Self { base, lora })
    }

    /// `batch` asking for what this tool makes of its inputs (a global tool's inputs are the same
    /// for every base).
    fn retarget(&self, mut batch: Batch) -> Result<Batch> {
        let seen = batch.input.narrow(candle_core::D::Minus1, 0, 3)?;
        let residual = self.base.forward(&batch.input, Some(&self.lora), &mut FloatActivations)?;
        batch.target = (seen + residual)?.clamp(-1f32, 1f32)?.detach();
        Ok(batch)
    }
}

/// The convs an adapter with `placement` carries LoRA on, in the model's order: the order of
/// its LoRA variables and pairs everywhere below.
pub fn placed_convs(model: &Unet, placement: LoraPlacement) -> impl Iterator<Item = &ConvSpec> {
    model.convs().filter(move |spec| placement.covers(spec))
}

/// The placement an adapter file was trained with: its layers must be exactly one placement's.
pub fn placement_of(model: &Unet, adapter: &Adapter) -> Result<LoraPlacement> {
    let present: Vec<&ConvSpec> = model.convs().filter(|spec| adapter.layers.contains_key(&spec.name)).collect();
    let min_level = present
        .iter()
        .map(|spec| spec.level)
        .min()
        .with_context(|| format!("adapter '{}' has no LoRA layer of this model", adapter.meta.name))?;
    let placement = LoraPlacement { min_level };
    if placed_convs(model, placement).count() != present.len() {
        bail!(
            "adapter '{}' covers some convs of levels {min_level} and coarser but not all: not a placement this code trains",
            adapter.meta.name
        );
    }
    Ok(placement)
}

/// Fresh LoRA variables: A small random, B zero (the adapter starts as the identity).
pub fn init_lora(model: &Unet, rank: usize, seed: u64, placement: LoraPlacement) -> Result<Vec<Tensor>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for spec in placed_convs(model, placement) {
        let rows = spec.k * spec.k * spec.cin;
        let normal = Normal::new(0f32, (1.0 / rows as f32).sqrt())?;
        let a: Vec<f32> = (0..rows * rank).map(|_| normal.sample(&mut rng)).collect();
        out.push(Tensor::from_vec(a, (rows, rank), &Device::Cpu)?);
        out.push(Tensor::zeros((rank, spec.cout), candle_core::DType::F32, &Device::Cpu)?);
    }
    Ok(out)
}

/// LoRA variables (as [`init_lora`] makes them) taken from a float adapter file of rank at most
/// `rank`. A lower-rank adapter is padded with fresh A columns and zero B rows, so training starts
/// from exactly its output and grows it into the larger rank.
pub fn warm_lora(model: &Unet, path: &Path, layout: AdapterLayout, seed: u64) -> Result<Vec<Tensor>> {
    let AdapterLayout { rank, placement } = layout;
    let adapter = Adapter::read(path).with_context(|| format!("reading the starting adapter {}", path.display()))?;
    if adapter.meta.precision != AdapterPrecision::Float || adapter.meta.rank > rank {
        bail!("{} must be a float adapter of rank {rank} or less to start from", path.display());
    }
    let found = placement_of(model, &adapter)?;
    if found != placement {
        bail!(
            "{} carries LoRA from level {} down, not from level {}: start from an adapter of the same placement",
            path.display(),
            found.min_level,
            placement.min_level
        );
    }
    let fresh = init_lora(model, rank, seed, placement)?;
    let mut out = Vec::with_capacity(fresh.len());
    for ((a, b), fresh) in adapter_pairs(model, &adapter)?.into_iter().zip(fresh.chunks_exact(2)) {
        let kept = a.dim(1)?;
        if kept == rank {
            out.extend([a, b]);
            continue;
        }
        let (cout, extra) = (b.dim(1)?, rank - kept);
        out.push(Tensor::cat(&[&a, &fresh[0].narrow(1, kept, extra)?], 1)?);
        out.push(Tensor::cat(&[&b, &Tensor::zeros((extra, cout), candle_core::DType::F32, &Device::Cpu)?], 0)?);
    }
    Ok(out)
}

/// LoRA side paths from kernel-layout `(A, B)` pairs, one per conv `placement` covers, at `alpha`.
pub fn lora_set(model: &Unet, pairs: &[(Tensor, Tensor)], alpha: f32, placement: LoraPlacement) -> Result<LoraSet> {
    let mut set = LoraSet::default();
    for (spec, (a, b)) in placed_convs(model, placement).zip(pairs) {
        let rank = a.dim(1)?;
        let rank_scale = Tensor::full(alpha, rank, &Device::Cpu)?;
        set.layers.insert(spec.name.clone(), LoraLayer { a: a.clone(), b: b.clone(), rank_scale });
    }
    Ok(set)
}

pub fn var_pairs(vars: &[Var]) -> Vec<(Tensor, Tensor)> {
    vars.chunks_exact(2).map(|p| (p[0].as_tensor().clone(), p[1].as_tensor().clone())).collect()
}

/// The metadata every shipped adapter of `task` carries (an error only when the compiled-in
/// doubling filters, whose fit an upscaler names, do not load).
pub fn task_meta(task: Task, base_hash: &str, precision: AdapterPrecision, profile: &str) -> Result<AdapterMeta> {
    let doubling_filters = match task.upsampling() {
        Upsampling::Learned => Some(DoublingFilters::shipped()?.id()),
        Upsampling::CatmullRom | Upsampling::BlockMatched => None,
    };
    Ok(AdapterMeta {
        name: task.id().into(),
        title: task.title().into(),
        task: task.id().into(),
        description: task.description().into(),
        example_prompts: task.example_prompts().iter().map(|s| s.to_string()).collect(),
        rank: RANK,
        alpha: 1.0,
        base_model: base_hash.into(),
        profile: profile.into(),
        created_by: format!("prism-adapters {}", env!("CARGO_PKG_VERSION")),
        metrics: serde_json::json!({}),
        region: task.region(),
        scale: task.scale(),
        upsampling: task.upsampling(),
        doubling_filters,
        setting: task.setting(),
        fits: task.fits(),
        precision,
    })
}

/// Rewrites every shipped adapter's (and float teacher's) words — title, description, example
/// prompts — and the photos it fits from [`Task`], keeping everything else; returns the files
/// rewritten.
pub fn describe_shipped(assets: &Path) -> Result<Vec<PathBuf>> {
    let dirs = [assets.join(prism_engine::model::ADAPTERS_DIR), assets.join(prism_engine::model::ADAPTERS_DIR).join("float")];
    let mut written = Vec::new();
    for path in dirs.iter().flat_map(|d| prism_engine::model::adapter_files_in(d)) {
        let mut adapter = Adapter::read(&path)?;
        let Some(task) = Task::parse(&adapter.meta.task) else { continue };
        adapter.meta.title = task.title().into();
        adapter.meta.description = task.description().into();
        adapter.meta.example_prompts = task.example_prompts().iter().map(|s| s.to_string()).collect();
        adapter.meta.fits = task.fits();
        adapter.write(&path)?;
        written.push(path);
    }
    let look = prism_text::look::LOOKS_DIR;
    let basis = assets.join(look).join(prism_text::look::BASIS_FILE);
    if basis.exists() {
        let mut adapter = Adapter::read(&basis)?;
        let meta = crate::look_tool::look_meta(&adapter.meta.base_model);
        adapter.meta = AdapterMeta { rank: adapter.meta.rank, ..meta };
        adapter.write(&basis)?;
        written.push(basis);
    }
    Ok(written)
}

/// Kernel-layout pairs (one per conv `placement` covers) as a float adapter file's tensors (the
/// file's rank is the pairs' rank).
pub fn float_adapter(
    model: &Unet,
    pairs: &[(Tensor, Tensor)],
    mut meta: AdapterMeta,
    placement: LoraPlacement,
) -> Result<Adapter> {
    if let Some((a, _)) = pairs.first() {
        meta.rank = a.dim(1)?;
    }
    let mut layers = BTreeMap::new();
    for (spec, (a, b)) in placed_convs(model, placement).zip(pairs) {
        let a_file = kernel_to_oihw(a, spec.k)?;
        let b_file = b.t()?.contiguous()?;
        layers.insert(
            spec.name.clone(),
            LoraTensors {
                a_shape: a_file.dims().to_vec(),
                b_shape: b_file.dims().to_vec(),
                a: a_file.flatten_all()?.to_vec1()?,
                b: b_file.flatten_all()?.to_vec1()?,
                codes: None,
            },
        );
    }
    Ok(Adapter { meta, layers })
}

/// Kernel-layout `(A, B)` pairs of a float adapter, one per conv its placement covers, in conv
/// order.
pub fn adapter_pairs(model: &Unet, adapter: &Adapter) -> Result<Vec<(Tensor, Tensor)>> {
    placed_convs(model, placement_of(model, adapter)?)
        .map(|spec| {
            let t = adapter.layers.get(&spec.name).with_context(|| format!("adapter lacks layer '{}'", spec.name))?;
            Ok(t.kernel_tensors(&Device::Cpu)?)
        })
        .collect()
}

/// Trains the float teacher of `task` (a rank-`rank` LoRA) with the base frozen, charging errors
/// by `penalty`, from a fresh LoRA or, with `init_dir`, from the float adapter
/// `<init_dir>/<task>.prism-lora` (an earlier teacher, possibly of a lower rank).
pub fn train_adapter(
    data_dir: &Path,
    task: Task,
    settings: &RunSettings,
    layout: AdapterLayout,
    examples: AdapterExamples,
    fresh: bool,
    init_dir: Option<&Path>,
) -> Result<Adapter> {
    let AdapterExamples { penalty, sharpen_input, distil_from } = examples;
    let target_maker = distil_from.map(|dir| TargetMaker::load(&dir, task)).transpose()?;
    let mut set = TrainingSet::load(data_dir)?;
    set.sharpen_input = sharpen_input;
    let base = load_base(data_dir)?;
    let base_hash = base.content_hash()?;
    let checkpoint = runs_dir(data_dir).join(format!("adapter-{}.ckpt", task.id()));
    if fresh {
        let _ = std::fs::remove_file(&checkpoint);
    }
    let info = serde_json::json!({
        "kind": "adapter", "task": task.id(), "base_model": base_hash, "penalty": penalty,
        "placement": layout.placement, "sharpen_input": sharpen_input,
        "distil_from": target_maker.as_ref().map(|t| t.base.content_hash()).transpose()?,
    });
    let init = match init_dir {
        Some(dir) => warm_lora(&base, &dir.join(format!("{}.prism-lora", task.id())), layout, settings.seed)?,
        None => init_lora(&base, layout.rank, settings.seed, layout.placement)?,
    };
    let mut run = Run::open(&checkpoint, init, settings, info)?;
    let (batch, crop) = (settings.batch, settings.crop);
    let fill = base.config().hole_fill;
    let validation = set.validation_batch(&[task], 16, crop, fill)?.with_penalty(penalty);
    let mut next_batch = |rng: &mut _| {
        let examples = set.batch(&[task], batch, crop, fill, rng)?.with_penalty(penalty);
        match &target_maker {
            Some(maker) => maker.retarget(examples),
            None => Ok(examples),
        }
    };
    run.train(task.id(), settings, &validation, &mut next_batch, &mut |vars, batch| {
        let lora = lora_set(&base, &var_pairs(vars), 1.0, layout.placement)?;
        batch.loss(&base.forward(&batch.input, Some(&lora), &mut FloatActivations)?)
    })?;
    let meta = task_meta(task, &base_hash, AdapterPrecision::Float, "")?;
    let adapter = float_adapter(&base, &var_pairs(&run.vars), meta, layout.placement)?;
    let path = teacher_path(data_dir, task);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    adapter.write(&path)?;
    write_summary(data_dir, &format!("adapter-{}", task.id()), &run, &validation)?;
    Ok(adapter)
}

#[cfg(test)]
mod tests {
    use prism_engine::adapter::Region;
    use prism_engine::fixtures::{random_adapter, random_model, tiny_config};

    use super::*;

    #[test]
    fn an_adopted_export_is_the_run_base_and_only_its_own_teachers_follow_it() -> Result<()> {
        let data = tempfile::tempdir()?;
        let base = random_model(&tiny_config(), 1)?;
        let other = random_model(&tiny_config(), 2)?;
        std::fs::create_dir_all(runs_dir(data.path()).join("teachers"))?;
        base.to_file()?.write(&base_path(data.path()))?;
        random_adapter(&base, "upscale", 2, 3, Region::Global)?.write(&teacher_path(data.path(), Task::Upscale))?;
        random_adapter(&other, "denoise", 2, 4, Region::Global)?.write(&teacher_path(data.path(), Task::Denoise))?;
        let export = data.path().join("base.f16.safetensors");
        base.to_half_file()?.write(&export)?;

        assert_eq!(adopt_export(data.path(), &export)?, 1);
        let adopted = load_base(data.path())?.content_hash()?;
        assert_ne!(adopted, base.content_hash()?, "f16 rounding changes the hash");
        assert_eq!(adopted, Unet::from_file(&TensorFile::read(&export)?, &Device::Cpu)?.content_hash()?);
        assert_eq!(Adapter::read(&teacher_path(data.path(), Task::Upscale))?.meta.base_model, adopted);
        assert_eq!(Adapter::read(&teacher_path(data.path(), Task::Denoise))?.meta.base_model, other.content_hash()?);
        Ok(())
    }

    #[test]
    fn distilled_targets_are_what_the_teachers_tool_makes_and_only_global_tools_distil() -> Result<()> {
        use prism_engine::calibrate::build_profile;
        use prism_engine::fixtures::{photo_input, synthetic_photo};
        use prism_engine::imageio::Mask;

        let dir = tempfile::tempdir()?;
        let base = random_model(&tiny_config(), 5)?;
        let samples = vec![photo_input(&synthetic_photo(32, 32, 1))?];
        prism_engine::model::Model::save(dir.path(), &base, &build_profile(&base, &samples, &[], 16, "ptq-pooled")?)?;
        let teacher = random_adapter(&base, "sharpen", 4, 6, Region::Global)?;
        std::fs::create_dir_all(dir.path().join("adapters/float"))?;
        teacher.write(&dir.path().join("adapters/float/sharpen.prism-lora"))?;

        let photo = synthetic_photo(32, 32, 2);
        let full = Mask::filled(32, 32, 1.0);
        let example = crate::tasks::Example {
            input: photo.clone(),
            mask: full.clone(),
            hide_masked: false,
            target: synthetic_photo(32, 32, 3),
            loss_mask: full,
        };
        let batch = Batch::new(&[example], prism_engine::hole_fill::HoleFill::Blank)?;
        let maker = TargetMaker::load(dir.path(), Task::Sharpen)?;
        let retargeted = maker.retarget(batch.clone())?;
        // The teacher run on the base as the maker loaded it from the saved model.
        let lora = lora_set(&maker.base, &adapter_pairs(&maker.base, &teacher)?, teacher.meta.alpha, LoraPlacement::EVERY_CONV)?;
        let residual = maker.base.forward(&batch.input, Some(&lora), &mut FloatActivations)?;
        let made = (batch.input.narrow(candle_core::D::Minus1, 0, 3)? + residual)?.clamp(-1f32, 1f32)?;
        let gap = |a: &Tensor, b: &Tensor| -> Result<f32> { Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?) };
        assert!(gap(&retargeted.target, &made)? < 1e-6, "the target is the teacher's output, as the engine clamps it");
        assert!(gap(&batch.target, &made)? > 0.01, "the clean photo was the target before");

        std::fs::copy(dir.path().join("adapters/float/sharpen.prism-lora"), dir.path().join("adapters/float/remove.prism-lora"))?;
        let refused = TargetMaker::load(dir.path(), Task::Remove).err().context("a local tool distilled")?;
        assert!(refused.to_string().contains("global tools"), "{refused}");
        Ok(())
    }
}
