//! Joint training: the base and every tool's adapter trained together, each example through its
//! own tool's adapter. The base stages trained the base alone on a mixture of the tools, so its
//! features were never asked to be steerable by a small adapter; rank-4 adapters trained on it
//! afterwards stayed 0.4-2 dB under the shipped model on the tools that work at full resolution
//! (docs/model-v2.md). Here the base learns what its adapters can steer.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::{Tensor, Var};
use prism_engine::adapter::AdapterPrecision;
use prism_engine::hole_fill::HoleFill;
use prism_engine::unet::{FloatActivations, Unet, UnetConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::recipe::{
    AdapterLayout, base_path, float_adapter, init_lora, load_base, lora_set, model_from_vars, runs_dir, task_meta, teacher_path,
    var_pairs, warm_lora, weight_norm_vars, write_summary,
};
use crate::tasks::{Example, Task, degrade_with};
use crate::train::{Batch, Run, RunSettings, TrainingBatch, TrainingSet};

/// A batch split by tool: each part goes through its own tool's adapter, under that tool's
/// penalty, each example weighted by one over its doing-nothing loss (so every tool counts alike).
pub struct JointBatch {
    parts: Vec<(Task, Batch)>,
}

impl JointBatch {
    /// `count` examples of tools drawn from `tasks`.
    pub fn draw(set: &TrainingSet, tasks: &[Task], count: usize, size: usize, fill: HoleFill, rng: &mut StdRng) -> Result<Self> {
        let mut by_task: BTreeMap<Task, Vec<Example>> = BTreeMap::new();
        for _ in 0..count {
            let task = tasks[rng.random_range(0..tasks.len())];
            let example = degrade_with(task, set.sharpen_input, &set.random_crop(size, rng), &set.stamps, rng);
            by_task.entry(task).or_default().push(example);
        }
        Self::from_examples(by_task, fill)
    }

    /// A fixed batch (its own seed) with `per_task` examples of every tool in `tasks`.
    pub fn validation(set: &TrainingSet, tasks: &[Task], per_task: usize, size: usize, fill: HoleFill) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut by_task: BTreeMap<Task, Vec<Example>> = BTreeMap::new();
        for &task in tasks {
            for _ in 0..per_task {
                let example = degrade_with(task, set.sharpen_input, &set.random_crop(size, &mut rng), &set.stamps, &mut rng);
                by_task.entry(task).or_default().push(example);
            }
        }
        Self::from_examples(by_task, fill)
    }

    fn from_examples(by_task: BTreeMap<Task, Vec<Example>>, fill: HoleFill) -> Result<Self> {
        let parts = by_task
            .into_iter()
            .map(|(task, examples)| Ok((task, Batch::new(&examples, fill)?.with_penalty(task.penalty()).relative()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { parts })
    }

    /// The tools in the batch and their parts.
    pub fn parts(&self) -> &[(Task, Batch)] {
        &self.parts
    }

    fn examples(&self) -> Result<usize> {
        self.parts.iter().map(|(_, b)| Ok(b.input.dim(0)?)).sum()
    }

    /// The mean over all examples of `loss_of(task, part)`, each part's mean counted by its size.
    pub fn mean_loss(&self, mut loss_of: impl FnMut(Task, &Batch) -> Result<Tensor>) -> Result<Tensor> {
        let total = self.examples()? as f64;
        let mut sum: Option<Tensor> = None;
        for (task, part) in &self.parts {
            let share = part.input.dim(0)? as f64 / total;
            let loss = (loss_of(*task, part)? * share)?;
            sum = Some(match sum {
                Some(s) => (s + loss)?,
                None => loss,
            });
        }
        sum.context("a joint batch with no examples")
    }
}

impl TrainingBatch for JointBatch {
    fn identity_loss(&self) -> Result<f64> {
        let total = self.examples()? as f64;
        self.parts.iter().map(|(_, b)| Ok(b.identity_loss()? * b.input.dim(0)? as f64 / total)).sum()
    }
}

/// A finished (or stopped) joint run: the base's weight-normalized variables first, then each
/// tool's LoRA pairs in the order of its tools.
pub struct JointRun {
    pub run: Run,
    pub validation: JointBatch,
    tasks: Vec<Task>,
    config: UnetConfig,
    base_vars: usize,
    per_task: usize,
}

impl JointRun {
    /// The base as the run left it.
    pub fn base(&self) -> Result<Unet> {
        model_from_vars(&self.config, &self.run.vars[..self.base_vars])
    }

    /// `task`'s LoRA pairs as the run left them.
    pub fn pairs(&self, task: Task) -> Result<Vec<(Tensor, Tensor)>> {
        let index =
            self.tasks.iter().position(|&t| t == task).with_context(|| format!("{} is not one of the run's tools", task.id()))?;
        Ok(adapter_pairs(&self.run.vars, self.base_vars, self.per_task, index))
    }
}

fn adapter_pairs(vars: &[Var], base_vars: usize, per_task: usize, index: usize) -> Vec<(Tensor, Tensor)> {
    var_pairs(&vars[base_vars + index * per_task..base_vars + (index + 1) * per_task])
}

/// The joint run behind [`train_joint`], on any photos and base: resumes `checkpoint`, else
/// starts from `base` and, per tool, the float adapter in `init_dir` (or nothing).
pub fn joint_run(
    set: &TrainingSet,
    base: &Unet,
    tasks: &[Task],
    settings: &RunSettings,
    layout: AdapterLayout,
    checkpoint: &Path,
    init_dir: Option<&Path>,
) -> Result<JointRun> {
    if tasks.is_empty() {
        bail!("joint training needs at least one tool");
    }
    let config = base.config().clone();
    let mut init = weight_norm_vars(base)?;
    let base_vars = init.len();
    for &task in tasks {
        init.extend(match init_dir {
            Some(dir) => warm_lora(base, &dir.join(format!("{}.prism-lora", task.id())), layout, settings.seed)?,
            None => init_lora(base, layout.rank, settings.seed, layout.placement)?,
        });
    }
    let per_task = (init.len() - base_vars) / tasks.len();
    let ids: Vec<&str> = tasks.iter().map(|t| t.id()).collect();
    let info = serde_json::json!({
        "kind": "joint", "config": config, "parametrization": "weight-norm", "tasks": ids,
        "rank": layout.rank, "placement": layout.placement,
    });
    let mut run = Run::open(checkpoint, init, settings, info)?;
    let fill = config.hole_fill;
    let validation = JointBatch::validation(set, tasks, 4, settings.crop, fill)?;
    let mut next_batch = |rng: &mut StdRng| JointBatch::draw(set, tasks, settings.batch, settings.crop, fill, rng);
    run.train("joint", settings, &validation, &mut next_batch, &mut |vars, batch| {
        let model = model_from_vars(&config, &vars[..base_vars])?;
        batch.mean_loss(|task, part| {
            let index = tasks.iter().position(|&t| t == task).expect("a batch holds only the run's tools");
            let lora = lora_set(&model, &adapter_pairs(vars, base_vars, per_task, index), 1.0, layout.placement)?;
            part.loss(&model.forward(&part.input, Some(&lora), &mut FloatActivations)?)
        })
    })?;
    Ok(JointRun { run, validation, tasks: tasks.to_vec(), config, base_vars, per_task })
}

/// Trains the base in `data_dir/runs` together with one adapter per tool in `tasks` (`layout`
/// each; from the float adapters in `init_dir` where given, else from nothing), resuming
/// `runs/joint.ckpt`. Writes the base over `runs/base.safetensors` and each tool's teacher.
pub fn train_joint(
    data_dir: &Path,
    tasks: &[Task],
    settings: &RunSettings,
    layout: AdapterLayout,
    fresh: bool,
    init_dir: Option<&Path>,
) -> Result<()> {
    let set = TrainingSet::load(data_dir)?;
    let checkpoint = runs_dir(data_dir).join("joint.ckpt");
    if fresh {
        let _ = std::fs::remove_file(&checkpoint);
    }
    let joint = joint_run(&set, &load_base(data_dir)?, tasks, settings, layout, &checkpoint, init_dir)?;
    let model = joint.base()?;
    model.to_file()?.write(&base_path(data_dir))?;
    let base_hash = model.content_hash()?;
    for &task in tasks {
        let meta = task_meta(task, &base_hash, AdapterPrecision::Float, "")?;
        let adapter = float_adapter(&model, &joint.pairs(task)?, meta, layout.placement)?;
        let path = teacher_path(data_dir, task);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        adapter.write(&path)?;
    }
    write_summary(data_dir, "joint", &joint.run, &joint.validation)
}
