//! The upscale tool's first pass alone on a folder of photos: each `NAME_clean.png` (or every PNG
//! or JPEG in the folder when none is named so) shrunk by 2x2 block means, rounded to 8 bits, and
//! doubled again by Catmull-Rom (the pass before) and by `first_pass_double`; PSNR against the
//! photo. Choose on training photos; the eval's `data/eval/upscale` shows the held-out effect.
//!
//! `cargo run --release -p prism-engine --example upscale_prepass -- DIR`

use std::path::PathBuf;

use prism_engine::imageio::{DEFAULT_MAX_PIXELS, RgbImage, load_picture};
use prism_engine::upscale_prepass::first_pass_double;

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let quantized = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (quantized(*x) - quantized(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}

fn quantize8(image: &RgbImage) -> RgbImage {
    let data = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0).collect();
    RgbImage { width: image.width, height: image.height, data }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: upscale_prepass DIR")?);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    let clean: Vec<PathBuf> = files.iter().filter(|p| p.to_string_lossy().ends_with("_clean.png")).cloned().collect();
    let photos = if clean.is_empty() {
        files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg" || e == "jpeg")).collect()
    } else {
        clean
    };
    let mut sums = [0f64; 2];
    for path in &photos {
        let photo = load_picture(path, DEFAULT_MAX_PIXELS)?.rgb;
        let photo = photo.crop_clamped(0, 0, photo.width / 2 * 2, photo.height / 2 * 2);
        let low = quantize8(&photo.box_halved());
        let scores = [psnr(&low.resized(photo.width, photo.height), &photo), psnr(&first_pass_double(&low), &photo)];
        println!("{:<44} {:6.2} {:6.2}", path.file_name().unwrap_or_default().to_string_lossy(), scores[0], scores[1]);
        for (sum, score) in sums.iter_mut().zip(scores) {
            *sum += score;
        }
    }
    let n = photos.len().max(1) as f64;
    println!("{:<44} {:6.3} {:6.3}  (Catmull-Rom, first pass)", "mean", sums[0] / n, sums[1] / n);
    Ok(())
}
