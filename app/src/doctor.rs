//! `prism doctor`: what this machine offers and what Prism will use — GPU adapters, ONNX
//! Runtime and its providers, the CPU and its int8 kernels, the model and its profile, the
//! folders. The exit code says whether an edit can run.

use std::path::PathBuf;

use anyhow::{Result, bail};
use prism_engine::int8::KernelPath;
use prism_engine::model::Model;

use crate::library::{find_model_dir, holds_model, model_search, user_adapter_dir};

/// The CPU features the integer kernels choose between.
fn cpu_features() -> Vec<&'static str> {
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, present) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            ("avx512vnni", std::arch::is_x86_feature_detected!("avx512vnni")),
            ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
        ] {
            if present {
                found.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            found.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            found.push("dotprod");
        }
    }
    found
}

/// Prints the report for the model in `model_dir` (None: searched for) and fails when no edit
/// can run.
pub fn run_doctor(model_dir: Option<PathBuf>) -> Result<()> {
    println!("prism {}", env!("CARGO_PKG_VERSION"));

    println!("\nGPU adapters (wgpu):");
    let adapters = prism_engine::backends::gpu::adapters();
    if adapters.is_empty() {
        println!("  none: `auto` runs on the CPU");
    }
    for info in &adapters {
        let kind = if info.device_type == wgpu_cpu() { "software" } else { "hardware" };
        println!("  {} ({:?}, {:?}): {kind}", info.name, info.backend, info.device_type);
    }
    let hardware = adapters.iter().any(|a| a.device_type != wgpu_cpu());
    println!("  auto uses: {}", if hardware { "wgpu on the hardware GPU" } else { "the reference CPU backend" });

    println!("\nONNX Runtime (--backend ort):");
    print_ort();

    println!("\nCPU:");
    println!("  {} threads, {}", std::thread::available_parallelism().map_or(1, |n| n.get()), std::env::consts::ARCH);
    println!("  features: {}", cpu_features().join(" "));
    match KernelPath::chosen() {
        Ok(path) => {
            let precision = if path.beats_float() { "int8" } else { "float (faster than the portable kernels)" };
            println!("  int8 kernels: {} ({}); with no precision chosen an edit runs {precision}", path.describe(), path.name());
        }
        Err(error) => println!("  int8 kernels: {error}"),
    }

    println!("\nModel:");
    let dir = match model_dir {
        Some(dir) => {
            println!("  --model {}", dir.display());
            Some(dir)
        }
        None => {
            let places = model_search();
            for (source, place) in &places {
                let found = if holds_model(place) { "found" } else { "none" };
                println!("  looked in {} ({}): {found}", place.display(), source.describe());
            }
            // $PRISM_MODEL is used as given; otherwise the first place that holds a model.
            find_model_dir().ok()
        }
    };
    let model = match dir.as_deref().map(Model::load) {
        Some(Ok(model)) => model,
        Some(Err(error)) => bail!("no edit can run: the model does not load: {error}"),
        None => bail!("no edit can run: no model found (pass --model DIR or set PRISM_MODEL)"),
    };
    let config = model.config();
    println!("  {} (channels {:?}, blocks {:?})", model.dir.display(), config.channels, config.blocks);
    println!("  model {}, profile {} (int{} activations)", model.hash, model.profile.id, model.profile.activation_bits);
    println!("  shipped tools: {}", model.shipped_adapters().len());
    // An int8 edit never reads the float base; the float view and float exports do.
    match model.float() {
        Ok(_) => println!("  float base: read, its weights match their hash"),
        Err(error) => println!("  float base: {error} (int8 edits still run; the float view and float exports do not)"),
    }

    println!("\nFolders:");
    if let Some(dirs) = directories::ProjectDirs::from("org", "Prism", "prism") {
        println!("  settings: {}", dirs.config_dir().display());
    }
    match user_adapter_dir(&model) {
        Ok(dir) => println!("  your adapters: {}", dir.display()),
        Err(error) => println!("  your adapters: {error}"),
    }
    println!("\nAn edit can run.");
    Ok(())
}

fn wgpu_cpu() -> prism_engine::backends::gpu::DeviceType {
    prism_engine::backends::gpu::DeviceType::Cpu
}

#[cfg(feature = "ort")]
fn print_ort() {
    use prism_engine::backends::Provider;
    match prism_engine::backends::ort::probe() {
        Ok((library, providers)) => {
            println!("  found: {}", library.display());
            let offered: Vec<_> = providers.iter().map(|p| p.name()).collect();
            println!("  execution providers it offers: {}", offered.join(", "));
            let chosen = Provider::Auto.resolve(&providers);
            println!("  --backend ort --provider auto uses: {} (CPU provider behind it)", chosen.describe());
        }
        Err(error) => println!("  not usable: {error}"),
    }
}

#[cfg(not(feature = "ort"))]
fn print_ort() {
    println!("  this build has no ONNX Runtime backend (build with --features ort)");
}
