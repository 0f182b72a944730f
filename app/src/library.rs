//! What the CLI and the editor share: where the model and the user's adapters live, and
//! installing an adapter.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use prism_engine::adapter::{ADAPTER_EXTENSION, Adapter};
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
