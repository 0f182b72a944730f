#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A few training steps on tiny crops: the loss falls, and a stopped run resumes to exactly the
//! weights an uninterrupted run reaches. No real training happens in CI.

use prism_adapters::recipe::{
    AdapterLayout, base_run, float_adapter, init_lora, lora_set, model_from_vars, task_meta, var_pairs, warm_lora,
};
use prism_engine::graph::LoraPlacement;
use prism_engine::hole_fill::HoleFill;

const EVERY: LoraPlacement = LoraPlacement::EVERY_CONV;

fn layout(rank: usize) -> AdapterLayout {
    AdapterLayout { rank, placement: EVERY }
}
use prism_adapters::joint::joint_run;
use prism_adapters::tasks::Task;
use prism_adapters::train::{Penalty, Run, RunSettings, TrainingBatch, TrainingSet, Weighting};
use prism_engine::adapter::{AdapterMeta, AdapterPrecision};
use prism_engine::fixtures::{synthetic_photo, tiny_config};
use prism_engine::unet::{FloatActivations, Unet};

fn photos() -> TrainingSet {
    TrainingSet {
        photos: (0..4).map(|seed| synthetic_photo(96, 80, seed)).collect(),
        stamps: Vec::new(),
        sharpen_input: Default::default(),
    }
}

fn settings(steps: usize) -> RunSettings {
    RunSettings { steps, batch: 4, crop: 32, lr: 2e-3, weight_decay: 0.0, seed: 7, checkpoint_every: 10, stop_after: None }
}

#[test]
fn base_training_lowers_the_validation_loss() {
    let dir = tempfile::tempdir().unwrap();
    let s = RunSettings { seed: 1, ..settings(120) };
    // Two tools whose inputs are far from their answers (denoise's input is already shrunk by
    // its classical pre-pass, which 120 steps of a tiny base do not improve on).
    let tasks = [Task::Colorize, Task::Lowlight];
    let (run, validation) =
        base_run(&photos(), &tiny_config(), &s, &tasks, Weighting::Relative, &dir.path().join("base.ckpt"), None).unwrap();
    let identity = validation.identity_loss().unwrap();
    let last = run.validation.last().unwrap().1;
    assert!(last < 0.95 * identity, "validation loss {last} did not fall below the do-nothing loss {identity}");
    assert_eq!(run.step, 120);
}

#[test]
fn relative_weighting_scores_doing_nothing_as_one_per_example() {
    let set = photos();
    let uniform = set.validation_batch(&[Task::Lowlight, Task::Denoise], 3, 32, HoleFill::Blank).unwrap();
    let plain = uniform.identity_loss().unwrap();
    let relative = Weighting::Relative
        .apply(set.validation_batch(&[Task::Lowlight, Task::Denoise], 3, 32, HoleFill::Blank).unwrap())
        .unwrap();
    // Dark and noisy crops are far above the floor, so each example's doing-nothing loss is 1.
    let ones = relative.identity_loss().unwrap();
    assert!((ones - 1.0).abs() < 1e-4, "relative doing-nothing loss {ones}, expected 1 (plain L1 {plain})");
    assert!((plain - 1.0).abs() > 0.1, "the plain loss {plain} should not already be 1");
}

#[test]
fn a_smooth_or_harmonic_hole_fill_starts_removal_closer_to_the_photo_than_a_blank_one() {
    let set = photos();
    let blank = set.validation_batch(&[Task::Remove], 6, 48, HoleFill::Blank).unwrap();
    let smooth = set.validation_batch(&[Task::Remove], 6, 48, HoleFill::Smooth).unwrap();
    // The same examples (the validation batch has its own seed), shown two ways.
    assert_eq!(
        blank.target.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        smooth.target.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let harmonic = set.validation_batch(&[Task::Remove], 6, 48, HoleFill::Harmonic).unwrap();
    let (blank_loss, smooth_loss) = (blank.identity_loss().unwrap(), smooth.identity_loss().unwrap());
    assert!(smooth_loss < 0.7 * blank_loss, "doing nothing on a smooth fill {smooth_loss}, on a blank one {blank_loss}");
    let harmonic_loss = harmonic.identity_loss().unwrap();
    assert!(harmonic_loss < 0.7 * blank_loss, "doing nothing on a harmonic fill {harmonic_loss}, on a blank one {blank_loss}");
}

#[test]
fn squared_penalty_charges_the_square_of_each_error() {
    let batch = photos().validation_batch(&[Task::Colorize], 4, 32, HoleFill::Blank).unwrap();
    let error = (batch.input.narrow(3, 0, 3).unwrap() - &batch.target).unwrap();
    let weight = batch.weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let errors = error.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let pixels = weight.len() / 4;
    let mut expected = 0f64;
    for example in 0..4 {
        let (mut sum, mut count) = (0f64, 0f64);
        for p in example * pixels..(example + 1) * pixels {
            for c in 0..3 {
                sum += (weight[p] * errors[p * 3 + c] * errors[p * 3 + c]) as f64;
            }
            count += 3.0 * weight[p] as f64;
        }
        expected += sum / count / 4.0;
    }
    let squared = batch.with_penalty(Penalty::Squared).identity_loss().unwrap();
    assert!((squared - expected).abs() < 1e-5 * expected, "squared doing-nothing loss {squared}, by hand {expected}");
}

#[test]
fn a_stopped_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let set = photos();
    let straight =
        base_run(&set, &config, &settings(20), &[Task::Sharpen], Weighting::Uniform, &dir.path().join("straight.ckpt"), None)
            .unwrap()
            .0;
    let resumed_path = dir.path().join("resumed.ckpt");
    let interrupted = RunSettings { stop_after: Some(10), ..settings(20) };
    let first = base_run(&set, &config, &interrupted, &[Task::Sharpen], Weighting::Uniform, &resumed_path, None).unwrap().0;
    assert_eq!(first.step, 10);
    drop(first);
    let resumed = base_run(&set, &config, &settings(20), &[Task::Sharpen], Weighting::Uniform, &resumed_path, None).unwrap().0;
    assert_eq!(resumed.step, 20);
    for (a, b) in straight.tensors().iter().zip(resumed.tensors()) {
        assert_eq!(max_difference(a, &b), 0.0, "resumed weights differ from an uninterrupted run");
    }
}

#[test]
fn lora_training_moves_only_the_adapter_and_lowers_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let set = photos();
    let base = Unet::new(&config, &Unet::random_tensors(&config, 1, &candle_core::Device::Cpu).unwrap()).unwrap();
    let before = base.tensors().unwrap();
    let s = settings(60);
    let mut run =
        Run::open(&dir.path().join("lora.ckpt"), init_lora(&base, 4, 3, EVERY).unwrap(), &s, serde_json::json!({})).unwrap();
    let validation = set.validation_batch(&[Task::Colorize], 8, 32, HoleFill::Blank).unwrap();
    let identity = validation.identity_loss().unwrap();
    run.train(
        "test",
        &s,
        &validation,
        &mut |rng| set.batch(&[Task::Colorize], 4, 32, HoleFill::Blank, rng),
        &mut |vars, batch| {
            let lora = lora_set(&base, &var_pairs(vars), 1.0, EVERY)?;
            batch.loss(&base.forward(&batch.input, Some(&lora), &mut FloatActivations)?)
        },
    )
    .unwrap();
    let last = run.validation.last().unwrap().1;
    assert!(last < identity, "LoRA validation loss {last} is not below the do-nothing loss {identity}");
    for (name, tensor) in base.tensors().unwrap() {
        assert_eq!(max_difference(&before[&name], &tensor), 0.0, "base tensor {name} changed");
    }
}

/// Joint training moves the base and gives each tool its own adapter: every example goes through
/// its own tool's LoRA, and the validation loss falls below doing nothing.
#[test]
fn joint_training_moves_the_base_and_each_tools_own_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let base = Unet::new(&config, &Unet::random_tensors(&config, 1, &candle_core::Device::Cpu).unwrap()).unwrap();
    let tasks = [Task::Denoise, Task::Lowlight];
    let joint = joint_run(&photos(), &base, &tasks, &settings(60), layout(4), &dir.path().join("joint.ckpt"), None).unwrap();
    let parts: Vec<Task> = joint.validation.parts().iter().map(|(task, _)| *task).collect();
    assert_eq!(parts, tasks, "the validation batch holds each tool as its own part");
    let identity = joint.validation.identity_loss().unwrap();
    let last = joint.run.validation.last().unwrap().1;
    assert!(last < 0.95 * identity, "joint validation loss {last} is not below the do-nothing loss {identity}");
    let (before, after) = (base.tensors().unwrap(), joint.base().unwrap().tensors().unwrap());
    assert!(before.iter().any(|(name, t)| max_difference(t, &after[name]) > 0.0), "the base did not move");
    // B starts at zero: a B that moved was trained through its own tool's examples.
    let b_of = |task| joint.pairs(task).unwrap().into_iter().map(|(_, b)| b).collect::<Vec<_>>();
    let (denoise, lowlight) = (b_of(Task::Denoise), b_of(Task::Lowlight));
    let zero = denoise[0].zeros_like().unwrap();
    assert!(max_difference(&denoise[0], &zero) > 0.0 && max_difference(&lowlight[0], &zero) > 0.0, "an adapter did not train");
    assert!(max_difference(&denoise[0], &lowlight[0]) > 0.0, "the two tools share one adapter");
    assert!(joint.pairs(Task::Colorize).is_err(), "a tool outside the run has no adapter");
}

fn max_difference(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// `train-base --init` starts from the given weights (through the weight-norm parametrization)
/// and `train-adapter --init` from the given float adapter's tensors.
#[test]
fn warm_starts_begin_at_the_given_weights() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let start = Unet::new(&config, &Unet::random_tensors(&config, 5, &candle_core::Device::Cpu).unwrap()).unwrap();
    let s = RunSettings { stop_after: Some(0), ..settings(10) };
    let (run, _) =
        base_run(&photos(), &config, &s, &[Task::Denoise], Weighting::Uniform, &dir.path().join("warm.ckpt"), Some(&start))
            .unwrap();
    assert_eq!(run.step, 0);
    let resumed = model_from_vars(&config, &run.vars).unwrap().tensors().unwrap();
    for (name, tensor) in start.tensors().unwrap() {
        assert!(max_difference(&resumed[&name], &tensor) < 1e-5, "{name} did not start from the given base");
    }

    let lora = init_lora(&start, 4, 9, EVERY).unwrap();
    // B starts at zero in a fresh LoRA; give it values so the round trip is a real check.
    let pairs: Vec<_> = lora.chunks_exact(2).map(|p| (p[0].clone(), (p[1].ones_like().unwrap() * 0.25).unwrap())).collect();
    let meta = AdapterMeta { rank: 4, ..task_meta(Task::Denoise, "test", AdapterPrecision::Float, "").unwrap() };
    let path = dir.path().join("denoise.prism-lora");
    float_adapter(&start, &pairs, meta, EVERY).unwrap().write(&path).unwrap();
    let warm = warm_lora(&start, &path, layout(4), 1).unwrap();
    for (got, (a, b)) in warm.chunks_exact(2).zip(&pairs) {
        assert!(max_difference(&got[0], a) < 1e-6 && max_difference(&got[1], b) < 1e-6);
    }
    // A rank-4 adapter grown to rank 8 gives the same output as before.
    let grown = warm_lora(&start, &path, layout(8), 1).unwrap();
    assert_eq!(grown[0].dims()[1], 8);
    let input = photos().validation_batch(&[Task::Denoise], 2, 32, HoleFill::Blank).unwrap().input;
    let output = |vars: &[candle_core::Tensor]| {
        let pairs: Vec<_> = vars.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        start.forward(&input, Some(&lora_set(&start, &pairs, 1.0, EVERY).unwrap()), &mut FloatActivations).unwrap()
    };
    assert!(max_difference(&output(&warm), &output(&grown)) < 1e-5, "growing the rank changed the output");
    let err = warm_lora(&start, &path, layout(2), 1).unwrap_err().to_string();
    assert!(err.contains("rank 2 or less"), "{err}");
}

/// A run whose loss blows up stops with an error and leaves no checkpoint saved over a good one.
#[test]
fn a_diverging_run_stops_and_keeps_its_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.ckpt");
    let good = RunSettings { stop_after: Some(10), ..settings(40) };
    base_run(&photos(), &tiny_config(), &good, &[Task::Denoise], Weighting::Uniform, &path, None).unwrap();
    let wild = RunSettings { lr: 1e4, checkpoint_every: 1, ..settings(40) };
    let Err(err) = base_run(&photos(), &tiny_config(), &wild, &[Task::Denoise], Weighting::Uniform, &path, None) else {
        panic!("a run at a learning rate of 1e4 did not stop");
    };
    let err = err.to_string();
    assert!(err.contains("diverged by step 11") && err.contains("step 10 is kept"), "{err}");
    let resumed = RunSettings { stop_after: Some(0), ..settings(40) };
    let (run, _) = base_run(&photos(), &tiny_config(), &resumed, &[Task::Denoise], Weighting::Uniform, &path, None).unwrap();
    assert_eq!(run.step, 10, "the checkpoint was overwritten");
}

/// A run stopped mid-stage exports from its checkpoint exactly the model its variables make.
#[test]
fn a_base_exports_from_its_checkpoint_and_round_trips_through_f16() {
    let dir = tempfile::tempdir().unwrap();
    let runs = prism_adapters::recipe::runs_dir(dir.path());
    std::fs::create_dir_all(&runs).unwrap();
    let s = RunSettings { stop_after: Some(10), ..settings(40) };
    let (run, _) =
        base_run(&photos(), &tiny_config(), &s, &[Task::Denoise], Weighting::Uniform, &runs.join("base.ckpt"), None).unwrap();
    let expected = model_from_vars(&tiny_config(), &run.vars).unwrap();
    let exported = prism_adapters::recipe::base_from_checkpoint(dir.path()).unwrap();
    assert_eq!(exported.content_hash().unwrap(), expected.content_hash().unwrap());
    let half = Unet::from_file(&exported.to_half_file().unwrap(), &candle_core::Device::Cpu).unwrap();
    assert_eq!(half.config(), expected.config());
}

/// An adapter trained on the coarse levels only holds just those convs, says so when read back,
/// and refuses to be continued as an adapter of another placement.
#[test]
fn a_placed_adapter_keeps_its_placement() {
    let base = Unet::new(&tiny_config(), &Unet::random_tensors(&tiny_config(), 5, &candle_core::Device::Cpu).unwrap()).unwrap();
    let coarse = LoraPlacement { min_level: 1 };
    let vars = init_lora(&base, 4, 3, coarse).unwrap();
    let covered = base.convs().filter(|spec| coarse.covers(spec)).count();
    assert!(covered > 0 && covered < base.convs().count());
    assert_eq!(vars.len(), 2 * covered);
    let pairs: Vec<_> = vars.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    let meta = task_meta(Task::Denoise, &base.content_hash().unwrap(), AdapterPrecision::Float, "").unwrap();
    let adapter = float_adapter(&base, &pairs, meta, coarse).unwrap();
    assert_eq!(adapter.layers.len(), covered);
    assert_eq!(prism_adapters::recipe::placement_of(&base, &adapter).unwrap(), coarse);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coarse.prism-lora");
    adapter.write(&path).unwrap();
    assert!(warm_lora(&base, &path, AdapterLayout { rank: 4, placement: coarse }, 1).is_ok());
    let err = warm_lora(&base, &path, layout(4), 1).unwrap_err().to_string();
    assert!(err.contains("not from level 0"), "{err}");
}
