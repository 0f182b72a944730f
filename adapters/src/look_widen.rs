//! Widens what the look tool's mixer understands without touching its basis: the weights it
//! gives the phrasings it was trained on with photos become the targets for many more ways of
//! saying the same looks (`Look::more_phrasings`, and pairs of them), and the mixer is fitted to
//! them in embedding space. A mixer trained on eight phrasings a look extrapolated badly to words
//! it had not seen ("b&w please", "make it a bit dimmer"); this needs no photo and runs in a
//! minute.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use candle_core::{Device, Tensor, Var};
use prism_engine::tensorfile::{RawTensor, TensorFile};
use prism_text::SentenceEncoder;
use prism_text::look::{MIXER_FILE, MIXER_TENSORS, Mixer};

use crate::looks::{Look, LookRequest, requests};
use crate::train::{Adam, learning_rate};

/// What widening did, for the log.
#[derive(Debug, serde::Serialize)]
pub struct WidenReport {
    pub trained_requests: usize,
    pub taught_requests: usize,
    /// Mean squared distance to the targets, before and after (all taught requests).
    pub mse_before: f64,
    pub mse_after: f64,
}

/// The looks a request asks for, as one key.
pub fn look_key(request: &LookRequest) -> String {
    request.looks.iter().map(|l| l.id()).collect::<Vec<_>>().join("+")
}

/// The mean of the mixer's `weights` over the `trained` requests that ask for the same looks, by
/// [`look_key`]: what any other phrasing of those looks should get.
pub fn look_targets(trained: &[LookRequest], weights: &[Vec<f32>]) -> BTreeMap<String, Vec<f32>> {
    let mut sums: BTreeMap<String, (Vec<f32>, usize)> = BTreeMap::new();
    for (request, w) in trained.iter().zip(weights) {
        let entry = sums.entry(look_key(request)).or_insert_with(|| (vec![0.0; w.len()], 0));
        entry.0.iter_mut().zip(w).for_each(|(s, v)| *s += v);
        entry.1 += 1;
    }
    sums.into_iter().map(|(k, (sum, n))| (k, sum.into_iter().map(|s| s / n as f32).collect())).collect()
}

fn embed(encoder: &SentenceEncoder, requests: &[LookRequest]) -> Result<Tensor> {
    let mut values = Vec::new();
    let texts: Vec<&str> = requests.iter().map(|r| r.text.as_str()).collect();
    for chunk in texts.chunks(32) {
        for embedding in encoder.encode_batch(chunk)? {
            values.extend(embedding.0);
        }
    }
    let dim = values.len() / requests.len().max(1);
    Ok(Tensor::from_vec(values, (requests.len(), dim), &Device::Cpu)?)
}

/// Fits the mixer in `<assets>/looks/` to the wider phrasebook for `steps` full-batch steps and
/// writes it back.
pub fn widen_look(assets: &Path, steps: usize, lr: f64) -> Result<WidenReport> {
    let encoder = SentenceEncoder::load(assets)?;
    let path = assets.join(prism_text::look::LOOKS_DIR).join(MIXER_FILE);
    let mut file = TensorFile::read(&path).with_context(|| format!("the look mixer {}", path.display()))?;
    let vars: Vec<Var> = MIXER_TENSORS
        .iter()
        .map(|name| {
            let raw = file.tensors.get(*name).with_context(|| format!("the look mixer has no '{name}'"))?;
            Ok(Var::from_tensor(&Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?)?)
        })
        .collect::<Result<_>>()?;
    let mixer = |vars: &[Var]| Mixer::from_tensors(std::array::from_fn(|i| vars[i].as_tensor().clone()));

    // Targets: the mean weights the photo-trained phrasings of each look (or pair) get now.
    let trained = requests(Look::phrasings);
    let weights = mixer(&vars).weights(&embed(&encoder, &trained)?)?.to_vec2::<f32>()?;
    let targets = look_targets(&trained, &weights);

    let mut taught = trained.clone();
    taught.extend(requests(Look::more_phrasings));
    let mut target_values = Vec::new();
    for request in &taught {
        let target =
            targets.get(&look_key(request)).with_context(|| format!("no trained phrasing asks for {}", look_key(request)))?;
        target_values.extend_from_slice(target);
    }
    let basis = target_values.len() / taught.len();
    let target = Tensor::from_vec(target_values, (taught.len(), basis), &Device::Cpu)?;
    let inputs = embed(&encoder, &taught)?;
    let loss = |vars: &[Var]| -> Result<Tensor> { Ok((mixer(vars).weights(&inputs)? - &target)?.sqr()?.mean_all()?) };
    let mse_before = loss(&vars)?.to_scalar::<f32>()? as f64;
    let mut adam = Adam::new(&vars, lr, 0.0)?;
    for step in 0..steps {
        adam.lr = learning_rate(lr, step, steps);
        let grads = loss(&vars)?.backward()?;
        adam.step(&vars, &grads)?;
    }
    let mse_after = loss(&vars)?.to_scalar::<f32>()? as f64;
    ensure!(mse_after.is_finite(), "widening the look mixer diverged");
    for (name, var) in MIXER_TENSORS.iter().zip(&vars) {
        let tensor = var.as_tensor();
        file.tensors.insert(name.to_string(), RawTensor::from_f32(tensor.dims().to_vec(), &tensor.flatten_all()?.to_vec1()?));
    }
    file.metadata.insert("widened_phrasings".into(), taught.len().to_string());
    file.write(&path)?;
    Ok(WidenReport { trained_requests: trained.len(), taught_requests: taught.len(), mse_before, mse_after })
}
