//! What the CLI and the editor share: where the model and the user's adapters live, and
//! installing an adapter.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use prism_engine::adapter::{ADAPTER_EXTENSION, Adapter};
use prism_engine::model::{Model, adapter_files_in};

/// Where a model directory was looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// `$PRISM_MODEL`.
    Environment,
    /// `assets/` beside the executable, `../share/prism` from it (an installed tree), or
    /// `../Resources/assets` (a macOS app bundle).
    BesideExecutable,
    /// The system data folder (`/usr/share/prism`, where the Debian package puts it).
    SystemData,
    /// The repository's `assets/` (running from the source tree).
    SourceTree,
}

impl ModelSource {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Environment => "$PRISM_MODEL",
            Self::BesideExecutable => "beside the executable",
            Self::SystemData => "the system data folder",
            Self::SourceTree => "the source tree",
        }
    }
}

/// The places a model is looked for when no `--model` is given, in order.
pub fn model_search() -> Vec<(ModelSource, PathBuf)> {
    let mut places = Vec::new();
    if let Some(dir) = std::env::var_os("PRISM_MODEL") {
        places.push((ModelSource::Environment, PathBuf::from(dir)));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
        places.push((ModelSource::BesideExecutable, exe_dir.join("assets")));
        places.push((ModelSource::BesideExecutable, exe_dir.join("..").join("share").join("prism")));
        // A macOS app: Prism.app/Contents/MacOS/prism and Contents/Resources/assets.
        places.push((ModelSource::BesideExecutable, exe_dir.join("..").join("Resources").join("assets")));
    }
    if cfg!(unix) {
        places.push((ModelSource::SystemData, PathBuf::from("/usr/share/prism")));
    }
    places.push((ModelSource::SourceTree, Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("assets")));
    places
}

/// Whether `dir` holds a model (its float base, at least).
pub fn holds_model(dir: &Path) -> bool {
    dir.join(prism_engine::model::BASE_FILE).is_file()
}

/// `$PRISM_MODEL` when set (used as given, so a wrong one is reported, not skipped), else the
/// first place of [`model_search`] that holds a model, else an error naming every place.
pub fn find_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PRISM_MODEL") {
        return Ok(PathBuf::from(dir));
    }
    let places = model_search();
    if let Some((_, dir)) = places.iter().find(|(_, dir)| holds_model(dir)) {
        return Ok(dir.clone());
    }
    let looked: Vec<String> = places.iter().map(|(source, dir)| format!("{} ({})", dir.display(), source.describe())).collect();
    bail!("no Prism model found; looked in {}; pass --model DIR or set PRISM_MODEL", looked.join(", "))
}

/// [`find_model_dir`], or the source tree's `assets/` when none holds a model (loading it then
/// says what is missing).
pub fn default_model_dir() -> PathBuf {
    find_model_dir().unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("assets"))
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
