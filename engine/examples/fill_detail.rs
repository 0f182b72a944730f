//! How much of the extrapolation's detail a removal's fill should take (`fill_detail`): for every
//! `<name>_input.png` in DIR with its `_mask.png`, `_clean.png` and the model's fill
//! `_prism.png` (as `prism-adapters eval` or `--example removal_probe` write them), scores the
//! fill with the detail added at each gain: PSNR inside the mask and the sharpness
//! ratio (gradient energy inside the mask against the clean photo's, as `peers.py` scores it).
//! `cargo run --release -p prism-engine --example fill_detail -- DIR [--write GAIN] [--plate SHARE]`;
//! `--write` also saves `<name>_detail.png` at that gain; `--plate` first moves the fill that share
//! of the way from the harmonic guess to the thin plate (`HoleFill::toward_thin_plate`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use prism_engine::fill_detail::{DETAIL_GAIN, add_fill_detail};
use prism_engine::hole_fill::HoleFill;
use prism_engine::imageio::{Picture, RgbImage, load_mask, load_picture, save_picture};
use prism_engine::job::HIDDEN;

const GAINS: [f32; 8] = [0.0, 1.0, 1.4, 1.6, 1.8, 1.9, 2.0, 2.5];

/// Mean squared Sobel gradient of the luma over `inside`.
fn gradient_energy(image: &RgbImage, inside: &[bool]) -> f64 {
    let (w, h) = (image.width, image.height);
    let g = image.luma();
    let at = |x: isize, y: isize| g[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize] as f64;
    let (mut total, mut count) = (0.0, 0);
    for y in 0..h as isize {
        for x in 0..w as isize {
            if !inside[y as usize * w + x as usize] {
                continue;
            }
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            total += gx * gx + gy * gy;
            count += 1;
        }
    }
    total / count.max(1) as f64
}

fn psnr_inside(a: &RgbImage, b: &RgbImage, inside: &[bool]) -> f64 {
    let (mut total, mut count) = (0.0, 0);
    for (i, &m) in inside.iter().enumerate() {
        if m {
            for c in 0..3 {
                // Scored as saved: 8-bit.
                let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
                total += (q(a.data[i * 3 + c]) - q(b.data[i * 3 + c])).powi(2);
                count += 1;
            }
        }
    }
    10.0 * (255.0f64.powi(2) / (total / count.max(1) as f64).max(1e-12)).log10()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or("usage: fill_detail DIR [--write GAIN]")?);
    let write: Option<f32> =
        args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)).map(|g| g.parse()).transpose()?;
    let plate: f32 =
        args.iter().position(|a| a == "--plate").and_then(|i| args.get(i + 1)).map(|g| g.parse()).transpose()?.unwrap_or(0.0);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_input.png"))
        .collect();
    inputs.sort();
    // Per gain: summed PSNR and sharpness ratio.
    let mut totals = [[0.0f64; 2]; GAINS.len()];
    let mut seconds = 0.0;
    for input in &inputs {
        let stem = input.to_string_lossy().trim_end_matches("_input.png").to_string();
        let file = |suffix: &str| PathBuf::from(format!("{stem}_{suffix}.png"));
        let photo = load_picture(input, u64::MAX)?.rgb;
        let clean = load_picture(&file("clean"), u64::MAX)?.rgb;
        let inside: Vec<bool> = load_mask(&file("mask"), u64::MAX)?.data.iter().map(|&m| m > HIDDEN).collect();
        let fill = HoleFill::Harmonic.toward_thin_plate(&load_picture(&file("prism"), u64::MAX)?.rgb, &photo, &inside, plate);
        let clean_energy = gradient_energy(&clean, &inside).max(1e-12);
        for (total, &gain) in totals.iter_mut().zip(&GAINS) {
            let start = Instant::now();
            let out = add_fill_detail(&fill, &photo, &inside, gain);
            seconds += start.elapsed().as_secs_f64();
            total[0] += psnr_inside(&out, &clean, &inside);
            total[1] += gradient_energy(&out, &inside) / clean_energy;
        }
        if let Some(gain) = write {
            let out = add_fill_detail(&fill, &photo, &inside, gain);
            save_picture(Path::new(&file("detail")), &Picture { rgb: out, alpha: None, sixteen_bit: false }, &[])?;
        }
    }
    let n = inputs.len().max(1) as f64;
    println!(
        "{} removals in {}; the detail pass {:.2} s each (shipped gain {DETAIL_GAIN})",
        inputs.len(),
        dir.display(),
        seconds / n / GAINS.len() as f64
    );
    println!("| gain | PSNR in the mask | sharpness ratio |");
    println!("|---:|---:|---:|");
    for (&gain, [db, sharp]) in GAINS.iter().zip(totals) {
        println!("| {gain} | {:.2} dB | {:.3} |", db / n, sharp / n);
    }
    Ok(())
}
