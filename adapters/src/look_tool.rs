//! Trains the prompt-guided tool on the shipped model: a basis of LoRA directions on the frozen
//! base and the mixer that weights them from a prompt's embedding, together, on exact looks
//! (`looks`) said in many phrasings. Writes `<assets>/looks/{basis.prism-lora, mixer.safetensors}`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor, Var};
use prism_engine::adapter::{Adapter, AdapterMeta, float_meta};
use prism_engine::graph::LoraPlacement;
use prism_engine::imageio::{Mask, RgbImage};
use prism_engine::model::Model;
use prism_engine::tensorfile::{RawTensor, TensorFile};
use prism_engine::unet::{FloatActivations, LoraLayer, LoraSet, Unet};
use prism_text::SentenceEncoder;
use prism_text::look::{BASIS_CHANNELS, BASIS_FILE, LOOKS_DIR, MIXER_FILE, MIXER_HIDDEN, MIXER_TENSORS, Mixer, direction_rank};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::looks::{Look, LookRequest, requests};
use crate::recipe::{adapter_pairs, float_adapter, init_lora, placed_convs, runs_dir, var_pairs};
use crate::tasks::Example;
use crate::train::{Batch, Run, RunSettings, TrainingSet};

/// The basis carries LoRA on every conv: a look changes colour everywhere in the network's path.
const PLACEMENT: LoraPlacement = LoraPlacement::EVERY_CONV;

/// Looks drawn this many times as often as the others unless a run names its own
/// (`train-look --focus`): the ones the shipped tool got wrong most after 13000 uniform steps
/// (sepia came out olive-grey, black and white kept some colour, darker brightened), measured on
/// the phrasings it was trained on.
pub const FOCUS: [(Look, usize); 3] = [(Look::Sepia, 3), (Look::BlackAndWhite, 3), (Look::Darker, 3)];

/// Indices of `requests`, each repeated by its looks' `focus`: what a batch draws from.
fn draw_list(requests: &[LookRequest], focus: &[(Look, usize)]) -> Vec<usize> {
    let times =
        |r: &LookRequest| r.looks.iter().filter_map(|l| focus.iter().find(|(f, _)| f == l).map(|(_, n)| *n)).max().unwrap_or(1);
    requests.iter().enumerate().flat_map(|(i, r)| std::iter::repeat_n(i, times(r))).collect()
}

/// The head's rows that read the photo (when the head sees it) are trained divided by this, so
/// an Adam step moves them this many times further. The look tool's B is small (|B| ~ 0.04), so
/// a per-pixel colour map through the head (black and white: grey minus the pixel) needs A's
/// photo rows near 1; at the usual rate they reached 0.15 in 3000 steps, and a 3x rate diverged.
const HEAD_PHOTO_GAIN: f64 = 10.0;

/// For each placed conv of `base`, the factor each row of A (kernel layout `[k*k*cin, rank]`)
/// is multiplied by to go from trained values to the basis: `HEAD_PHOTO_GAIN` on the head's rows
/// that read the unshuffled photo, 1 elsewhere.
fn row_gains(base: &Unet) -> Result<Vec<Option<Tensor>>> {
    let top = base.config().channels[0];
    placed_convs(base, PLACEMENT)
        .map(|spec| {
            if spec.name != "head" || !base.config().head_sees_input {
                return Ok(None);
            }
            let gains: Vec<f32> = (0..spec.k * spec.k * spec.cin)
                .map(|row| if row % spec.cin >= top { HEAD_PHOTO_GAIN as f32 } else { 1.0 })
                .collect();
            Ok(Some(Tensor::from_vec(gains, (spec.k * spec.k * spec.cin, 1), &Device::Cpu)?))
        })
        .collect()
}

/// The basis from trained values: the head's photo rows multiplied by their gain.
fn basis_from_trained(base: &Unet, pairs: Vec<(Tensor, Tensor)>) -> Result<Vec<(Tensor, Tensor)>> {
    with_gains(base, pairs, |a, gain| a.broadcast_mul(gain))
}

/// Trained values from the basis: the head's photo rows divided by their gain.
fn trained_from_basis(base: &Unet, pairs: Vec<(Tensor, Tensor)>) -> Result<Vec<(Tensor, Tensor)>> {
    with_gains(base, pairs, |a, gain| a.broadcast_div(gain))
}

fn with_gains(
    base: &Unet,
    pairs: Vec<(Tensor, Tensor)>,
    apply: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
) -> Result<Vec<(Tensor, Tensor)>> {
    pairs
        .into_iter()
        .zip(row_gains(base)?)
        .map(|((a, b), gain)| Ok((if let Some(gain) = gain { apply(&a, &gain)? } else { a }, b)))
        .collect()
}

/// Where the look files of a model directory are.
pub fn looks_dir(model_dir: &Path) -> PathBuf {
    model_dir.join(LOOKS_DIR)
}

/// Every request's embedding, computed once.
struct Phrasebook {
    requests: Vec<LookRequest>,
    embeddings: HashMap<String, Vec<f32>>,
}

impl Phrasebook {
    fn new(encoder: &SentenceEncoder, requests: Vec<LookRequest>) -> Result<Self> {
        let texts: Vec<&str> = requests.iter().map(|r| r.text.as_str()).collect();
        let mut embeddings = HashMap::new();
        for chunk in texts.chunks(32) {
            for (text, embedding) in chunk.iter().zip(encoder.encode_batch(chunk)?) {
                embeddings.insert(text.to_string(), embedding.0);
            }
        }
        Ok(Self { requests, embeddings })
    }

    /// Examples of `requests[picks]` on `crops`, with their embeddings as the batch's condition.
    fn batch(&self, crops: &[RgbImage], picks: &[usize]) -> Result<Batch> {
        let mut examples = Vec::with_capacity(crops.len());
        let mut condition = Vec::new();
        for (crop, &pick) in crops.iter().zip(picks) {
            let request = &self.requests[pick];
            let full = Mask::filled(crop.width, crop.height, 1.0);
            examples.push(Example {
                input: crop.clone(),
                mask: full.clone(),
                hide_masked: false,
                target: request.apply(crop),
                loss_mask: full,
            });
            condition.extend_from_slice(&self.embeddings[&request.text]);
        }
        let dim = condition.len() / crops.len().max(1);
        let condition = Tensor::from_vec(condition, (crops.len(), dim), &Device::Cpu)?;
        Ok(Batch::new(&examples, prism_engine::hole_fill::HoleFill::Blank)?.with_condition(condition))
    }
}

/// The base's output for each example with the basis weighted by that example's condition.
pub fn conditioned_forward(base: &Unet, basis: &[(Tensor, Tensor)], mixer: &Mixer, batch: &Batch) -> Result<Tensor> {
    let condition = batch.condition.as_ref().context("a look batch carries its prompts' embeddings")?;
    let scales = mixer.rank_scales(condition, BASIS_CHANNELS)?;
    let mut outputs = Vec::with_capacity(batch.input.dim(0)?);
    for i in 0..batch.input.dim(0)? {
        let rank_scale = scales.get(i)?;
        let mut set = LoraSet::default();
        for (spec, (a, b)) in placed_convs(base, PLACEMENT).zip(basis) {
            set.layers.insert(spec.name.clone(), LoraLayer { a: a.clone(), b: b.clone(), rank_scale: rank_scale.clone() });
        }
        outputs.push(base.forward(&batch.input.narrow(0, i, 1)?, Some(&set), &mut FloatActivations)?);
    }
    Ok(Tensor::cat(&outputs, 0)?)
}

/// A mixer-shaped network `dim -> MIXER_HIDDEN -> outputs` at its starting point.
pub fn mixer_init(dim: usize, outputs: usize, seed: u64) -> Result<Vec<Tensor>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = |n: usize, std: f32| -> Result<Vec<f32>> {
        let dist = Normal::new(0f32, std)?;
        Ok((0..n).map(|_| dist.sample(&mut rng)).collect())
    };
    let device = &Device::Cpu;
    Ok(vec![
        Tensor::from_vec(normal(dim * MIXER_HIDDEN, (1.0 / dim as f32).sqrt())?, (dim, MIXER_HIDDEN), device)?,
        Tensor::zeros(MIXER_HIDDEN, candle_core::DType::F32, device)?,
        Tensor::from_vec(normal(MIXER_HIDDEN * outputs, 0.1)?, (MIXER_HIDDEN, outputs), device)?,
        // Every direction starts at weight 1, so each learns from the first step.
        Tensor::ones(outputs, candle_core::DType::F32, device)?,
    ])
}

fn mixer_of(vars: &[Var]) -> Mixer {
    let tail: Vec<Tensor> = vars[vars.len() - 4..].iter().map(|v| v.as_tensor().clone()).collect();
    mixer_of_tensors(&tail)
}

/// The mixer of the last four of `tensors` (the mixer's, in `MIXER_TENSORS` order).
fn mixer_of_tensors(tensors: &[Tensor]) -> Mixer {
    let tail = &tensors[tensors.len() - 4..];
    Mixer::from_tensors(std::array::from_fn(|i| tail[i].clone()))
}

/// Where a look run starts when it has no checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookStart {
    /// A random basis and mixer.
    Random,
    /// The look tool already in the model directory (its basis and its mixer, widened or not):
    /// to go on after the model changed under it (the head opened to the input).
    Shipped,
}

/// The basis (as A, B pairs of `base`'s placed convs) and mixer tensors of the look tool in
/// `assets`, whose mixer must weight `directions`.
fn shipped_look(assets: &Path, base: &Unet, directions: usize) -> Result<Vec<Tensor>> {
    let dir = looks_dir(assets);
    let basis = Adapter::read(&dir.join(BASIS_FILE))?;
    let trained = trained_from_basis(base, adapter_pairs(base, &basis)?)?;
    let mut init: Vec<Tensor> = trained.into_iter().flat_map(|(a, b)| [a, b]).collect();
    let mixer = TensorFile::read(&dir.join(MIXER_FILE))?;
    for name in MIXER_TENSORS {
        let raw = mixer.tensors.get(name).with_context(|| format!("the look mixer has no '{name}'"))?;
        init.push(Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?);
    }
    let shipped = mixer_of_tensors(&init).directions()?;
    if shipped != directions {
        bail!("the look tool in {} weights {shipped} directions, not {directions}: start it from random weights", dir.display());
    }
    Ok(init)
}

/// What a look run trains, beside its schedule.
#[derive(Clone, Debug)]
pub struct LookPlan {
    /// The whole basis learns this one look's single phrasings (its own checkpoint): what the
    /// basis can reach for a look when it need not share its rank, for experiments in a scratch
    /// `assets`.
    pub only: Option<Look>,
    /// Requests with one of these looks are drawn that many times as often.
    pub focus: Vec<(Look, usize)>,
    /// How many directions share the basis's rank (each of rank `BASIS_CHANNELS / directions`); a
    /// run from the shipped tool keeps its count.
    pub directions: usize,
}

/// Trains (or resumes) the look tool on the model in `assets`, as `plan` says, and writes its
/// files there.
pub fn train_look(
    data_dir: &Path,
    assets: &Path,
    settings: &RunSettings,
    fresh: bool,
    start: LookStart,
    plan: &LookPlan,
) -> Result<PathBuf> {
    let LookPlan { only, focus, directions } = plan;
    let (only, directions) = (*only, *directions);
    let rank = direction_rank(BASIS_CHANNELS, directions)?;
    let set = TrainingSet::load(data_dir)?;
    let model = Model::load(assets)?;
    let base = model.float()?;
    let encoder = SentenceEncoder::load(assets)?;
    let mut trained = requests(Look::phrasings);
    if let Some(look) = only {
        trained.retain(|r| r.looks == [look]);
    }
    let book = Phrasebook::new(&encoder, trained)?;
    let dim = book.embeddings.values().next().map_or(384, Vec::len);
    let checkpoint = runs_dir(data_dir).join(only.map_or("look.ckpt".to_string(), |look| format!("look-{}.ckpt", look.id())));
    if fresh {
        let _ = std::fs::remove_file(&checkpoint);
    }
    let lora_vars = 2 * placed_convs(base, PLACEMENT).count();
    let init = match start {
        LookStart::Random => {
            let mut init = init_lora(base, BASIS_CHANNELS, settings.seed, PLACEMENT)?;
            init.extend(mixer_init(dim, directions, settings.seed + 1)?);
            init
        }
        LookStart::Shipped => shipped_look(assets, base, directions)?,
    };
    let info = serde_json::json!({ "kind": "look", "base_model": model.hash, "basis": directions, "rank": rank });
    let mut run = Run::open(&checkpoint, init, settings, info)?;
    let crop = settings.crop;
    let mut fixed = StdRng::seed_from_u64(0x100c);
    let validation_crops: Vec<RgbImage> = (0..16).map(|_| set.random_crop(crop, &mut fixed)).collect();
    let validation_picks: Vec<usize> = (0..16).map(|i| i * book.requests.len() / 16).collect();
    let validation = book.batch(&validation_crops, &validation_picks)?;
    let draws = draw_list(&book.requests, focus);
    run.train(
        "look",
        settings,
        &validation,
        &mut |rng| {
            let crops: Vec<RgbImage> = (0..settings.batch).map(|_| set.random_crop(crop, rng)).collect();
            let picks: Vec<usize> = (0..settings.batch).map(|_| draws[rng.random_range(0..draws.len())]).collect();
            book.batch(&crops, &picks)
        },
        &mut |vars, batch| {
            let basis = basis_from_trained(base, var_pairs(&vars[..lora_vars]))?;
            batch.loss(&conditioned_forward(base, &basis, &mixer_of(vars), batch)?)
        },
    )?;
    write_look(assets, &model, &run.vars[..lora_vars], &run.vars[lora_vars..])
}

/// What the look tool says about itself (the router reads its description and example prompts).
pub fn look_meta(base_hash: &str) -> AdapterMeta {
    let example_prompts = [
        "make it warmer",
        "cooler tones",
        "more contrast",
        "less saturated colours",
        "black and white",
        "turn the photo black and white",
        "sepia tone",
        "faded film look",
        "teal and orange grade",
        "soft dreamy glow",
        "golden hour light",
        "moody and dark",
        "a green tint",
        "black and white with more contrast",
    ];
    AdapterMeta {
        title: "Describe a look".into(),
        task: prism_text::look::LOOK_TASK.into(),
        description: "Colour grading and tone from the words you type: warmer or cooler, a tint, contrast, saturation, black and white, sepia, faded film, teal and orange, a soft glow, golden hour, moody, and pairs of them.".into(),
        example_prompts: example_prompts.iter().map(|s| s.to_string()).collect(),
        created_by: format!("prism-adapters {}", env!("CARGO_PKG_VERSION")),
        ..float_meta("look", base_hash, BASIS_CHANNELS, 1.0)
    }
}

/// Writes the basis in float: a look made from it is balanced onto the profile's grids when it is
/// installed (`Adapter::quantize_after_training`), with the weights its prompt gave it.
fn write_look(assets: &Path, model: &Model, lora: &[Var], mixer_vars: &[Var]) -> Result<PathBuf> {
    let dir = looks_dir(assets);
    std::fs::create_dir_all(&dir)?;
    let basis = basis_from_trained(model.float()?, var_pairs(lora))?;
    let basis = float_adapter(model.float()?, &basis, look_meta(&model.hash), PLACEMENT)?;
    basis.write(&dir.join(BASIS_FILE))?;
    let mut file = TensorFile::default();
    for (name, var) in MIXER_TENSORS.iter().zip(mixer_vars) {
        let tensor = var.as_tensor();
        file.tensors.insert(name.to_string(), RawTensor::from_f32(tensor.dims().to_vec(), &tensor.flatten_all()?.to_vec1()?));
    }
    file.metadata.insert("format".into(), "prism-look-mixer".into());
    let directions = mixer_of(mixer_vars).directions()?;
    file.metadata.insert("basis".into(), directions.to_string());
    file.metadata.insert("basis_rank".into(), direction_rank(BASIS_CHANNELS, directions)?.to_string());
    file.metadata.insert("base_model".into(), model.hash.clone());
    let path = dir.join(MIXER_FILE);
    file.write(&path)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::unet::UnetConfig;

    fn random_pairs(base: &Unet) -> Vec<(Tensor, Tensor)> {
        init_lora(base, 3, 7, PLACEMENT).unwrap().chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect()
    }

    #[test]
    fn only_the_heads_photo_rows_are_trained_rescaled_and_the_round_trip_is_exact() {
        let config = UnetConfig { head_sees_input: true, ..UnetConfig::new(vec![8, 12], vec![1, 1], 4).unwrap() };
        let base = Unet::new(&config, &Unet::random_tensors(&config, 1, &Device::Cpu).unwrap()).unwrap();
        let pairs = random_pairs(&base);
        let basis = basis_from_trained(&base, pairs.clone()).unwrap();
        for ((spec, (a, b)), (scaled_a, scaled_b)) in placed_convs(&base, PLACEMENT).zip(&pairs).zip(&basis) {
            let (a, scaled) = (a.to_vec2::<f32>().unwrap(), scaled_a.to_vec2::<f32>().unwrap());
            for (row, (before, after)) in a.iter().zip(&scaled).enumerate() {
                let photo_row = spec.name == "head" && row % spec.cin >= config.channels[0];
                let gain = if photo_row { HEAD_PHOTO_GAIN as f32 } else { 1.0 };
                for (x, y) in before.iter().zip(after) {
                    assert_eq!(*y, x * gain, "{} row {row}", spec.name);
                }
            }
            assert_eq!(b.to_vec2::<f32>().unwrap(), scaled_b.to_vec2::<f32>().unwrap());
        }
        let back = trained_from_basis(&base, basis).unwrap();
        for ((a, _), (a_back, _)) in pairs.iter().zip(&back) {
            let difference = (a - a_back).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(difference < 1e-6);
        }
        // A head that does not see the photo trains as it is.
        let plain = UnetConfig::new(vec![8, 12], vec![1, 1], 4).unwrap();
        let plain_base = Unet::new(&plain, &Unet::random_tensors(&plain, 1, &Device::Cpu).unwrap()).unwrap();
        assert!(row_gains(&plain_base).unwrap().iter().all(Option::is_none));
    }
}
