//! Teaches the look tool to read words it was not trained on, without touching its basis or its
//! mixer: each look (and each pair) gets the weights the photo-trained mixer gives its trained
//! phrasings (their mean), and a classifier over those looks, the reader, is fitted in embedding
//! space to many more ways of saying them (`Look::more_phrasings`, and pairs of them). A request
//! is then made into a mix of looks the basis was trained to make. Regressing the weights instead
//! (the mixer refitted to the wider phrasebook) left new words between looks: on the dev
//! phrasings the classifier lands 0.16 from the target weights, the refitted mixer 0.40
//! (`examples/mixer_designs.rs`). This needs no photo and runs in a minute.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use candle_core::{D, Device, Tensor, Var};
use prism_engine::tensorfile::{RawTensor, TensorFile};
use prism_text::SentenceEncoder;
use prism_text::look::{MIXER_FILE, MIXER_TENSORS, Mixer, READER_LOOKS, READER_NAMES, READER_TENSORS};

use crate::look_tool::mixer_init;
use crate::looks::{Look, LookRequest, requests};
use crate::train::{Adam, learning_rate};

/// What widening did, for the log.
#[derive(Debug, serde::Serialize)]
pub struct WidenReport {
    pub trained_requests: usize,
    pub taught_requests: usize,
    pub looks: usize,
    /// Mean cross-entropy on the taught requests, at the start and the end.
    pub loss_before: f64,
    pub loss_after: f64,
    /// Taught requests whose likeliest look is their own, at the end.
    pub taught_right: usize,
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

fn tensors(file: &TensorFile, names: [&str; 4]) -> Result<[Tensor; 4]> {
    let read = |name: &str| -> Result<Tensor> {
        let raw = file.tensors.get(name).with_context(|| format!("the look mixer has no '{name}'"))?;
        Ok(Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?)
    };
    Ok([read(names[0])?, read(names[1])?, read(names[2])?, read(names[3])?])
}

/// The mixer trained with the basis in `<assets>/looks/` (whatever reader the tool has), and
/// its file.
pub fn trained_mixer(assets: &Path) -> Result<(Mixer, TensorFile, std::path::PathBuf)> {
    let path = assets.join(prism_text::look::LOOKS_DIR).join(MIXER_FILE);
    let file = TensorFile::read(&path).with_context(|| format!("the look mixer {}", path.display()))?;
    Ok((Mixer::from_tensors(tensors(&file, MIXER_TENSORS)?), file, path))
}

/// Fits the reader of the look tool in `<assets>/looks/` for `steps` full-batch steps and writes
/// it beside the mixer (replacing an earlier reader).
pub fn widen_look(assets: &Path, steps: usize, lr: f64) -> Result<WidenReport> {
    let encoder = SentenceEncoder::load(assets)?;
    let (mixer, mut file, path) = trained_mixer(assets)?;

    // Each look's weights: the mean the photo-trained phrasings of that look (or pair) get.
    let trained = requests(Look::phrasings);
    let targets = look_targets(&trained, &mixer.weights(&embed(&encoder, &trained)?)?.to_vec2::<f32>()?);
    let names: Vec<String> = targets.keys().cloned().collect();
    let looks: Vec<f32> = targets.values().flatten().copied().collect();
    let directions = mixer.directions()?;
    ensure!(
        looks.len() == names.len() * directions,
        "the look mixer gives {} weights for {} looks of {directions} directions",
        looks.len(),
        names.len()
    );

    let mut taught = trained.clone();
    taught.extend(requests(Look::more_phrasings));
    let mut onehot = vec![0f32; taught.len() * names.len()];
    for (row, request) in taught.iter().enumerate() {
        let key = look_key(request);
        let look = names.iter().position(|n| *n == key).with_context(|| format!("no trained phrasing asks for {key}"))?;
        onehot[row * names.len() + look] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (taught.len(), names.len()), &Device::Cpu)?;
    let inputs = embed(&encoder, &taught)?;
    let vars: Vec<Var> =
        mixer_init(inputs.dim(1)?, names.len(), 0x4ead)?.iter().map(Var::from_tensor).collect::<Result<_, _>>()?;
    let classifier = |vars: &[Var]| Mixer::from_tensors(std::array::from_fn(|i| vars[i].as_tensor().clone()));
    let loss = |vars: &[Var]| -> Result<Tensor> {
        let log_p = candle_nn::ops::log_softmax(&classifier(vars).weights(&inputs)?, D::Minus1)?;
        Ok((log_p * &onehot)?.sum(D::Minus1)?.mean_all()?.neg()?)
    };
    let loss_before = loss(&vars)?.to_scalar::<f32>()? as f64;
    let mut adam = Adam::new(&vars, lr, 0.0)?;
    for step in 0..steps {
        adam.lr = learning_rate(lr, step, steps);
        let grads = loss(&vars)?.backward()?;
        adam.step(&vars, &grads)?;
    }
    let loss_after = loss(&vars)?.to_scalar::<f32>()? as f64;
    ensure!(loss_after.is_finite(), "fitting the look reader diverged");
    let picked = classifier(&vars).weights(&inputs)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let labels = onehot.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let taught_right = picked.iter().zip(&labels).filter(|(a, b)| a == b).count();

    for (name, var) in READER_TENSORS.iter().zip(&vars) {
        let tensor = var.as_tensor();
        file.tensors.insert(name.to_string(), RawTensor::from_f32(tensor.dims().to_vec(), &tensor.flatten_all()?.to_vec1()?));
    }
    file.tensors.insert(READER_LOOKS.into(), RawTensor::from_f32(vec![names.len(), directions], &looks));
    file.metadata.insert(READER_NAMES.into(), names.join(","));
    file.metadata.insert("reader_phrasings".into(), taught.len().to_string());
    file.write(&path)?;
    Ok(WidenReport {
        trained_requests: trained.len(),
        taught_requests: taught.len(),
        looks: names.len(),
        loss_before,
        loss_after,
        taught_right,
    })
}
