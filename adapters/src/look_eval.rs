//! Measures the prompt-guided tool as a user meets it: held-out phrasings (never trained on), on
//! held-out photos (never trained on), through the prompt encoder, the router's choice, the
//! adapter the prompt makes and the engine's int8 path. For each request: is the tool chosen,
//! does the result move the way the words say, and how close is it to the exact edit (PSNR).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::imageio::RgbImage;
use prism_engine::job::{EditJob, run_edit};
use prism_engine::model::Model;
use prism_text::Prompter;

use crate::data::read_images;
use crate::looks::{Look, LookRequest, LookStats, requests};
use crate::tasks::psnr;

/// Long side the held-out photos are shrunk to (whole photos, as a user runs a look).
const SIDE: usize = 256;

/// How a request reaches the look tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Reach {
    /// Through the router, as the prompt box and `prism edit --prompt` do: a request the router
    /// sends elsewhere is counted as not routed and not scored (routing has its own measure).
    Routed,
    /// Every request is made into the look tool's adapter, whatever the router says: the tool
    /// alone, on every held-out phrasing.
    Tool,
}

/// One check whose direction came out wrong, with the statistics behind it.
#[derive(Debug, serde::Serialize)]
pub struct FailedCheck {
    pub text: String,
    pub photo: usize,
    pub before: LookStats,
    pub after: LookStats,
    pub exact: LookStats,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct LookScore {
    pub requests: usize,
    pub routed_to_look: usize,
    pub direction_right: usize,
    /// The same checks on the float path: where int8 and float disagree, rounding decided.
    pub direction_right_float: usize,
    pub checks: usize,
    /// Checks the exact edit itself passes (all of them, or a check is wrong).
    pub exact_right: usize,
    pub mean_psnr: f64,
    pub mean_psnr_float: f64,
}

/// Scores of single looks and of pairs, and per look.
#[derive(Debug, serde::Serialize)]
pub struct LookReport {
    pub single: LookScore,
    pub pairs: LookScore,
    pub per_look: BTreeMap<String, (f64, usize, usize)>,
    /// Single-look checks whose direction came out wrong.
    pub failed: Vec<FailedCheck>,
    /// Requests the router sent elsewhere: the text and what it chose instead (or why nothing).
    pub not_routed: Vec<(String, String)>,
}

fn shrink(image: &RgbImage) -> RgbImage {
    let scale = SIDE as f32 / image.width.max(image.height) as f32;
    if scale >= 1.0 {
        return image.clone();
    }
    image.resized(((image.width as f32 * scale).round() as usize).max(8), ((image.height as f32 * scale).round() as usize).max(8))
}

/// Scores the look tool on the requests made of `phrasings` (`Look::heldout_phrasings` for the
/// claim; `Look::phrasings` shows what the basis reaches where the mixer was trained).
pub fn eval_look(
    data_dir: &Path,
    assets: &Path,
    phrasings: fn(Look) -> &'static [&'static str],
    reach: Reach,
) -> Result<LookReport> {
    let model = Model::load(assets)?;
    let photos: Vec<RgbImage> = read_images(&data_dir.join("photos/heldout"))?.iter().map(shrink).collect();
    anyhow::ensure!(!photos.is_empty(), "no held-out photos in {}; run `prism-adapters data fetch`", data_dir.display());
    let metas: Vec<_> = model.shipped_adapters().iter().filter_map(|p| model.read_adapter(p).ok().map(|a| a.meta)).collect();
    let prompter = Prompter::load(assets, &metas)?;
    let maker = prompter.looks().context("this model has no look tool; run `prism-adapters train-look`")?;
    let look_name = maker.meta().name.clone();
    let mut backend = ReferenceBackend::new(model.clone());
    let mut single = LookScore::default();
    let mut pairs = LookScore::default();
    let mut per_look: BTreeMap<String, (f64, usize, usize)> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut not_routed = Vec::new();
    for (index, request) in requests(phrasings).iter().enumerate() {
        let score = if request.looks.len() == 1 { &mut single } else { &mut pairs };
        score.requests += 1;
        // Routed for the first photo the request runs on (every held-out photo has its colours).
        let routed = match prompter.choose(&request.text, Some(&photos[index % photos.len()])) {
            Ok(chosen) if chosen.mix.names().any(|n| n == look_name) => Some(chosen),
            Ok(chosen) => {
                not_routed.push((request.text.clone(), chosen.mix.names().collect::<Vec<_>>().join(" + ")));
                None
            }
            Err(error) => {
                not_routed.push((request.text.clone(), error.to_string()));
                None
            }
        };
        score.routed_to_look += usize::from(routed.is_some());
        let made = match (reach, routed) {
            (Reach::Routed, None) => continue,
            (Reach::Routed, Some(chosen)) => chosen.made.context("the look tool was chosen but made no adapter")?,
            (Reach::Tool, _) => maker.make(&prompter.encoder().encode(&request.text)?)?,
        };
        backend.remove(&made.meta.name);
        backend.install(&made)?;
        // Each request on a few photos (all of them would take long on two cores).
        for (photo_index, photo) in photos.iter().enumerate().cycle().skip(index % photos.len()).take(3) {
            let exact = request.apply(photo);
            let run = |backend: &mut ReferenceBackend, precision| -> Result<RgbImage> {
                let job = EditJob {
                    id: 0,
                    image: Arc::new(photo.clone()),
                    mask: None,
                    mix: prism_engine::mix::Mix::single(look_name.clone()),
                    strength: 1.0,
                    precision: Some(precision),
                    exposure: None,
                    blur_size: None,
                    noise_level: None,
                    context: prism_engine::job::DEFAULT_CONTEXT,
                    texture: prism_engine::job::DEFAULT_TEXTURE,
                };
                Ok(run_edit(backend, &job, &mut |_, _| true)?.0)
            };
            let int8 = run(&mut backend, Precision::Int8)?;
            let float = run(&mut backend, Precision::Float)?;
            let right = request.looks.iter().all(|look| look.direction_holds(photo, &int8));
            let db = psnr(&int8, &exact, None);
            score.checks += 1;
            score.direction_right += usize::from(right);
            score.direction_right_float += usize::from(request.looks.iter().all(|look| look.direction_holds(photo, &float)));
            score.exact_right += usize::from(request.looks.iter().all(|look| look.direction_holds(photo, &exact)));
            if !right && request.looks.len() == 1 {
                failed.push(FailedCheck {
                    text: request.text.clone(),
                    photo: photo_index,
                    before: LookStats::of(photo),
                    after: LookStats::of(&int8),
                    exact: LookStats::of(&exact),
                });
            }
            score.mean_psnr += db;
            score.mean_psnr_float += psnr(&float, &exact, None);
            if let [look] = request.looks.as_slice() {
                let entry = per_look.entry(look.id().to_string()).or_default();
                entry.0 += db;
                entry.1 += 1;
                entry.2 += usize::from(right);
            }
        }
    }
    for score in [&mut single, &mut pairs] {
        let n = score.checks.max(1) as f64;
        score.mean_psnr /= n;
        score.mean_psnr_float /= n;
    }
    for entry in per_look.values_mut() {
        entry.0 /= entry.1.max(1) as f64;
    }
    Ok(LookReport { single, pairs, per_look, failed, not_routed })
}

/// What doing nothing scores against the exact looks on the same photos (the floor to beat).
pub fn identity_psnr(data_dir: &Path, phrasings: fn(Look) -> &'static [&'static str]) -> Result<f64> {
    let photos: Vec<RgbImage> = read_images(&data_dir.join("photos/heldout"))?.iter().map(shrink).collect();
    let all: Vec<LookRequest> = requests(phrasings).into_iter().filter(|r| r.looks.len() == 1).collect();
    let mut total = 0.0;
    for (index, request) in all.iter().enumerate() {
        let photo = &photos[index % photos.len()];
        total += psnr(photo, &request.apply(photo), None);
    }
    Ok(total / all.len().max(1) as f64)
}
