//! The upscale tool's first passes alone on a folder of photos: each `NAME_clean.png` (or every PNG
//! or JPEG in the folder when none is named so) shrunk by 2x2 block means, rounded to 8 bits, and
//! doubled again by Catmull-Rom, by Lanczos-3 block-matched and by the learned doubling the
//! engine ships; PSNR against the photo. With OUT_DIR given, the learned doubling of each is
//! written there as `NAME_first.png`, to study beside the model's output. Choose on training
//! photos; the eval's `data/eval/upscale` shows the held-out effect.
//!
//! `cargo run --release -p prism-engine --example upscale_prepass -- DIR [OUT_DIR]`

use std::path::PathBuf;

use prism_engine::imageio::{DEFAULT_MAX_PIXELS, RgbImage, load_picture};
use prism_engine::upscale_prepass::Upsampling;

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let quantized = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (quantized(*x) - quantized(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}

fn quantize8(image: &RgbImage) -> RgbImage {
    let data = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0).collect();
    RgbImage { width: image.width, height: image.height, data }
}

fn save_png(path: &std::path::Path, image: &RgbImage) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let buffer = image::RgbImage::from_raw(image.width as u32, image.height as u32, bytes).ok_or("image size")?;
    buffer.save(path)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: upscale_prepass DIR [OUT_DIR]")?);
    let out_dir = args.next().map(PathBuf::from);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    let clean: Vec<PathBuf> = files.iter().filter(|p| p.to_string_lossy().ends_with("_clean.png")).cloned().collect();
    let photos = if clean.is_empty() {
        files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg" || e == "jpeg")).collect()
    } else {
        clean
    };
    let methods = [Upsampling::CatmullRom, Upsampling::BlockMatched, Upsampling::Learned];
    let mut sums = [0f64; 3];
    for path in &photos {
        let photo = load_picture(path, DEFAULT_MAX_PIXELS)?.rgb;
        let photo = photo.crop_clamped(0, 0, photo.width / 2 * 2, photo.height / 2 * 2);
        let low = quantize8(&photo.box_halved());
        let name = path.file_name().unwrap_or_default().to_string_lossy().replace("_clean.png", "");
        print!("{name:<44}");
        for (sum, method) in sums.iter_mut().zip(methods) {
            let doubled = method.enlarge(&low, 2)?;
            let score = psnr(&doubled, &photo);
            print!(" {score:6.2}");
            *sum += score;
            if let (Some(out), Upsampling::Learned) = (&out_dir, method) {
                save_png(&out.join(format!("{name}_first.png")), &doubled)?;
            }
        }
        println!();
    }
    let n = photos.len().max(1) as f64;
    println!(
        "{:<44} {:6.3} {:6.3} {:6.3}  (Catmull-Rom, Lanczos-3 block-matched, learned)",
        "mean",
        sums[0] / n,
        sums[1] / n,
        sums[2] / n
    );
    Ok(())
}
