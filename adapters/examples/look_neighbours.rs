//! Reads the dev single-look phrasings two ways and says how far each lands from the weights the
//! mixer trained with the basis gives that look's photo-trained phrasings (their mean: the
//! target): that mixer (not the reader), and a kernel estimate over the phrasebook (the trained
//! and widening phrasings' targets, weighted by `exp(TAU * (similarity - best similarity))` over
//! the `K` nearest). Prints each phrasing's two distances and the target's length, then the
//! totals.
//! `cargo run --release -p prism-adapters --example look_neighbours -- [TAU] [K]` (30, 8)
use std::path::Path;

use prism_adapters::look_widen::{look_key, look_targets, trained_mixer};
use prism_adapters::looks::{Look, requests};
use prism_text::SentenceEncoder;

fn dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt()
}

fn main() -> anyhow::Result<()> {
    let tau: f32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30.0);
    let nearest: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let encoder = SentenceEncoder::load(Path::new("assets"))?;
    let (mixer, _, _) = trained_mixer(Path::new("assets"))?;
    let weights_of = |e: &prism_text::Embedding| -> anyhow::Result<Vec<f32>> {
        let row = candle_core::Tensor::from_vec(e.0.clone(), (1, e.0.len()), &candle_core::Device::Cpu)?;
        Ok(mixer.weights(&row)?.squeeze(0)?.to_vec1::<f32>()?)
    };
    let trained = requests(Look::phrasings);
    let mut book = Vec::new();
    let mut weights = Vec::new();
    for r in &trained {
        let e = encoder.encode(&r.text)?;
        weights.push(weights_of(&e)?);
        book.push((e, look_key(r)));
    }
    for r in requests(Look::more_phrasings) {
        book.push((encoder.encode(&r.text)?, look_key(&r)));
    }
    let target = look_targets(&trained, &weights);
    let mut totals = [0.0f32; 2];
    for r in requests(Look::dev_phrasings).into_iter().filter(|r| r.looks.len() == 1) {
        let e = encoder.encode(&r.text)?;
        let mlp = weights_of(&e)?;
        let mut sims: Vec<(f32, &String)> =
            book.iter().map(|(x, k)| (x.0.iter().zip(&e.0).map(|(a, b)| a * b).sum(), k)).collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut kernel = vec![0.0f32; mlp.len()];
        let mut total_weight = 0.0;
        for (similarity, look) in sims.iter().take(nearest) {
            let weight = (tau * (similarity - sims[0].0)).exp();
            total_weight += weight;
            kernel.iter_mut().zip(&target[*look]).for_each(|(k, t)| *k += weight * t);
        }
        kernel.iter_mut().for_each(|k| *k /= total_weight);
        let t = &target[&look_key(&r)];
        let (from_mixer, from_kernel) = (dist(&mlp, t), dist(&kernel, t));
        totals[0] += from_mixer;
        totals[1] += from_kernel;
        println!(
            "mixer {:>6.3}  kernel {:>6.3}  target length {:.3}  '{}'",
            from_mixer,
            from_kernel,
            t.iter().map(|v| v * v).sum::<f32>().sqrt(),
            r.text
        );
    }
    println!("total: mixer {:.3}, kernel {:.3}", totals[0], totals[1]);
    Ok(())
}
