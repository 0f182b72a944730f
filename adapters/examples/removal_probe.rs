//! A float base and removal adapter on the held-out removals `hole_fill_alone` wrote, before any
//! QUAD: writes `<photo>_prism.png` beside them for `adapters/scripts/hole_fill_peers.py`, which
//! then scores it with the fills and the OpenCV peers. The whole 512-px crop is one forward (the
//! engine's working size), hidden pixels shown as the base's configured hole fill, and only the
//! masked pixels take the model's output, as in the engine.
//! `cargo run --release -p prism-adapters --example removal_probe [BASE.safetensors [ADAPTER.prism-lora]]`
//! (defaults: the trained base and removal teacher in `data/runs`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use prism_adapters::recipe::{adapter_pairs, lora_set, placement_of, runs_dir, teacher_path};
use prism_adapters::tasks::{Task, psnr};
use prism_engine::adapter::Adapter;
use prism_engine::imageio::{Picture, load_mask, load_picture, save_picture};
use prism_engine::job::{HIDDEN, add_residual, model_input};
use prism_engine::tensorfile::TensorFile;
use prism_engine::unet::{FloatActivations, Unet};

fn main() -> anyhow::Result<()> {
    let data = Path::new("data");
    let mut args = std::env::args().skip(1);
    let base_path = args.next().map(PathBuf::from).unwrap_or_else(|| runs_dir(data).join("base.safetensors"));
    let adapter_path = args.next().map(PathBuf::from).unwrap_or_else(|| teacher_path(data, Task::Remove));
    let base = Unet::from_file(&TensorFile::read(&base_path)?, &Device::Cpu)?;
    let adapter = Adapter::read(&adapter_path)?;
    let lora = lora_set(&base, &adapter_pairs(&base, &adapter)?, adapter.meta.alpha, placement_of(&base, &adapter)?)?;
    let fill = base.config().hole_fill;
    let align = base.config().alignment();
    println!("base {} (hole fill {fill:?}), adapter {}", base_path.display(), adapter_path.display());
    for kind in ["strokes", "objects"] {
        let dir = data.join("hole_fill").join(kind);
        let mut total = 0.0;
        let mut count = 0;
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("_input.png"))
            .collect();
        inputs.sort();
        for input_path in inputs {
            let stem = input_path.to_string_lossy().trim_end_matches("_input.png").to_string();
            let image = load_picture(&input_path, u64::MAX)?.rgb;
            let mask = load_mask(Path::new(&format!("{stem}_mask.png")), u64::MAX)?;
            let clean = load_picture(Path::new(&format!("{stem}_clean.png")), u64::MAX)?.rgb;
            // Edges repeated out to the model's alignment, cut back after.
            let (w, h) = (image.width.div_ceil(align) * align, image.height.div_ceil(align) * align);
            let tensor = model_input(&image.crop_clamped(0, 0, w, h), &mask.crop_clamped(0, 0, w, h), Some(fill))?;
            let residual = base.forward(&tensor, Some(&lora), &mut FloatActivations)?;
            let out = add_residual(&tensor, &residual)?.crop_clamped(0, 0, image.width, image.height);
            let mut result = image.clone();
            for (i, &m) in mask.data.iter().enumerate() {
                if m > HIDDEN {
                    result.data[i * 3..i * 3 + 3].copy_from_slice(&out.data[i * 3..i * 3 + 3]);
                }
            }
            let db = psnr(&result, &clean, Some(&mask));
            total += db;
            count += 1;
            save_picture(
                Path::new(&format!("{stem}_prism.png")),
                &Picture { rgb: result, alpha: None, sixteen_bit: false },
                &[],
            )?;
        }
        println!("{kind}: base + adapter {:.2} dB in the mask over {count} photos", total / count.max(1) as f64);
    }
    Ok(())
}
