//! The denoise tool's classical first pass alone on a folder of eval examples (`NAME_input.png`
//! beside `NAME_clean.png`, as `prism-adapters eval` writes them): PSNR at the estimated noise
//! level, what the estimate read (grain and JPEG), and the pass's time per megapixel.
//!
//! `cargo run --release -p prism-engine --example denoise_prepass -- data/eval/denoise`

use std::path::PathBuf;
use std::time::Instant;

use prism_engine::denoise_prepass::{dct_denoise, estimate_noise, grain_level, jpeg_level};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, RgbImage, load_picture};

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let quantized = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (quantized(*x) - quantized(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: denoise_prepass EVAL_TASK_DIR")?);
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix("_clean.png").map(str::to_string))
        .collect();
    names.sort();
    let (mut before, mut after, mut seconds, mut estimating, mut megapixels) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for name in &names {
        let clean = load_picture(&dir.join(format!("{name}_clean.png")), DEFAULT_MAX_PIXELS)?.rgb;
        let input = load_picture(&dir.join(format!("{name}_input.png")), DEFAULT_MAX_PIXELS)?.rgb;
        let start = Instant::now();
        let level = estimate_noise(&input);
        estimating += start.elapsed().as_secs_f64();
        let out = dct_denoise(&input, level);
        seconds += start.elapsed().as_secs_f64();
        megapixels += (input.width * input.height) as f64 / 1e6;
        let (b, a) = (psnr(&input, &clean), psnr(&out, &clean));
        let (grain, jpeg) = (grain_level(&input) * 255.0, jpeg_level(&input) * 255.0);
        println!("{name:16} level {:5.1} (grain {grain:5.1}, JPEG {jpeg:5.1})  input {b:5.2} dB  pass {a:5.2} dB", level * 255.0);
        before += b;
        after += a;
    }
    let n = names.len().max(1) as f64;
    println!(
        "mean over {}: input {:.2} dB, pass {:.2} dB; {:.2} s per megapixel ({:.2} of it estimating the level)",
        names.len(),
        before / n,
        after / n,
        seconds / megapixels,
        estimating / megapixels
    );
    Ok(())
}
