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
use prism_adapters::tasks::{RemovalMask, psnr, removals_for_eval};
use prism_engine::hole_fill::HoleFill;
use prism_engine::imageio::{Picture, RgbImage, save_picture};

fn save(path: &Path, rgb: RgbImage) -> anyhow::Result<()> {
    Ok(save_picture(path, &Picture { rgb, alpha: None, sixteen_bit: false }, &[])?)
}

fn folder(kind: RemovalMask) -> &'static str {
    match kind {
        RemovalMask::Strokes => "strokes",
        RemovalMask::Object => "objects",
    }
}

fn main() -> anyhow::Result<()> {
    let data = Path::new("data");
    let photos = read_named_images(&data.join("photos/heldout"))?;
    let stamps = read_stamps(&data.join("stamps"))?;
    let fills = [HoleFill::Smooth, HoleFill::Harmonic];
    // Mean PSNR in the mask per mask kind (strokes, objects) and fill.
    let mut totals = [[0.0; 2]; 2];
    for (i, (name, photo)) in photos.iter().enumerate() {
        let (w, h) = (EVAL_CROP.min(photo.width) / 2 * 2, EVAL_CROP.min(photo.height) / 2 * 2);
        let clean = photo.crop_clamped(((photo.width - w) / 2) as isize, ((photo.height - h) / 2) as isize, w, h);
        for (k, (kind, example)) in removals_for_eval(&clean, &stamps, 1000 + i as u64).into_iter().enumerate() {
            let out = data.join("hole_fill").join(folder(kind));
            std::fs::create_dir_all(&out)?;
            let hidden: Vec<bool> = example.mask.data.iter().map(|&m| m > prism_engine::job::HIDDEN).collect();
            let mut line = format!("{} {name:24}", folder(kind));
            for (fill, total) in fills.iter().zip(&mut totals[k]) {
                let filled = fill.fill(&example.input, &hidden).expect("not blank");
                let db = psnr(&filled, &clean, Some(&example.mask));
                *total += db;
                line += &format!(" {fill:?} {db:.2} dB");
                save(&out.join(format!("{name}_{}.png", format!("{fill:?}").to_lowercase())), filled)?;
            }
            println!("{line} in the mask");
            let mask_rgb = RgbImage { width: w, height: h, data: example.mask.data.iter().flat_map(|&m| [m; 3]).collect() };
            save(&out.join(format!("{name}_clean.png")), clean.clone())?;
            save(&out.join(format!("{name}_input.png")), example.input)?;
            save(&out.join(format!("{name}_mask.png")), mask_rgb)?;
        }
    }
    for (kind, kind_totals) in [RemovalMask::Strokes, RemovalMask::Object].into_iter().zip(totals) {
        for (fill, total) in fills.iter().zip(kind_totals) {
            let mean = total / photos.len().max(1) as f64;
            println!("{}, {fill:?}: mean over {} photos {mean:.2} dB", folder(kind), photos.len());
        }
    }
    Ok(())
}
