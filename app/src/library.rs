//! What the CLI and the editor share: where the model and the user's adapters live, installing an
//! adapter, and the edit record written into output files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use prism_engine::adapter::{ADAPTER_EXTENSION, Adapter};
use prism_engine::job::JobStats;
use prism_engine::model::{Model, adapter_files_in};

/// `$PRISM_MODEL`, or the model shipped in the repository's `assets/`.
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("PRISM_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("assets"))
}

/// Where the user's own adapters for `model` live: `$PRISM_HOME/adapters/<model hash>/`.
pub fn user_adapter_dir(model: &Model) -> Result<PathBuf> {
    let home = match std::env::var_os("PRISM_HOME") {
        Some(home) => PathBuf::from(home),
        None => directories::ProjectDirs::from("org", "Prism", "prism")
            .map(|d| d.data_dir().to_path_buf())
            .ok_or_else(|| anyhow!("cannot find a data folder for installed adapters; set PRISM_HOME"))?,
    };
    Ok(home.join("adapters").join(&model.hash))
}

/// The shipped adapters, then the user's.
pub fn all_adapter_files(model: &Model) -> Result<Vec<PathBuf>> {
    let mut files = model.shipped_adapters();
    files.extend(adapter_files_in(&user_adapter_dir(model)?));
    Ok(files)
}

/// Validates `file` (.prism-lora, PEFT or kohya) against `model` and copies it, as a
/// `.prism-lora`, into the user's adapter folder. Returns where it went.
pub fn install_adapter(model: &Model, file: &Path, overwrite: bool) -> Result<(PathBuf, Adapter)> {
    if !file.exists() {
        bail!("{}: no such file", file.display());
    }
    let adapter = model.read_adapter(file)?;
    let dir = user_adapter_dir(model)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let target = dir.join(format!("{}.{ADAPTER_EXTENSION}", adapter.meta.name));
    if target.exists() && !overwrite {
        bail!(
            "an adapter named '{}' is already installed ({}); replace it to install this one",
            adapter.meta.name,
            target.display()
        );
    }
    adapter.write(&target)?;
    Ok((target, adapter))
}

/// The `prism:*` entries saved with an edited image.
pub fn edit_record(model: &Model, mix: &[(String, f32)], strength: f32, stats: &JobStats) -> Vec<(String, String)> {
    let mut entries = record_entries(model, mix, strength, &stats.backend, &stats.device, stats.precision.name());
    if let Some(stops) = stats.exposure {
        entries.push(("prism:exposure".to_string(), format!("{stops:.2}")));
    }
    if let Some(sigma) = stats.blur_size {
        entries.push(("prism:blur_size".to_string(), format!("{sigma:.2}")));
    }
    entries
}

/// The same entries from their parts (the editor keeps them per history step).
pub fn record_entries(
    model: &Model,
    mix: &[(String, f32)],
    strength: f32,
    backend: &str,
    device: &str,
    precision: &str,
) -> Vec<(String, String)> {
    vec![
        ("prism:tool".to_string(), mix.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join("+")),
        ("prism:adapters".to_string(), serde_json::to_string(mix).unwrap_or_default()),
        ("prism:strength".to_string(), strength.to_string()),
        ("prism:backend".to_string(), backend.to_string()),
        ("prism:device".to_string(), device.to_string()),
        ("prism:precision".to_string(), precision.to_string()),
        ("prism:model".to_string(), model.hash.clone()),
        ("prism:profile".to_string(), model.profile.id.clone()),
        ("prism:version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]
}
