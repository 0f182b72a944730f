//! The training loop shared by the base model, the adapters and QUAD's students: random crops,
//! masked L1 (or squared) loss through the real model graph, Adam, checkpoints that resume exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{D, DType, Device, Tensor, Var};
use indicatif::{ProgressBar, ProgressStyle};
use prism_engine::hole_fill::HoleFill;
use prism_engine::imageio::{Mask, RgbImage};
use prism_engine::job::model_input;
use prism_engine::tensorfile::{RawTensor, TensorFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tasks::{Example, SharpenInput, Stamp, Task, degrade_with};

/// Clean training photos and object cut-outs, in memory.
pub struct TrainingSet {
    pub photos: Vec<RgbImage>,
    pub stamps: Vec<Stamp>,
    /// What sharpen examples show the model.
    pub sharpen_input: SharpenInput,
}

impl TrainingSet {
    /// Loads `DATA/photos/train/*.png` and `DATA/stamps/*.png` (written by `data fetch`).
    pub fn load(data_dir: &Path) -> Result<Self> {
        let photos = crate::data::read_images(&data_dir.join("photos/train"))?;
        if photos.is_empty() {
            bail!("no training photos in {}: run `prism-adapters data fetch` first", data_dir.join("photos/train").display());
        }
        let stamps = crate::data::read_stamps(&data_dir.join("stamps"))?;
        Ok(Self { photos, stamps, sharpen_input: SharpenInput::default() })
    }

    /// A random `size x size` crop at a random scale (0.5-1x), flipped or turned at random.
    pub fn random_crop(&self, size: usize, rng: &mut StdRng) -> RgbImage {
        let areas: Vec<f64> = self.photos.iter().map(|p| (p.width * p.height) as f64).collect();
        let total: f64 = areas.iter().sum();
        let mut pick = rng.random_range(0.0..total);
        let mut index = 0;
        for (i, a) in areas.iter().enumerate() {
            if pick < *a {
                index = i;
                break;
            }
            pick -= a;
        }
        let photo = &self.photos[index];
        let largest = photo.width.min(photo.height);
        let window = ((size as f32 / rng.random_range(0.5..1.0)) as usize).min(largest).max(size.min(largest));
        let x0 = rng.random_range(0..=photo.width - window) as isize;
        let y0 = rng.random_range(0..=photo.height - window) as isize;
        let crop = photo.crop_clamped(x0, y0, window, window).resized(size, size);
        let (flip, transpose) = (rng.random_bool(0.5), rng.random_bool(0.5));
        let mut out = RgbImage::new(size, size);
        for y in 0..size {
            for x in 0..size {
                let (sx, sy) = if transpose { (y, x) } else { (x, y) };
                let sx = if flip { size - 1 - sx } else { sx };
                let (d, s) = ((y * size + x) * 3, (sy * size + sx) * 3);
                out.data[d..d + 3].copy_from_slice(&crop.data[s..s + 3]);
            }
        }
        out
    }

    /// A fixed batch (its own seed) with `per_task` examples of every task in `tasks`.
    pub fn validation_batch(&self, tasks: &[Task], per_task: usize, size: usize, hole_fill: HoleFill) -> Result<Batch> {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut examples = Vec::new();
        for &task in tasks {
            for _ in 0..per_task {
                examples.push(degrade_with(task, self.sharpen_input, &self.random_crop(size, &mut rng), &self.stamps, &mut rng));
            }
        }
        Batch::new(&examples, hole_fill)
    }

    /// `count` examples of tasks drawn from `tasks`.
    pub fn batch(&self, tasks: &[Task], count: usize, size: usize, hole_fill: HoleFill, rng: &mut StdRng) -> Result<Batch> {
        let examples: Vec<Example> = (0..count)
            .map(|_| {
                let task = tasks[rng.random_range(0..tasks.len())];
                degrade_with(task, self.sharpen_input, &self.random_crop(size, rng), &self.stamps, rng)
            })
            .collect();
        Batch::new(&examples, hole_fill)
    }
}

/// Examples stacked as model tensors (cheap to clone: candle tensors share their storage).
#[derive(Clone)]
pub struct Batch {
    /// `[N,H,W,4]` exactly as the engine feeds the model.
    pub input: Tensor,
    /// `[N,H,W,3]` in [-1, 1].
    pub target: Tensor,
    /// `[N,H,W,1]`: where the loss counts.
    pub weight: Tensor,
    /// `[N]`: how much each example counts (all 1 unless [`Batch::relative`]).
    pub example_weight: Tensor,
    pub penalty: Penalty,
    /// `[N,D]`: what each example is conditioned on (a prompt's embedding), for conditioned tools.
    pub condition: Option<Tensor>,
}

/// How a pixel's error is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Penalty {
    /// `|error|`: sharp restorations; the median of what the input allows.
    Absolute,
    /// `error²`: the mean of what the input allows, which is what PSNR rewards when the input
    /// cannot tell (which colour, how bright, what was behind the object).
    Squared,
    /// `|error|` plus `|error's gradient|` (horizontal and vertical neighbour differences, counted
    /// where either neighbour is charged): a fill must match the target's edges and texture, not
    /// only its mean, and a step at the hole's border is charged too. The blurry mean of what
    /// could be behind an object scores badly here.
    Textured,
}

/// How the examples of a batch count in its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Every example the same: the loss is plain masked L1.
    Uniform,
    /// Each example by one over its doing-nothing loss ([`Batch::relative`]).
    Relative,
}

impl Weighting {
    pub fn apply(self, batch: Batch) -> Result<Batch> {
        match self {
            Weighting::Uniform => Ok(batch),
            Weighting::Relative => batch.relative(),
        }
    }
}

/// Doing-nothing L1 below which [`Batch::relative`] stops raising an example's weight, so a
/// nearly clean crop (a flat sky barely blurred) cannot dominate a batch.
const RELATIVE_FLOOR: f64 = 0.02;

impl Batch {
    /// The examples as the model sees them, hidden pixels shown as `hole_fill`.
    pub fn new(examples: &[Example], hole_fill: HoleFill) -> Result<Self> {
        let device = &Device::Cpu;
        let mut inputs = Vec::with_capacity(examples.len());
        let mut targets = Vec::with_capacity(examples.len());
        let mut weights = Vec::with_capacity(examples.len());
        for ex in examples {
            let (w, h) = (ex.target.width, ex.target.height);
            inputs.push(model_input(&ex.input, &ex.mask, ex.hide_masked.then_some(hole_fill))?);
            let target: Vec<f32> = ex.target.data.iter().map(|v| v * 2.0 - 1.0).collect();
            targets.push(Tensor::from_vec(target, (1, h, w, 3), device)?);
            weights.push(Tensor::from_vec(binary(&ex.loss_mask), (1, h, w, 1), device)?);
        }
        let example_weight = Tensor::ones(examples.len(), DType::F32, device)?;
        Ok(Self {
            input: Tensor::cat(&inputs, 0)?,
            target: Tensor::cat(&targets, 0)?,
            weight: Tensor::cat(&weights, 0)?,
            example_weight,
            penalty: Penalty::Absolute,
            condition: None,
        })
    }

    pub fn with_condition(mut self, condition: Tensor) -> Self {
        self.condition = Some(condition);
        self
    }

    pub fn with_penalty(mut self, penalty: Penalty) -> Self {
        self.penalty = penalty;
        self
    }

    /// Weights every example by one over its doing-nothing loss (under the batch's penalty; the
    /// floor is meant for L1), so the loss reads as the
    /// fraction of each degradation left undone (doing nothing scores about 1). On a mixture of
    /// tools this keeps the large errors of removal and low light from drowning the small ones
    /// of sharpening or JPEG cleanup.
    pub fn relative(mut self) -> Result<Self> {
        let zero = Tensor::zeros(self.target.shape(), DType::F32, &Device::Cpu)?;
        let identity = self.per_example_loss(&zero)?.clamp(RELATIVE_FLOOR, f64::MAX)?;
        self.example_weight = identity.recip()?;
        Ok(self)
    }

    /// The penalty of `input + residual` against the target where the weight is 1, averaged per
    /// example first (so a small removal mask counts as much as a whole image), then over the
    /// examples by their weights.
    pub fn loss(&self, residual: &Tensor) -> Result<Tensor> {
        Ok((self.per_example_loss(residual)? * &self.example_weight)?.mean_all()?)
    }

    /// `[N]`: each example's mean penalty where its weight is 1.
    fn per_example_loss(&self, residual: &Tensor) -> Result<Tensor> {
        let n = self.input.dim(0)?;
        let seen = self.input.narrow(D::Minus1, 0, 3)?;
        let error = ((seen + residual)? - &self.target)?;
        let charged = match self.penalty {
            Penalty::Absolute | Penalty::Textured => error.abs()?,
            Penalty::Squared => error.sqr()?,
        };
        let mut per_example = charged.broadcast_mul(&self.weight)?.reshape((n, ()))?.sum(1)?;
        if self.penalty == Penalty::Textured {
            for axis in [1, 2] {
                let len = error.dim(axis)?;
                if len < 2 {
                    continue;
                }
                let step = (error.narrow(axis, 1, len - 1)? - error.narrow(axis, 0, len - 1)?)?.abs()?;
                let weight = self.weight.narrow(axis, 1, len - 1)?.maximum(&self.weight.narrow(axis, 0, len - 1)?)?;
                per_example = (per_example + step.broadcast_mul(&weight)?.reshape((n, ()))?.sum(1)?)?;
            }
        }
        let counts = (self.weight.reshape((n, ()))?.sum(1)? * 3.0)?.clamp(1.0, f64::MAX)?;
        Ok((per_example / counts)?)
    }

    /// The loss of the unchanged input (a model that does nothing).
    pub fn identity_loss(&self) -> Result<f64> {
        let zero = Tensor::zeros(self.target.shape(), DType::F32, &Device::Cpu)?;
        Ok(self.loss(&zero)?.to_scalar::<f32>()? as f64)
    }
}

/// What the training loop needs of a batch besides the loss its caller computes: the loss of
/// doing nothing, which a run's validation is compared with.
pub trait TrainingBatch {
    fn identity_loss(&self) -> Result<f64>;
}

impl TrainingBatch for Batch {
    fn identity_loss(&self) -> Result<f64> {
        Batch::identity_loss(self)
    }
}

fn binary(mask: &Mask) -> Vec<f32> {
    mask.data.iter().map(|&m| if m > 0.5 { 1.0 } else { 0.0 }).collect()
}

/// Adam with decoupled weight decay. Written here rather than using candle-nn's `AdamW` because
/// a resumable run must save and restore the moment estimates, which `AdamW` keeps private.
pub struct Adam {
    pub lr: f64,
    pub weight_decay: f64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    pub fn new(vars: &[Var], lr: f64, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.zeros_like();
        Ok(Self {
            lr,
            weight_decay,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            step: 0,
        })
    }

    pub fn step(&mut self, vars: &[Var], grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.step += 1;
        let bias1 = 1.0 - Self::BETA1.powi(self.step as i32);
        let bias2 = 1.0 - Self::BETA2.powi(self.step as i32);
        for (i, var) in vars.iter().enumerate() {
            let Some(grad) = grads.get(var) else { continue };
            // The gradient's own graph is not needed: keep the moments free of it.
            let grad = &grad.detach();
            self.m[i] = ((&self.m[i] * Self::BETA1)? + (grad * (1.0 - Self::BETA1))?)?;
            self.v[i] = ((&self.v[i] * Self::BETA2)? + (grad.sqr()? * (1.0 - Self::BETA2))?)?;
            let update = ((&self.m[i] / bias1)? / ((&self.v[i] / bias2)?.sqrt()? + Self::EPS)?)?;
            let decayed = (var.as_tensor() * (1.0 - self.lr * self.weight_decay))?;
            var.set(&(decayed - (update * self.lr)?)?)?;
        }
        Ok(())
    }
}

/// A validation loss this many times the loss of doing nothing means the run has diverged.
const DIVERGED_OVER_IDENTITY: f64 = 20.0;

/// Cosine decay from `peak` to 5% of it after a short warm-up.
pub fn learning_rate(peak: f64, step: usize, total: usize) -> f64 {
    let warmup = (total / 20).clamp(1, 200);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    peak * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos()))
}

/// Settings of one training run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub steps: usize,
    pub batch: usize,
    pub crop: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
    /// Stop (with a checkpoint) after this many steps in this invocation; the run resumes later.
    pub stop_after: Option<usize>,
}

/// A run's trainable variables with its optimizer and history; saved as one checkpoint file.
pub struct Run {
    pub path: PathBuf,
    pub vars: Vec<Var>,
    pub adam: Adam,
    pub step: usize,
    pub seconds: f64,
    pub samples: usize,
    /// `(step, mean loss over the last interval)`.
    pub losses: Vec<(usize, f64)>,
    /// `(step, loss on the fixed validation batch)`.
    pub validation: Vec<(usize, f64)>,
    /// Anything the caller needs to rebuild the run (config, task, rank...).
    pub info: serde_json::Value,
}

impl Run {
    /// Resumes the checkpoint at `path` when it exists, else starts from `init`.
    pub fn open(path: &Path, init: Vec<Tensor>, settings: &RunSettings, info: serde_json::Value) -> Result<Self> {
        if path.exists() {
            return Self::resume(path, init.len(), settings);
        }
        let vars = init.iter().map(Var::from_tensor).collect::<candle_core::Result<Vec<_>>>()?;
        let adam = Adam::new(&vars, settings.lr, settings.weight_decay)?;
        Ok(Self {
            path: path.to_path_buf(),
            vars,
            adam,
            step: 0,
            seconds: 0.0,
            samples: 0,
            losses: Vec::new(),
            validation: Vec::new(),
            info,
        })
    }

    fn resume(path: &Path, count: usize, settings: &RunSettings) -> Result<Self> {
        let file = TensorFile::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
        let tensor = |name: String| -> Result<Tensor> {
            let raw = file.tensors.get(&name).with_context(|| format!("checkpoint {} lacks '{name}'", path.display()))?;
            Ok(Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?)
        };
        let mut vars = Vec::with_capacity(count);
        let mut m = Vec::with_capacity(count);
        let mut v = Vec::with_capacity(count);
        for i in 0..count {
            vars.push(Var::from_tensor(&tensor(format!("param.{i}"))?)?);
            m.push(tensor(format!("adam_m.{i}"))?);
            v.push(tensor(format!("adam_v.{i}"))?);
        }
        let number = |key: &str| -> Result<f64> {
            file.meta(key).and_then(|s| s.parse().ok()).with_context(|| format!("checkpoint {} lacks '{key}'", path.display()))
        };
        let step = number("step")? as usize;
        let adam = Adam { lr: settings.lr, weight_decay: settings.weight_decay, m, v, step };
        let losses = serde_json::from_str(file.meta("losses").unwrap_or("[]"))?;
        let validation = serde_json::from_str(file.meta("validation").unwrap_or("[]"))?;
        let info = serde_json::from_str(file.meta("info").unwrap_or("null"))?;
        Ok(Self {
            path: path.to_path_buf(),
            vars,
            adam,
            step,
            seconds: number("seconds")?,
            samples: number("samples")? as usize,
            losses,
            validation,
            info,
        })
    }

    pub fn save(&self) -> Result<()> {
        let mut file = TensorFile::default();
        let raw = |t: &Tensor| -> Result<RawTensor> { Ok(RawTensor::from_f32(t.dims().to_vec(), &t.flatten_all()?.to_vec1()?)) };
        for (i, var) in self.vars.iter().enumerate() {
            file.tensors.insert(format!("param.{i}"), raw(var.as_tensor())?);
            file.tensors.insert(format!("adam_m.{i}"), raw(&self.adam.m[i])?);
            file.tensors.insert(format!("adam_v.{i}"), raw(&self.adam.v[i])?);
        }
        file.metadata.insert("step".into(), self.step.to_string());
        file.metadata.insert("seconds".into(), self.seconds.to_string());
        file.metadata.insert("samples".into(), self.samples.to_string());
        file.metadata.insert("losses".into(), serde_json::to_string(&self.losses)?);
        file.metadata.insert("validation".into(), serde_json::to_string(&self.validation)?);
        file.metadata.insert("info".into(), self.info.to_string());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        file.write(&self.path)?;
        Ok(())
    }

    pub fn tensors(&self) -> Vec<Tensor> {
        self.vars.iter().map(|v| v.as_tensor().clone()).collect()
    }

    /// Trains until `settings.steps`, checkpointing as it goes. `batch_for(step, rng)` makes the
    /// step's data (seeded by step, so a resumed run sees what it would have seen);
    /// `loss_for(vars, batch)` runs the model. At every checkpoint the loss on the fixed
    /// `validation` batch is recorded (next to the loss of doing nothing).
    pub fn train<B: TrainingBatch>(
        &mut self,
        label: &str,
        settings: &RunSettings,
        validation: &B,
        batch_for: &mut dyn FnMut(&mut StdRng) -> Result<B>,
        loss_for: &mut dyn FnMut(&[Var], &B) -> Result<Tensor>,
    ) -> Result<()> {
        let identity = validation.identity_loss()?;
        let stop_at = settings.stop_after.map_or(settings.steps, |n| (self.step + n).min(settings.steps));
        let bar = ProgressBar::new(settings.steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_string());
        bar.set_position(self.step as u64);
        let mut interval_loss = 0f64;
        let mut interval_steps = 0usize;
        let mut interval_start = Instant::now();
        let mut interval_samples = 0usize;
        while self.step < stop_at {
            let started = Instant::now();
            let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_mul(1_000_003).wrapping_add(self.step as u64));
            let batch = batch_for(&mut rng)?;
            let loss = loss_for(&self.vars, &batch)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                bail!("{label}: the loss became {value} at step {}; lower the learning rate", self.step);
            }
            let grads = loss.backward()?;
            self.adam.lr = learning_rate(settings.lr, self.step, settings.steps);
            self.adam.step(&self.vars, &grads)?;
            self.step += 1;
            self.samples += settings.batch;
            self.seconds += started.elapsed().as_secs_f64();
            interval_loss += value;
            interval_steps += 1;
            interval_samples += settings.batch;
            bar.set_position(self.step as u64);
            if self.step.is_multiple_of(settings.checkpoint_every) || self.step == stop_at {
                let rate = interval_samples as f64 / interval_start.elapsed().as_secs_f64();
                let mean = interval_loss / interval_steps as f64;
                self.losses.push((self.step, mean));
                let held = loss_for(&self.vars, validation)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                // A run that blew up keeps its last good checkpoint instead of saving over it.
                if !held.is_finite() || held > DIVERGED_OVER_IDENTITY * identity {
                    let kept = self.validation.last().map_or(0, |v| v.0);
                    bail!(
                        "{label}: diverged by step {} (validation loss {held:.4e}, doing nothing {identity:.4}); the \
                         checkpoint of step {kept} is kept: run again with a lower --lr to resume from it",
                        self.step
                    );
                }
                self.validation.push((self.step, held));
                bar.set_message(format!("loss {mean:.4}, validation {held:.4} (identity {identity:.4}), {rate:.1} samples/s"));
                tracing::info!(
                    run = label,
                    step = self.step,
                    loss = mean,
                    validation = held,
                    identity,
                    samples_per_second = rate,
                    "checkpoint"
                );
                self.save()?;
                (interval_loss, interval_steps, interval_samples) = (0.0, 0, 0);
                interval_start = Instant::now();
            }
        }
        bar.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 8x8 checkerboard photo with a 4x4 hole in the middle, and the residual that turns the
    /// model's view (hole hidden, so 0 there) into `fill` inside the hole and the photo outside.
    fn hole_batch(fill: impl Fn(usize, usize, f32) -> f32) -> (Batch, Tensor) {
        let value = |x: usize, y: usize| if (x + y).is_multiple_of(2) { 0.8 } else { 0.2 };
        let mut target = RgbImage::new(8, 8);
        let mut mask = Mask::filled(8, 8, 0.0);
        for y in 0..8 {
            for x in 0..8 {
                target.data[(y * 8 + x) * 3..(y * 8 + x) * 3 + 3].fill(value(x, y));
                mask.data[y * 8 + x] = if (2..6).contains(&x) && (2..6).contains(&y) { 1.0 } else { 0.0 };
            }
        }
        let example = Example { input: target.clone(), mask: mask.clone(), hide_masked: true, target, loss_mask: mask.clone() };
        let batch = Batch::new(&[example], HoleFill::Blank).unwrap();
        let mut residual = vec![0f32; 8 * 8 * 3];
        for y in 0..8 {
            for x in 0..8 {
                if mask.data[y * 8 + x] > 0.5 {
                    // The view is 0 in the hole, so the residual is the fill (in [-1, 1]).
                    residual[(y * 8 + x) * 3..(y * 8 + x) * 3 + 3].fill(fill(x, y, value(x, y)) * 2.0 - 1.0);
                }
            }
        }
        (batch, Tensor::from_vec(residual, (1, 8, 8, 3), &Device::Cpu).unwrap())
    }

    fn loss(batch: Batch, penalty: Penalty, residual: &Tensor) -> f32 {
        batch.with_penalty(penalty).loss(residual).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn the_textured_penalty_charges_a_flat_fill_and_a_step_at_the_border() {
        let (batch, perfect) = hole_batch(|_, _, v| v);
        assert!(loss(batch, Penalty::Textured, &perfect).abs() < 1e-6);
        // The blurry mean: right on average, no texture.
        let (batch, flat) = hole_batch(|_, _, _| 0.5);
        let (absolute, textured) = (loss(batch.clone(), Penalty::Absolute, &flat), loss(batch, Penalty::Textured, &flat));
        assert!(textured > 2.0 * absolute, "a flat fill of a textured hole: {textured} against L1 {absolute}");
        // The right texture, a little too bright: inside, its gradient is right; the border's
        // step is what the gradient term charges.
        let (batch, offset) = hole_batch(|_, _, v| v + 0.1);
        let (absolute, textured) = (loss(batch.clone(), Penalty::Absolute, &offset), loss(batch, Penalty::Textured, &offset));
        assert!(textured > absolute * 1.2 && textured < absolute * 4.0, "{textured} against L1 {absolute}");
    }
}
