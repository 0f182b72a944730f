//! The sharpen tool's classical first pass alone on a folder of eval examples (`NAME_input.png`
//! beside `NAME_clean.png`, as `prism-adapters eval` writes them for sharpen: blurred at 2 px):
//! the blur size it reads and the blur's shape, PSNR of the pass it chooses
//! (`SharpenPass`), of the deconvolution at the size read and at 2 px, against the unsharp mask at
//! the old default. Then the clean photos blurred at 1 and 3 px, and at 2 px with grain of 2 and 5
//! levels, each through the pass chosen: what a misread size or noise costs.
//!
//! `cargo run --release -p prism-engine --example deblur_prepass -- data/eval/sharpen`

use std::path::PathBuf;
use std::time::Instant;

use prism_engine::deblur_prepass::{SharpenPass, deconvolve, read_blur};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, RgbImage, load_picture};
use prism_engine::settings::{gaussian_blur, unsharp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let quantized = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as f64;
    let mse = a.data.iter().zip(&b.data).map(|(x, y)| (quantized(*x) - quantized(*y)).powi(2)).sum::<f64>() / a.data.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}

/// Blurred at `sigma`, with Gaussian grain of `levels` (of 255), rounded to 8 bits.
fn degrade(clean: &RgbImage, sigma: f32, levels: f32, rng: &mut StdRng) -> RgbImage {
    let grain = Normal::new(0.0, levels / 255.0).expect("a valid deviation");
    let blurred = gaussian_blur(clean, sigma);
    let data = blurred.data.iter().map(|v| ((v + grain.sample(rng)).clamp(0.0, 1.0) * 255.0).round() / 255.0).collect();
    RgbImage { data, ..blurred }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: deblur_prepass EVAL_TASK_DIR")?);
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix("_clean.png").map(str::to_string))
        .collect();
    names.sort();
    let n = names.len().max(1) as f64;
    let (mut sums, mut seconds, mut megapixels, mut reads) = ([0f64; 5], 0.0, 0.0, Vec::new());
    let mut cleans = Vec::new();
    for name in &names {
        let clean = load_picture(&dir.join(format!("{name}_clean.png")), DEFAULT_MAX_PIXELS)?.rgb;
        let input = load_picture(&dir.join(format!("{name}_input.png")), DEFAULT_MAX_PIXELS)?.rgb;
        let start = Instant::now();
        let reading = read_blur(&input);
        let out = SharpenPass::for_photo(&input, None).apply(&input);
        seconds += start.elapsed().as_secs_f64();
        reads.push(reading.size as f64);
        megapixels += (input.width * input.height) as f64 / 1e6;
        let row = [
            psnr(&input, &clean),
            psnr(&unsharp(&input, 1.5), &clean),
            psnr(&out, &clean),
            psnr(&deconvolve(&input, reading.size), &clean),
            psnr(&deconvolve(&input, 2.0), &clean),
        ];
        println!(
            "{name:16} reads {:4.2} px {:7}  input {:5.2}  unsharp 1.5 {:5.2}  pass {:5.2}  deconvolved at the size read {:5.2}, at 2 px {:5.2} dB",
            reading.size,
            format!("{:?}", reading.shape),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4]
        );
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        cleans.push(clean);
    }
    let read = reads.iter().sum::<f64>() / n;
    let spread = (reads.iter().map(|r| (r - read).powi(2)).sum::<f64>() / n).sqrt();
    println!(
        "mean over {}: reads {read:.2} +- {spread:.2} px; input {:.2}, unsharp at 1.5 px {:.2}, pass {:.2}, deconvolved at the size read {:.2}, at 2 px {:.2} dB; {:.2} s per megapixel",
        names.len(),
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        sums[3] / n,
        sums[4] / n,
        seconds / megapixels
    );
    let mut rng = StdRng::seed_from_u64(1);
    for (sigma, levels) in [(1.0, 0.0), (3.0, 0.0), (2.0, 2.0), (2.0, 5.0)] {
        let (mut read, mut before, mut after) = (0.0, 0.0, 0.0);
        for clean in &cleans {
            let file = degrade(clean, sigma, levels, &mut rng);
            let pass = SharpenPass::for_photo(&file, None);
            read += pass.size() as f64;
            before += psnr(&file, clean);
            after += psnr(&pass.apply(&file), clean);
        }
        println!(
            "blur {sigma} px, grain {levels} levels: reads {:.2} px on average; input {:.2}, pass {:.2} dB",
            read / n,
            before / n,
            after / n
        );
    }
    Ok(())
}
