//! How far the smooth and harmonic hole fills alone go on held-out removals: the eval's stroke
//! masks (the same crops and strokes as `prism-adapters eval`) and pasted objects (tux paint
//! cut-outs 15-40% of the crop), with the files the OpenCV peers need:
//! `data/hole_fill/{strokes,objects}/<photo>_{clean,input,mask,smooth,harmonic}.png`.
//! `cargo run --release -p prism-adapters --example hole_fill_alone`, then
//! `python3 adapters/scripts/hole_fill_peers.py data/hole_fill/strokes` (and `.../objects`) for
//! Telea, NS and FSR on them.

use std::path::Path;

use prism_adapters::data::{read_named_images, read_stamps};
use prism_adapters::eval::EVAL_CROP;
use prism_adapters::tasks::{Example, Task, degrade_for_eval, object_removal_for_eval, psnr};
use prism_engine::hole_fill::HoleFill;
use prism_engine::imageio::{Picture, RgbImage, save_picture};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Makes one held-out removal from a clean crop.
type MakeExample<'a> = &'a dyn Fn(&RgbImage, &mut StdRng) -> Example;

fn save(path: &Path, rgb: RgbImage) -> anyhow::Result<()> {
    Ok(save_picture(path, &Picture { rgb, alpha: None, sixteen_bit: false }, &[])?)
}

fn main() -> anyhow::Result<()> {
    let data = Path::new("data");
    let photos = read_named_images(&data.join("photos/heldout"))?;
    let stamps = read_stamps(&data.join("stamps"))?;
    let kinds: [(&str, MakeExample); 2] = [
        ("strokes", &|clean, rng| degrade_for_eval(Task::Remove, clean, rng)),
        ("objects", &|clean, rng| object_removal_for_eval(clean, &stamps, rng)),
    ];
    let fills = [HoleFill::Smooth, HoleFill::Harmonic];
    for (kind, make) in kinds {
        let out = data.join("hole_fill").join(kind);
        std::fs::create_dir_all(&out)?;
        let mut totals = [0.0; 2];
        for (i, (name, photo)) in photos.iter().enumerate() {
            let (w, h) = (EVAL_CROP.min(photo.width) / 2 * 2, EVAL_CROP.min(photo.height) / 2 * 2);
            let clean = photo.crop_clamped(((photo.width - w) / 2) as isize, ((photo.height - h) / 2) as isize, w, h);
            let example = make(&clean, &mut StdRng::seed_from_u64(1000 + i as u64));
            let hidden: Vec<bool> = example.mask.data.iter().map(|&m| m > prism_engine::job::HIDDEN).collect();
            let mut line = format!("{kind} {name:24}");
            for (fill, total) in fills.iter().zip(&mut totals) {
                let filled = fill.fill(&example.input, &hidden).expect("not blank");
                let db = psnr(&filled, &clean, Some(&example.mask));
                *total += db;
                line += &format!(" {fill:?} {db:.2} dB");
                save(&out.join(format!("{name}_{}.png", format!("{fill:?}").to_lowercase())), filled)?;
            }
            println!("{line} in the mask");
            let mask_rgb = RgbImage { width: w, height: h, data: example.mask.data.iter().flat_map(|&m| [m; 3]).collect() };
            save(&out.join(format!("{name}_clean.png")), clean)?;
            save(&out.join(format!("{name}_input.png")), example.input)?;
            save(&out.join(format!("{name}_mask.png")), mask_rgb)?;
        }
        for (fill, total) in fills.iter().zip(totals) {
            println!("{kind}, {fill:?}: mean over {} photos {:.2} dB", photos.len(), total / photos.len().max(1) as f64);
        }
    }
    Ok(())
}
