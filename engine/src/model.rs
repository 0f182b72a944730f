//! A model directory: the float base, its int8 twin, the shared profile and the shipped adapters.
//!
//! ```text
//! DIR/base.safetensors        float prism-unet, f16 when that loses nothing (config + hash in metadata)
//! DIR/base-int8.safetensors   int8 weights + per-channel scales, naming the float hash
//! DIR/profile.json            the shared quantization profile (id = hash of its content)
//! DIR/adapters/*.prism-lora   the tools (int8, on the profile)
//! DIR/adapters/float/*.prism-lora  their float teachers (optional, for QA)
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use candle_core::Device;

use crate::adapter::{ADAPTER_EXTENSION, Adapter, ResidentAdapter, import_kohya, import_peft};
use crate::error::{EngineError, Result};
use crate::quant::{Int8Base, Profile, int8_model_file};
use crate::tensorfile::{TensorFile, read_metadata, write_atomically};
use crate::unet::{Unet, UnetConfig};

pub const BASE_FILE: &str = "base.safetensors";
pub const INT8_FILE: &str = "base-int8.safetensors";
pub const PROFILE_FILE: &str = "profile.json";
pub const ADAPTERS_DIR: &str = "adapters";

/// A loaded base model with its profile.
#[derive(Clone, Debug)]
pub struct Model {
    pub dir: PathBuf,
    /// The int8 base as its file holds it (codes, scales, biases): what the integer CPU kernels
    /// pack, and the model's config.
    pub int8: Arc<Int8Base>,
    /// The int8 model as QuantSim runs it (weights = codes x scales), made on first use
    /// ([`Model::quantized`]).
    quantized: Arc<OnceLock<Unet>>,
    /// The float base, read from `base.safetensors` on first use ([`Model::float`]).
    /// The integer kernels need neither: making both at load took two thirds of a one-shot CLI
    /// edit's time and half of its memory.
    float: Arc<OnceLock<Unet>>,
    pub hash: String,
    pub profile: Profile,
}

impl Model {
    /// Loads the model in `dir` onto the CPU (the reference backend's device).
    pub fn load(dir: &Path) -> Result<Self> {
        let base_path = dir.join(BASE_FILE);
        if !base_path.exists() {
            return Err(EngineError::Model(format!(
                "no model installed at {}: it has no {BASE_FILE} (see assets/README.md for what a model directory holds); pass --model DIR or set PRISM_MODEL",
                dir.display()
            )));
        }
        // The float base's header says what it is; its weights wait until they are needed.
        let base_header = read_metadata(&base_path)?;
        let hash = base_header.get("hash").cloned().unwrap_or_default();
        let int8 = Int8Base::from_file(&TensorFile::read(&dir.join(INT8_FILE))?)?;
        if int8.base_model != hash {
            return Err(EngineError::Model(format!(
                "{INT8_FILE} was made from base model {}, but {BASE_FILE} is {hash}; re-export the int8 model",
                int8.base_model
            )));
        }
        let base_config = base_header.get("config").and_then(|json| serde_json::from_str::<UnetConfig>(json).ok());
        if base_config.as_ref() != Some(&int8.config) {
            return Err(EngineError::Model(format!("{BASE_FILE} and {INT8_FILE} describe different model configs")));
        }
        let profile_path = dir.join(PROFILE_FILE);
        let json = std::fs::read_to_string(&profile_path).map_err(|e| EngineError::io(&profile_path, e))?;
        let profile = Profile::from_json(&json)?;
        if profile.base_model != hash {
            return Err(EngineError::Model(format!(
                "quantization profile {} was calibrated for base model {}, not {hash}; recalibrate it",
                profile.id, profile.base_model
            )));
        }
        profile.check_covers(&int8.config)?;
        Ok(Self { dir: dir.to_path_buf(), int8: Arc::new(int8), quantized: Arc::default(), float: Arc::default(), hash, profile })
    }

    /// The int8 model as QuantSim runs it, made from the int8 base on first use.
    pub fn quantized(&self) -> Result<&Unet> {
        if let Some(quantized) = self.quantized.get() {
            return Ok(quantized);
        }
        let quantized = self.int8.dequantized(&Device::Cpu)?;
        Ok(self.quantized.get_or_init(|| quantized))
    }

    /// The float base, read and checked on first use.
    pub fn float(&self) -> Result<&Unet> {
        if let Some(float) = self.float.get() {
            return Ok(float);
        }
        let path = self.dir.join(BASE_FILE);
        let file = TensorFile::read(&path)?;
        // `from_file` refuses weights that are not what the file's recorded hash says.
        let float = Unet::from_file(&file, &Device::Cpu)?;
        if file.meta("hash") != Some(self.hash.as_str()) {
            return Err(EngineError::Model(format!(
                "{} changed since the model was loaded (it was {}); load the model again",
                path.display(),
                self.hash
            )));
        }
        Ok(self.float.get_or_init(|| float))
    }

    /// The model's config (the float base's and the int8 model's alike).
    pub fn config(&self) -> &UnetConfig {
        &self.int8.config
    }

    /// Writes base, int8 base and profile into `dir`.
    pub fn save(dir: &Path, float: &Unet, profile: &Profile) -> Result<Self> {
        std::fs::create_dir_all(dir.join(ADAPTERS_DIR)).map_err(|e| EngineError::io(dir, e))?;
        float.to_smallest_file()?.write(&dir.join(BASE_FILE))?;
        let int8_file = int8_model_file(float)?;
        int8_file.write(&dir.join(INT8_FILE))?;
        write_atomically(&dir.join(PROFILE_FILE), profile.to_json().as_bytes())?;
        Self::from_parts(dir, float, &int8_file, profile.clone())
    }

    /// The model of `float` on `profile`, as it would load from `dir`, without writing it.
    pub fn in_memory(dir: &Path, float: &Unet, profile: Profile) -> Result<Self> {
        Self::from_parts(dir, float, &int8_model_file(float)?, profile)
    }

    /// `float` with the int8 file made from it (which names its hash); the QuantSim model is made
    /// from the int8 base on first use, as after a load.
    fn from_parts(dir: &Path, float: &Unet, int8_file: &TensorFile, profile: Profile) -> Result<Self> {
        let int8 = Int8Base::from_file(int8_file)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            hash: int8.base_model.clone(),
            int8: Arc::new(int8),
            quantized: Arc::default(),
            float: Arc::new(OnceLock::from(float.clone())),
            profile,
        })
    }

    /// The shipped tool adapters (`DIR/adapters/*.prism-lora`), sorted by file name.
    pub fn shipped_adapters(&self) -> Vec<PathBuf> {
        adapter_files_in(&self.dir.join(ADAPTERS_DIR))
    }

    /// The float teachers of the shipped adapters (`DIR/adapters/float/*.prism-lora`): the
    /// editor's quantized-vs-float view runs the same edit through them.
    pub fn teacher_adapters(&self) -> Vec<PathBuf> {
        adapter_files_in(&self.dir.join(ADAPTERS_DIR).join("float"))
    }

    /// Checks that `adapter` was made for this base and profile and fits its convs: what every
    /// backend asks before installing one.
    pub fn check_adapter(&self, adapter: &Adapter) -> Result<()> {
        adapter.check_compatible(self.config(), &self.hash, Some(&self.profile))
    }

    /// Reads an adapter in any supported layout and checks it fits this model.
    pub fn read_adapter(&self, path: &Path) -> Result<Adapter> {
        let adapter = read_any_adapter(path, &self.hash, self.config())?;
        self.check_adapter(&adapter).map_err(|e| match e {
            EngineError::Adapter(message) => EngineError::file(path, message),
            other => other,
        })?;
        Ok(adapter)
    }

    /// Bytes of the base model as stored: int8 weights + f32 scales and biases.
    pub fn int8_bytes(&self) -> usize {
        self.config().convs().iter().map(|s| s.k * s.k * s.cin * s.cout + 8 * s.cout).sum()
    }
}

/// `*.prism-lora` files directly in `dir`, sorted.
pub fn adapter_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ADAPTER_EXTENSION))
        .collect();
    files.sort();
    files
}

/// Reads a `.prism-lora` file, a PEFT adapter (folder or `adapter_model.safetensors` with its
/// `adapter_config.json`) or a kohya LoRA, converting the last two to float Prism adapters.
pub fn read_any_adapter(path: &Path, model_hash: &str, model: &UnetConfig) -> Result<Adapter> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "imported".into());
    let peft_config = if path.is_dir() { path.join("adapter_config.json") } else { path.with_file_name("adapter_config.json") };
    if peft_config.exists() && (path.is_dir() || path.extension().is_some_and(|e| e == "safetensors")) {
        let name = if path.is_dir() {
            stem
        } else {
            path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or(stem)
        };
        return import_peft(path, &name, model_hash);
    }
    let file = TensorFile::read(path)?;
    if file.meta("format").is_none() && file.tensors.keys().any(|k| k.contains(".lora_down")) {
        let layers: Vec<String> = model.convs().into_iter().map(|s| s.name).collect();
        return import_kohya(path, &stem, model_hash, &layers);
    }
    Adapter::from_file(&file).map_err(|e| match e {
        EngineError::Adapter(message) => EngineError::file(path, message),
        other => other,
    })
}

/// The "one compiled model per tool" deployment: `adapter` merged into the base weights
/// (`W + alpha x strength x A B` per conv), to be requantized and compiled like a new model.
pub fn merged_model(model: &Model, adapter: &Adapter, strength: f32) -> Result<Model> {
    let resident = ResidentAdapter::new(adapter, Some(&model.profile), &Device::Cpu)?;
    let scale = f64::from(resident.meta.alpha * strength);
    let merged = model.float()?.map_weights(|spec, weight| match resident.float.get(&spec.name) {
        Some((a, b)) => Ok((weight + (a.matmul(b)? * scale)?)?),
        None => Ok(weight.clone()),
    })?;
    Model::in_memory(&model.dir, &merged, model.profile.clone())
}
