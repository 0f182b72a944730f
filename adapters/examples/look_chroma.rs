//! How much colour a look prompt leaves, by the photo's size: the held-out photos shrunk to a long
//! side of 64, 128, 256 and 512 px, each run whole through the engine path (float and int8), mean
//! chroma before and after, and each photo's at 256 px (the size `eval-look` checks "black and
//! white" at: under 0.01). With `--out DIR`, each photo's result at 256 px and its chroma map
//! (x10) are written there, to see where the colour stays.
//! `cargo run --release -p prism-adapters --example look_chroma -- [--out DIR] ASSETS "PROMPT"`
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use prism_adapters::data::read_images;
use prism_adapters::looks::LookStats;
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::imageio::{Picture, RgbImage, save_picture};
use prism_engine::job::{DEFAULT_CONTEXT, EditJob, run_edit};
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use prism_text::Prompter;

const SIDES: [usize; 4] = [64, 128, 256, 512];
const CHECKED_SIDE: usize = 256;

fn shrunk(photo: &RgbImage, side: usize) -> RgbImage {
    let scale = side as f32 / photo.width.max(photo.height) as f32;
    photo.resized(((photo.width as f32 * scale).round() as usize).max(8), ((photo.height as f32 * scale).round() as usize).max(8))
}

/// Each pixel's chroma (as `LookStats` measures it), x10, as a grey picture.
fn chroma_map(image: &RgbImage) -> RgbImage {
    let data = image
        .data
        .chunks_exact(3)
        .flat_map(|p| {
            let luma = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            [10.0 * p.iter().map(|c| (c - luma).abs()).sum::<f32>() / 3.0; 3]
        })
        .collect();
    RgbImage { width: image.width, height: image.height, data }
}

fn save(path: PathBuf, rgb: RgbImage) -> anyhow::Result<()> {
    Ok(save_picture(&path, &Picture { rgb, alpha: None, sixteen_bit: false }, &[])?)
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let out = if args.first().map(String::as_str) == Some("--out") {
        let dir = PathBuf::from(args.get(1).context("--out DIR")?);
        args.drain(..2);
        std::fs::create_dir_all(&dir)?;
        Some(dir)
    } else {
        None
    };
    let assets = PathBuf::from(args.first().context("ASSETS")?);
    let prompt = args.get(1).context("PROMPT")?;
    let model = Model::load(&assets)?;
    let metas: Vec<_> = model.shipped_adapters().iter().filter_map(|p| model.read_adapter(p).ok().map(|a| a.meta)).collect();
    let prompter = Prompter::load(&assets, &metas)?;
    let maker = prompter.looks().context("this model has no look tool")?;
    let made = maker.make(&prompter.encoder().encode(prompt)?)?;
    let mix = Mix::single(made.meta.name.clone());
    let mut backend = ReferenceBackend::new(model.clone());
    backend.install(&made)?;
    let photos = read_images(Path::new("data/photos/heldout"))?;
    anyhow::ensure!(!photos.is_empty(), "no held-out photos; run `prism-adapters data fetch`");
    for side in SIDES {
        let (mut before, mut float, mut int8) = (0.0, 0.0, 0.0);
        let mut checked = Vec::new();
        for (index, photo) in photos.iter().enumerate() {
            let photo = shrunk(photo, side);
            before += LookStats::of(&photo).chroma;
            for precision in [Precision::Float, Precision::Int8] {
                let job = EditJob {
                    id: 0,
                    image: Arc::new(photo.clone()),
                    mask: None,
                    mix: mix.clone(),
                    strength: 1.0,
                    precision: Some(precision),
                    exposure: None,
                    blur_size: None,
                    noise_level: None,
                    context: DEFAULT_CONTEXT,
                    texture: prism_engine::job::DEFAULT_TEXTURE,
                };
                let result = run_edit(&mut backend, &job, &mut |_, _| true)?.0;
                let chroma = LookStats::of(&result).chroma;
                if precision == Precision::Float {
                    float += chroma;
                    continue;
                }
                int8 += chroma;
                if side == CHECKED_SIDE {
                    checked.push(format!("{chroma:.4}"));
                    if let Some(dir) = &out {
                        save(dir.join(format!("map{index:02}.png")), chroma_map(&result))?;
                        save(dir.join(format!("result{index:02}.png")), result)?;
                    }
                }
            }
        }
        let n = photos.len() as f32;
        println!("long side {side}: mean chroma before {:.4}, after float {:.4}, int8 {:.4}", before / n, float / n, int8 / n);
        if !checked.is_empty() {
            println!("  each photo, int8: {}", checked.join(" "));
        }
    }
    Ok(())
}
