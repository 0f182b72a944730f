//! Compares ways of reading a look request's embedding, in embedding space, on the dev phrasings
//! (`Look::dev_phrasings`; the reader was chosen when they were the fourth set): the mixer
//! trained with the basis, and readers fitted to the phrasebook (the trained and widening
//! phrasings) with the targets the photo-trained phrasings of each look get. Prints, for
//! singles and pairs, the mean distance to the target and how often the reading lands nearer its
//! own look's target than any other look's (a proxy for the direction; `eval-look --phrasings dev`
//! is the measure).
//! `cargo run --release -p prism-adapters --example mixer_designs`
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use candle_core::{D, DType, Device, Tensor, Var};
use prism_adapters::look_widen::{look_key, look_targets, trained_mixer};
use prism_adapters::looks::{Look, LookRequest, requests};
use prism_adapters::train::{Adam, learning_rate};
use prism_text::SentenceEncoder;

fn embed(encoder: &SentenceEncoder, requests: &[LookRequest]) -> anyhow::Result<Tensor> {
    let mut values = Vec::new();
    let texts: Vec<&str> = requests.iter().map(|r| r.text.as_str()).collect();
    for chunk in texts.chunks(32) {
        for e in encoder.encode_batch(chunk)? {
            values.extend(e.0);
        }
    }
    let dim = values.len() / requests.len();
    Ok(Tensor::from_vec(values, (requests.len(), dim), &Device::Cpu)?)
}

struct Scored {
    single_distance: f32,
    single_right: usize,
    singles: usize,
    pair_distance: f32,
    pair_right: usize,
    pairs: usize,
}

fn score(pred: &[Vec<f32>], dev: &[LookRequest], targets: &BTreeMap<String, Vec<f32>>) -> Scored {
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt();
    let mut s = Scored { single_distance: 0.0, single_right: 0, singles: 0, pair_distance: 0.0, pair_right: 0, pairs: 0 };
    for (p, r) in pred.iter().zip(dev) {
        let key = look_key(r);
        let d = dist(p, &targets[&key]);
        let nearest = targets.iter().min_by(|a, b| dist(p, a.1).total_cmp(&dist(p, b.1))).map(|(k, _)| k.clone());
        let right = usize::from(nearest.as_ref() == Some(&key));
        if r.looks.len() == 1 {
            s.single_distance += d;
            s.single_right += right;
            s.singles += 1;
        } else {
            s.pair_distance += d;
            s.pair_right += right;
            s.pairs += 1;
        }
    }
    s
}

fn print(name: &str, s: &Scored) {
    println!(
        "{name:<44} singles {:>5.3} {:>2}/{}   pairs {:>5.3} {:>2}/{}",
        s.single_distance / s.singles as f32,
        s.single_right,
        s.singles,
        s.pair_distance / s.pairs as f32,
        s.pair_right,
        s.pairs
    );
}

/// An MLP `dim -> hidden -> out` (or linear when hidden is 0), at a random start.
fn mlp_vars(dim: usize, hidden: usize, out: usize) -> anyhow::Result<Vec<Var>> {
    let dev = &Device::Cpu;
    Ok(if hidden == 0 {
        vec![
            Var::from_tensor(&(Tensor::randn(0f32, 1.0, (dim, out), dev)? / (dim as f64).sqrt())?)?,
            Var::zeros(out, DType::F32, dev)?,
        ]
    } else {
        vec![
            Var::from_tensor(&(Tensor::randn(0f32, 1.0, (dim, hidden), dev)? / (dim as f64).sqrt())?)?,
            Var::zeros(hidden, DType::F32, dev)?,
            Var::from_tensor(&(Tensor::randn(0f32, 1.0, (hidden, out), dev)? / (hidden as f64).sqrt())?)?,
            Var::zeros(out, DType::F32, dev)?,
        ]
    })
}

fn log_softmax(x: &Tensor) -> anyhow::Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?;
    Ok(shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?)
}

fn mlp(vars: &[Var], x: &Tensor) -> anyhow::Result<Tensor> {
    let v: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
    Ok(if v.len() == 2 {
        x.matmul(v[0])?.broadcast_add(v[1])?
    } else {
        x.matmul(v[0])?.broadcast_add(v[1])?.gelu_erf()?.matmul(v[2])?.broadcast_add(v[3])?
    })
}

#[derive(Clone, Copy)]
struct Fit {
    hidden: usize,
    steps: usize,
    lr: f64,
    weight_decay: f64,
    noise: f64,
    /// Classifier over looks (softmax, then the targets' mix) instead of regression to weights.
    classify: bool,
    smoothing: f64,
}

fn fit(
    f: Fit,
    inputs: &Tensor,
    labels: &[usize],
    key_targets: &Tensor,
    target_rows: &Tensor,
) -> anyhow::Result<impl Fn(&Tensor) -> anyhow::Result<Tensor>> {
    let (n, dim) = inputs.dims2()?;
    let keys = key_targets.dim(0)?;
    let basis = key_targets.dim(1)?;
    let vars = mlp_vars(dim, f.hidden, if f.classify { keys } else { basis })?;
    let mut onehot = vec![f.smoothing as f32 / keys as f32; n * keys];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * keys + l] += 1.0 - f.smoothing as f32;
    }
    let onehot = Tensor::from_vec(onehot, (n, keys), &Device::Cpu)?;
    let mut adam = Adam::new(&vars, f.lr, f.weight_decay)?;
    for step in 0..f.steps {
        adam.lr = learning_rate(f.lr, step, f.steps);
        let x =
            if f.noise > 0.0 { (inputs + Tensor::randn(0f32, f.noise as f32, (n, dim), &Device::Cpu)?)? } else { inputs.clone() };
        let out = mlp(&vars, &x)?;
        let loss = if f.classify {
            (log_softmax(&out)? * &onehot)?.sum(D::Minus1)?.mean_all()?.neg()?
        } else {
            (out - target_rows)?.sqr()?.mean_all()?
        };
        adam.step(&vars, &loss.backward()?)?;
    }
    let key_targets = key_targets.clone();
    Ok(move |x: &Tensor| -> anyhow::Result<Tensor> {
        let out = mlp(&vars, x)?;
        Ok(if f.classify { log_softmax(&out)?.exp()?.matmul(&key_targets)? } else { out })
    })
}

fn main() -> anyhow::Result<()> {
    let assets = Path::new("assets");
    let encoder = SentenceEncoder::load(assets)?;
    let (mixer, _, _) = trained_mixer(assets)?;
    let trained = requests(Look::phrasings);
    let trained_e = embed(&encoder, &trained)?;
    let targets = look_targets(&trained, &mixer.weights(&trained_e)?.to_vec2::<f32>()?);
    let keys: Vec<String> = targets.keys().cloned().collect();
    let key_targets = Tensor::from_vec(
        targets.values().flatten().copied().collect::<Vec<f32>>(),
        (keys.len(), targets.values().next().context("no looks")?.len()),
        &Device::Cpu,
    )?;

    let mut book = trained.clone();
    book.extend(requests(Look::more_phrasings));
    let book_e = embed(&encoder, &book)?;
    let labels: Vec<usize> = book
        .iter()
        .map(|r| keys.iter().position(|k| *k == look_key(r)).context("a phrasebook look no trained phrasing asks for"))
        .collect::<anyhow::Result<_>>()?;
    let target_rows = Tensor::from_vec(
        labels.iter().flat_map(|&l| targets[&keys[l]].clone()).collect::<Vec<f32>>(),
        (book.len(), key_targets.dim(1)?),
        &Device::Cpu,
    )?;

    let dev = requests(Look::dev_phrasings);
    let dev_e = embed(&encoder, &dev)?;
    let rows = |t: Tensor| -> anyhow::Result<Vec<Vec<f32>>> { Ok(t.to_vec2::<f32>()?) };
    print("the trained mixer", &score(&rows(mixer.weights(&dev_e)?)?, &dev, &targets));
    let base = Fit { hidden: 64, steps: 3000, lr: 1e-3, weight_decay: 0.0, noise: 0.0, classify: false, smoothing: 0.0 };
    let c = Fit { classify: true, ..base };
    let designs: Vec<(&str, Fit)> = vec![
        ("regress h64", base),
        ("regress h64 noise 0.02", Fit { noise: 0.02, ..base }),
        ("regress h64 wd 1e-2", Fit { weight_decay: 1e-2, ..base }),
        ("regress linear", Fit { hidden: 0, ..base }),
        ("classify h64 (the reader)", c),
        ("classify h64 noise 0.02", Fit { noise: 0.02, ..c }),
        ("classify h64 smooth 0.1", Fit { smoothing: 0.1, ..c }),
        ("classify h64 wd 1e-2", Fit { weight_decay: 1e-2, ..c }),
        ("classify h128", Fit { hidden: 128, ..c }),
        ("classify linear", Fit { hidden: 0, lr: 1e-2, ..c }),
    ];
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt();
    for (name, f) in designs {
        let reader = fit(f, &book_e, &labels, &key_targets, &target_rows)?;
        let pred = rows(reader(&dev_e)?)?;
        print(name, &score(&pred, &dev, &targets));
        if f.classify && f.hidden == 64 && f.noise == 0.0 && f.smoothing == 0.0 && f.weight_decay == 0.0 {
            for (p, r) in pred.iter().zip(&dev) {
                let nearest = keys.iter().min_by(|a, b| dist(p, &targets[*a]).total_cmp(&dist(p, &targets[*b])));
                if nearest != Some(&look_key(r)) {
                    println!("    {:<60} -> {nearest:?} ({:.2} from its own)", r.text, dist(p, &targets[&look_key(r)]));
                }
            }
        }
    }
    Ok(())
}
