//! Opening a model directory's head to the input: the same base, profile, tools and look tool,
//! rewritten for a graph whose head reads the unshuffled photo beside the decoder's features
//! (`UnetConfig::head_sees_input`), computing exactly what they computed before.
//!
//! The head's new input columns are zero in the base and in every adapter, so each tool's int8
//! output is bit-identical; the model's hash and so its profile's id change, which is why every
//! file that names them is rewritten. Training an adapter's head afterwards (the look tool's) is
//! what puts the path to use.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use prism_engine::adapter::Adapter;
use prism_engine::backends::{Backend, Precision, ReferenceBackend};
use prism_engine::fixtures::{photo_input, synthetic_photo};
use prism_engine::mix::Mix;
use prism_engine::model::{ADAPTERS_DIR, Model};
use prism_engine::quant::Profile;
use prism_engine::tensorfile::TensorFile;
use prism_engine::unet::UnetConfig;
use prism_text::look::{BASIS_FILE, LOOKS_DIR, MIXER_FILE};

use crate::grow::{grow_adapter, grow_model};

/// What [`open_head`] wrote and checked.
#[derive(Debug)]
pub struct OpenedHead {
    pub old_hash: String,
    pub new_hash: String,
    /// Every int8 tool with the largest output difference against the old directory (0: identical).
    pub tools: Vec<(String, f32)>,
}

/// Writes `from`'s model with its head opened to the input into `to` (which must not exist),
/// copying every file it does not rewrite, and checks each shipped tool's int8 output against
/// `from`'s on a synthetic photo. On any error `to` is removed: nothing is left half written.
pub fn open_head(from: &Path, to: &Path) -> Result<OpenedHead> {
    ensure!(!to.exists(), "{} already exists; give a new folder", to.display());
    let opened = write_opened(from, to);
    if opened.is_err() {
        let _ = std::fs::remove_dir_all(to);
    }
    opened
}

fn write_opened(from: &Path, to: &Path) -> Result<OpenedHead> {
    let old = Model::load(from)?;
    let old_config = old.config().clone();
    ensure!(!old_config.head_sees_input, "the model in {} already has a head that sees the input", from.display());
    let config = UnetConfig { head_sees_input: true, ..old_config.clone() };
    copy_tree(from, to)?;

    // No output of the head is new, so every weight from the input is zero: the seed is unused.
    let float = grow_model(old.float()?, &config, 0)?;
    let hash = float.content_hash()?;
    let profile = &old.profile;
    let profile =
        Profile::new(&hash, profile.activation_bits, profile.activations.clone(), profile.lora.clone(), &profile.method)?;
    let model = Model::save(to, &float, &profile)?;

    for path in old.shipped_adapters() {
        let adapter = Adapter::read(&path)?;
        let float_version = adapter.dequantized(&old.profile)?;
        let opened = rebound(grow_adapter(&float_version, &old_config, &config)?, &hash).quantize(&profile)?;
        check_same_tool(&adapter, &float_version, &opened)?;
        opened.write(&to.join(ADAPTERS_DIR).join(file_name(&path)?))?;
    }
    for path in old.teacher_adapters() {
        let teacher = rebound(grow_adapter(&Adapter::read(&path)?, &old_config, &config)?, &hash);
        teacher.write(&to.join(ADAPTERS_DIR).join("float").join(file_name(&path)?))?;
    }
    let looks = from.join(LOOKS_DIR);
    if looks.join(BASIS_FILE).exists() {
        let basis = rebound(grow_adapter(&Adapter::read(&looks.join(BASIS_FILE))?, &old_config, &config)?, &hash);
        basis.write(&to.join(LOOKS_DIR).join(BASIS_FILE))?;
        let mut mixer = TensorFile::read(&looks.join(MIXER_FILE))?;
        mixer.metadata.insert("base_model".into(), hash.clone());
        mixer.write(&to.join(LOOKS_DIR).join(MIXER_FILE))?;
    }

    let tools = compare_tools(&old, &model)?;
    if let Some((tool, difference)) = tools.iter().find(|(_, d)| *d != 0.0) {
        bail!("{tool} changed by {difference:e}: the opened model is not the same model");
    }
    Ok(OpenedHead { old_hash: old.hash, new_hash: hash, tools })
}

fn rebound(mut adapter: Adapter, hash: &str) -> Adapter {
    adapter.meta.base_model = hash.to_string();
    adapter
}

/// B's codes are the old ones and A's values are the old ones with zeros inserted: the tool is
/// the same tool. `old` is the int8 adapter as read, `old_values` its values on the old profile.
fn check_same_tool(old: &Adapter, old_values: &Adapter, new: &Adapter) -> Result<()> {
    for (name, layer) in &old.layers {
        let grown = new.layers.get(name).with_context(|| format!("the opened adapter lost layer '{name}'"))?;
        let (Some((_, old_b)), Some((_, new_b))) = (&layer.codes, &grown.codes) else {
            bail!("adapter {} layer '{name}' has no int8 codes", old.meta.name);
        };
        ensure!(old_b == new_b, "adapter {} layer '{name}': B's codes changed", old.meta.name);
        let nonzero = |a: &[f32]| a.iter().copied().filter(|v| *v != 0.0).collect::<Vec<f32>>();
        let before = old_values.layers.get(name).map(|t| nonzero(&t.a));
        ensure!(before == Some(nonzero(&grown.a)), "adapter {} layer '{name}': A's values changed", old.meta.name);
    }
    Ok(())
}

/// Each shipped tool run through the int8 CPU kernels on both models: the largest difference.
fn compare_tools(old: &Model, new: &Model) -> Result<Vec<(String, f32)>> {
    let input = photo_input(&synthetic_photo(96, 64, 3))?;
    let mut old_engine = ReferenceBackend::new(old.clone());
    let mut new_engine = ReferenceBackend::new(new.clone());
    let mut tools = Vec::new();
    for (old_path, new_path) in old.shipped_adapters().iter().zip(new.shipped_adapters()) {
        let (before, after) = (old.read_adapter(old_path)?, new.read_adapter(&new_path)?);
        old_engine.install(&before)?;
        new_engine.install(&after)?;
        let mix = Mix::single(&before.meta.name);
        old_engine.bind(&mix, 1.0, Precision::Int8)?;
        new_engine.bind(&mix, 1.0, Precision::Int8)?;
        let difference = (old_engine.forward(&input)? - new_engine.forward(&input)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        tools.push((before.meta.name.clone(), difference));
    }
    Ok(tools)
}

fn file_name(path: &Path) -> Result<&std::ffi::OsStr> {
    path.file_name().with_context(|| format!("{} has no file name", path.display()))
}

/// Copies the directory tree `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::fixtures::{tiny_config, write_model_dir};

    #[test]
    fn an_opened_model_runs_every_tool_as_before_and_a_second_opening_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("model"), dir.path().join("opened"));
        write_model_dir(&from, &tiny_config(), 3).unwrap();
        let opened = open_head(&from, &to).unwrap();
        assert_ne!(opened.old_hash, opened.new_hash);
        assert!(!opened.tools.is_empty() && opened.tools.iter().all(|(_, d)| *d == 0.0));
        let model = Model::load(&to).unwrap();
        assert!(model.config().head_sees_input);
        for path in model.shipped_adapters() {
            model.read_adapter(&path).unwrap();
        }
        // Opening it again is refused, and the refused run leaves no folder behind.
        let again = dir.path().join("again");
        let err = open_head(&to, &again).unwrap_err().to_string();
        assert!(err.contains("already has a head"), "{err}");
        assert!(!again.exists());
        assert!(open_head(&from, &to).unwrap_err().to_string().contains("already exists"));
    }
}
