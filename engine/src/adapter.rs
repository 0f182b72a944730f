//! `.prism-lora` adapter files: one tool each, bound to one base model and one shared profile.
//!
//! Tensors `<conv>.lora_A [r, cin, k, k]` and `<conv>.lora_B [cout, r, 1, 1]`, int8 for quantized
//! adapters (values on the profile's shared affine grid of that conv), f32/f16/bf16 for float ones.
//! `alpha` is the final scale of the side path: `y = conv(W, x) + alpha * B(A(x))`. PEFT
//! (`lora_alpha / r`) and kohya (`alpha / r` per layer) scales are folded into B on import.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::conv::oihw_to_kernel;
use crate::error::{EngineError, Result};
use crate::learned_doubling::DoublingFilters;
use crate::photo_fit::PhotoFit;
use crate::quant::{Affine, LoraQuant, Profile};
use crate::settings::ToolSetting;
use crate::tensorfile::{ElementType, RawTensor, TensorFile};
use crate::unet::{LoraLayer, LoraSet, UnetConfig};
use crate::upscale_prepass::Upsampling;

pub const ADAPTER_FORMAT: &str = "prism-lora";
pub const ADAPTER_EXTENSION: &str = "prism-lora";

/// Where a tool edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Fills the painted mask from its surroundings (the masked pixels are hidden from the model).
    Local,
    /// Changes the whole image, or the painted region of it.
    Global,
}

/// How an adapter's tensors are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterPrecision {
    Int8,
    Float,
}

/// Everything an adapter says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterMeta {
    /// The tool's id: what `--tool` and mixes name.
    pub name: String,
    /// What the editor shows ("Remove object"); the id when the file has none.
    pub title: String,
    pub task: String,
    pub description: String,
    pub example_prompts: Vec<String>,
    pub rank: usize,
    pub alpha: f32,
    pub base_model: String,
    /// Profile id the int8 tensors are quantized for (float adapters may leave it empty).
    pub profile: String,
    pub created_by: String,
    pub metrics: serde_json::Value,
    pub region: Region,
    /// Output size / input size (2 for the upscaler).
    pub scale: u32,
    /// How the input is enlarged to the output's size first (scale above 1).
    pub upsampling: Upsampling,
    /// With a learned upsampling, the fit of the filters the adapter was trained on
    /// (`DoublingFilters::id`); Prism runs it only on the same fit.
    pub doubling_filters: Option<String>,
    /// The setting the user gives this tool, folded into its input before the model runs.
    pub setting: Option<ToolSetting>,
    /// The photos the tool is for (a prompt about another photo does not route to it).
    pub fits: PhotoFit,
    pub precision: AdapterPrecision,
}

/// One conv's A and B values in file layout.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraTensors {
    /// `[r, cin, k, k]`
    pub a_shape: Vec<usize>,
    /// `[cout, r]`
    pub b_shape: Vec<usize>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    /// The int8 codes when the adapter is quantized.
    pub codes: Option<(Vec<i8>, Vec<i8>)>,
}

/// A whole adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    pub meta: AdapterMeta,
    pub layers: BTreeMap<String, LoraTensors>,
}

fn adapter_error(name: &str, message: impl std::fmt::Display) -> EngineError {
    EngineError::Adapter(format!("adapter '{name}': {message}"))
}

impl Adapter {
    pub fn read(path: &Path) -> Result<Self> {
        let file = TensorFile::read(path)?;
        Self::from_file(&file).map_err(|e| match e {
            EngineError::Adapter(message) => EngineError::file(path, message),
            other => other,
        })
    }

    pub fn from_file(file: &TensorFile) -> Result<Self> {
        if file.meta("format") != Some(ADAPTER_FORMAT) {
            return Err(EngineError::Adapter(
                "is not a Prism adapter (no 'format: prism-lora' metadata); PEFT and kohya LoRA files can be installed and are converted".into(),
            ));
        }
        let meta = meta_from_strings(&file.metadata)?;
        let name = meta.name.clone();
        let mut pairs: BTreeMap<String, (Option<&RawTensor>, Option<&RawTensor>)> = BTreeMap::new();
        for (key, raw) in &file.tensors {
            if let Some(layer) = key.strip_suffix(".lora_A") {
                pairs.entry(layer.into()).or_default().0 = Some(raw);
            } else if let Some(layer) = key.strip_suffix(".lora_B") {
                pairs.entry(layer.into()).or_default().1 = Some(raw);
            } else {
                return Err(adapter_error(&name, format!("unknown tensor '{key}' (expected <layer>.lora_A / <layer>.lora_B)")));
            }
        }
        if pairs.is_empty() {
            return Err(adapter_error(&name, "has no LoRA tensors"));
        }
        let mut layers = BTreeMap::new();
        for (layer, pair) in pairs {
            let (Some(a), Some(b)) = pair else {
                return Err(adapter_error(&name, format!("layer '{layer}' has only one of lora_A and lora_B")));
            };
            layers.insert(layer.clone(), lora_from_raw(&meta, &layer, a, b)?);
        }
        Ok(Self { meta, layers })
    }

    pub fn to_file(&self) -> TensorFile {
        let mut file = TensorFile::default();
        for (layer, t) in &self.layers {
            let (a, b) = match &t.codes {
                Some((qa, qb)) => (RawTensor::from_i8(t.a_shape.clone(), qa), RawTensor::from_i8(t.b_shape_4d(), qb)),
                None => (RawTensor::from_f32(t.a_shape.clone(), &t.a), RawTensor::from_f32(t.b_shape_4d(), &t.b)),
            };
            file.tensors.insert(format!("{layer}.lora_A"), a);
            file.tensors.insert(format!("{layer}.lora_B"), b);
        }
        file.metadata = meta_to_strings(&self.meta);
        file
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        self.to_file().write(path)
    }

    /// Checks the adapter fits `model` (and, when int8, `profile`); errors say what to do.
    pub fn check_compatible(&self, model: &UnetConfig, model_hash: &str, profile: Option<&Profile>) -> Result<()> {
        let name = &self.meta.name;
        if self.meta.base_model != model_hash {
            return Err(adapter_error(
                name,
                format!(
                    "was made for base model {}, but the loaded model is {model_hash}; install the model it was trained with, or retrain the adapter on this one (prism-adapters train-adapter)",
                    self.meta.base_model
                ),
            ));
        }
        if self.meta.precision == AdapterPrecision::Int8 {
            let Some(profile) = profile else {
                return Err(adapter_error(name, "is int8, but the loaded model has no quantization profile"));
            };
            if self.meta.profile != profile.id {
                return Err(adapter_error(
                    name,
                    format!(
                        "is quantized for profile {}, but the model uses profile {}; install its float version (Prism quantizes it on load) or re-run prism-adapters quad for this profile",
                        self.meta.profile, profile.id
                    ),
                ));
            }
        }
        if self.meta.upsampling == Upsampling::Learned {
            let compiled_in = DoublingFilters::shipped()?.id();
            let trained_on = self.meta.doubling_filters.as_deref().unwrap_or("none");
            if trained_on != compiled_in {
                return Err(adapter_error(
                    name,
                    format!(
                        "was trained on the learned doubling's fit {trained_on}, but this Prism's is {compiled_in}; retrain it on this one (prism-adapters train-adapter) or run the Prism it was made with"
                    ),
                ));
            }
        }
        if self.meta.rank > model.max_rank {
            return Err(adapter_error(
                name,
                format!("has rank {}, above the model's maximum of {}", self.meta.rank, model.max_rank),
            ));
        }
        let convs = model.convs();
        for (layer, t) in &self.layers {
            let spec = convs
                .iter()
                .find(|spec| &spec.name == layer)
                .ok_or_else(|| adapter_error(name, format!("targets layer '{layer}', which this model does not have")))?;
            if t.a_shape != [self.meta.rank, spec.cin, spec.k, spec.k] || t.b_shape != [spec.cout, self.meta.rank] {
                return Err(adapter_error(
                    name,
                    format!(
                        "tensors of '{layer}' have shapes {:?} / {:?}; the model needs [{}, {}, {}, {}] / [{}, {}, 1, 1]",
                        t.a_shape, t.b_shape, self.meta.rank, spec.cin, spec.k, spec.k, spec.cout, self.meta.rank
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `profile`'s shared grids for this adapter's `layer`.
    fn grid_on<'p>(&self, profile: &'p Profile, layer: &str) -> Result<&'p LoraQuant> {
        profile
            .lora
            .get(layer)
            .ok_or_else(|| adapter_error(&self.meta.name, format!("profile {} has no LoRA quantizer for '{layer}'", profile.id)))
    }

    /// Post-training quantization of an adapter trained without the profile's grids (a float file a
    /// user installs, a look made from a prompt): each rank channel is first balanced
    /// ([`Self::balanced_to`]), then rounded as [`Self::quantize`] does.
    pub fn quantize_after_training(&self, profile: &Profile) -> Result<Self> {
        self.balanced_to(profile)?.quantize(profile)
    }

    /// The same adapter with each rank channel's scale moved between A and B (`A_r / c`, `B_r * c`,
    /// so `B A` is kept) until both reach equally far into `profile`'s grids. A float adapter's
    /// split is an accident of its training (the look tool's head learns large A rows against a
    /// small B, and a prompt scales B by its weight): rounded as it comes, the smaller side keeps
    /// few codes and the larger may clip, which left black and white a faint tint in int8.
    pub fn balanced_to(&self, profile: &Profile) -> Result<Self> {
        let mut out = self.clone();
        for (layer, t) in &mut out.layers {
            let grid = self.grid_on(profile, layer)?;
            let rank = t.b_shape.get(1).copied().unwrap_or(0);
            let per_rank = t.a.len() / rank.max(1);
            for r in 0..rank {
                let a_rows = r * per_rank..(r + 1) * per_rank;
                let a_reach = t.a[a_rows.clone()].iter().map(|&v| grid.a.reach(v)).fold(0.0, f32::max);
                let b_reach = t.b.iter().skip(r).step_by(rank).map(|&v| grid.b.reach(v)).fold(0.0, f32::max);
                if a_reach == 0.0 || b_reach == 0.0 {
                    continue;
                }
                let c = (a_reach / b_reach).sqrt();
                t.a[a_rows].iter_mut().for_each(|v| *v /= c);
                t.b.iter_mut().skip(r).step_by(rank).for_each(|v| *v *= c);
            }
        }
        Ok(out)
    }

    /// Rounds A and B onto `profile`'s shared grids as they are (int8 codes, profile id set): what
    /// QUAD does to a student it trained on those grids.
    pub fn quantize(&self, profile: &Profile) -> Result<Self> {
        let mut out = self.clone();
        for (layer, t) in &mut out.layers {
            let q = self.grid_on(profile, layer)?;
            let qa: Vec<i8> = t.a.iter().map(|&v| q.a.quantize(v)).collect();
            let qb: Vec<i8> = t.b.iter().map(|&v| q.b.quantize(v)).collect();
            t.a = qa.iter().map(|&c| q.a.dequantize(c)).collect();
            t.b = qb.iter().map(|&c| q.b.dequantize(c)).collect();
            t.codes = Some((qa, qb));
        }
        out.meta.precision = AdapterPrecision::Int8;
        out.meta.profile = profile.id.clone();
        Ok(out)
    }

    /// Bytes the adapter's tensors take in their stored precision.
    pub fn stored_bytes(&self) -> usize {
        let per_value = if self.meta.precision == AdapterPrecision::Int8 { 1 } else { 4 };
        let count = |shape: &[usize]| shape.iter().product::<usize>();
        self.layers.values().map(|t| (count(&t.a_shape) + count(&t.b_shape)) * per_value).sum()
    }

    /// An int8 adapter as the float adapter its codes stand for on `profile`'s grids.
    pub fn dequantized(&self, profile: &Profile) -> Result<Self> {
        let mut out = self.clone();
        for (layer, t) in &mut out.layers {
            let Some((qa, qb)) = &t.codes else { continue };
            let q = self.grid_on(profile, layer)?;
            t.a = qa.iter().map(|&c| q.a.dequantize(c)).collect();
            t.b = qb.iter().map(|&c| q.b.dequantize(c)).collect();
            t.codes = None;
        }
        out.meta.precision = AdapterPrecision::Float;
        Ok(out)
    }

    /// The adapter's weight change of `layer` as a dense `[cout, cin*k*k]` matrix, `alpha * B A`.
    pub fn delta(&self, layer: &str) -> Option<Vec<f32>> {
        let t = self.layers.get(layer).filter(|t| !t.a.is_empty())?;
        let (r, cols) = (t.a_shape[0], t.a_shape[1..].iter().product::<usize>());
        let cout = t.b_shape[0];
        let mut out = vec![0f32; cout * cols];
        for o in 0..cout {
            for j in 0..r {
                let bv = t.b[o * r + j] * self.meta.alpha;
                for c in 0..cols {
                    out[o * cols + c] += bv * t.a[j * cols + c];
                }
            }
        }
        Some(out)
    }
}

impl LoraTensors {
    fn b_shape_4d(&self) -> Vec<usize> {
        vec![self.b_shape[0], self.b_shape[1], 1, 1]
    }

    /// Kernel-layout tensors for the forward pass: A `[k*k*cin, r]`, B `[r, cout]`.
    pub fn kernel_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let a = oihw_to_kernel(&Tensor::from_slice(&self.a, self.a_shape.as_slice(), device)?)?;
        let b = Tensor::from_slice(&self.b, self.b_shape.as_slice(), device)?.t()?.contiguous()?;
        Ok((a, b))
    }
}

fn lora_from_raw(meta: &AdapterMeta, layer: &str, a: &RawTensor, b: &RawTensor) -> Result<LoraTensors> {
    let name = &meta.name;
    if a.shape.len() != 4 || a.shape[0] != meta.rank || a.shape[2] != a.shape[3] {
        return Err(adapter_error(
            name,
            format!("'{layer}.lora_A' has shape {:?}; expected [rank {}, cin, k, k]", a.shape, meta.rank),
        ));
    }
    let b_ok = (b.shape.len() == 2 || (b.shape.len() == 4 && b.shape[2] == 1 && b.shape[3] == 1)) && b.shape[1] == meta.rank;
    if !b_ok {
        return Err(adapter_error(
            name,
            format!("'{layer}.lora_B' has shape {:?}; expected [cout, rank {}, 1, 1]", b.shape, meta.rank),
        ));
    }
    let int8 = meta.precision == AdapterPrecision::Int8;
    if (a.dtype == ElementType::I8) != int8 || (b.dtype == ElementType::I8) != int8 {
        return Err(adapter_error(name, format!("tensors of '{layer}' are not all {}", if int8 { "int8" } else { "float" })));
    }
    // int8 codes mean nothing without the profile's grid: `Adapter::dequantized` fills the values.
    let (values, codes) = if int8 {
        ((Vec::new(), Vec::new()), Some((a.to_i8().unwrap_or_default(), b.to_i8().unwrap_or_default())))
    } else {
        ((a.to_f32(), b.to_f32()), None)
    };
    Ok(LoraTensors { a_shape: a.shape.clone(), b_shape: b.shape[..2].to_vec(), a: values.0, b: values.1, codes })
}

fn meta_to_strings(meta: &AdapterMeta) -> HashMap<String, String> {
    let enum_str = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut strings = HashMap::from([
        ("format".into(), ADAPTER_FORMAT.into()),
        ("name".into(), meta.name.clone()),
        ("title".into(), meta.title.clone()),
        ("task".into(), meta.task.clone()),
        ("description".into(), meta.description.clone()),
        ("example_prompts".into(), serde_json::to_string(&meta.example_prompts).unwrap_or_default()),
        ("rank".into(), meta.rank.to_string()),
        ("alpha".into(), meta.alpha.to_string()),
        ("base_model".into(), meta.base_model.clone()),
        ("profile".into(), meta.profile.clone()),
        ("created_by".into(), meta.created_by.clone()),
        ("metrics".into(), meta.metrics.to_string()),
        ("region".into(), enum_str(serde_json::to_value(meta.region).unwrap_or_default())),
        ("scale".into(), meta.scale.to_string()),
        ("precision".into(), enum_str(serde_json::to_value(meta.precision).unwrap_or_default())),
    ]);
    if let Some(setting) = meta.setting {
        strings.insert("setting".into(), enum_str(serde_json::to_value(setting).unwrap_or_default()));
    }
    if meta.upsampling != Upsampling::default() {
        strings.insert("upsampling".into(), enum_str(serde_json::to_value(meta.upsampling).unwrap_or_default()));
    }
    if let Some(filters) = &meta.doubling_filters {
        strings.insert("doubling_filters".into(), filters.clone());
    }
    if meta.fits != PhotoFit::Any {
        strings.insert("fits".into(), enum_str(serde_json::to_value(meta.fits).unwrap_or_default()));
    }
    strings
}

fn meta_from_strings(m: &HashMap<String, String>) -> Result<AdapterMeta> {
    let get = |key: &str| m.get(key).cloned().ok_or_else(|| EngineError::Adapter(format!("metadata lacks '{key}'")));
    let parse = |key: &str, value: String| -> Result<serde_json::Value> {
        serde_json::from_str(&value).map_err(|_| EngineError::Adapter(format!("metadata '{key}' is not valid ({value})")))
    };
    let name = get("name")?;
    if name.trim().is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(EngineError::Adapter(format!("adapter name {name:?} is empty, too long or has forbidden characters")));
    }
    let rank: usize = get("rank")?.parse().map_err(|_| adapter_error(&name, "metadata 'rank' is not a number"))?;
    let alpha: f32 = get("alpha")?.parse().map_err(|_| adapter_error(&name, "metadata 'alpha' is not a number"))?;
    let scale: u32 =
        m.get("scale").map_or(Ok(1), |s| s.parse()).map_err(|_| adapter_error(&name, "metadata 'scale' is not a number"))?;
    if rank == 0 || !alpha.is_finite() || !(1..=4).contains(&scale) {
        return Err(adapter_error(&name, format!("has rank {rank}, alpha {alpha}, scale {scale}: out of range")));
    }
    let upsampling: Upsampling = m
        .get("upsampling")
        .map(|v| serde_json::from_value(serde_json::Value::String(v.clone())))
        .transpose()
        .map_err(|_| adapter_error(&name, "metadata 'upsampling' must be catmull_rom, block_matched or learned"))?
        .unwrap_or_default();
    if !upsampling.serves(scale) {
        return Err(adapter_error(
            &name,
            format!("has scale {scale}, but its upsampling ({}) only doubles", upsampling.describe()),
        ));
    }
    let doubling_filters = m.get("doubling_filters").cloned();
    if upsampling == Upsampling::Learned && doubling_filters.is_none() {
        return Err(adapter_error(
            &name,
            "says its upsampling is learned but not which fit of the filters (metadata 'doubling_filters'); retrain it with this Prism (prism-adapters train-adapter)",
        ));
    }
    let setting = m
        .get("setting")
        .map(|v| serde_json::from_value(serde_json::Value::String(v.clone())))
        .transpose()
        .map_err(|_| adapter_error(&name, "metadata 'setting' must be exposure, blur_size, deblur_size or noise_level"))?;
    let region = serde_json::from_value(serde_json::Value::String(m.get("region").cloned().unwrap_or("global".into())))
        .map_err(|_| adapter_error(&name, "metadata 'region' must be local or global"))?;
    let fits = serde_json::from_value(serde_json::Value::String(m.get("fits").cloned().unwrap_or("any".into())))
        .map_err(|_| adapter_error(&name, "metadata 'fits' must be any or grey"))?;
    let precision = serde_json::from_value(serde_json::Value::String(get("precision")?))
        .map_err(|_| adapter_error(&name, "metadata 'precision' must be int8 or float"))?;
    let example_prompts =
        serde_json::from_value(parse("example_prompts", m.get("example_prompts").cloned().unwrap_or("[]".into()))?)
            .map_err(|_| adapter_error(&name, "metadata 'example_prompts' must be a list of strings"))?;
    Ok(AdapterMeta {
        title: m.get("title").filter(|t| !t.trim().is_empty()).cloned().unwrap_or_else(|| name.clone()),
        task: m.get("task").cloned().unwrap_or_else(|| "custom".into()),
        description: m.get("description").cloned().unwrap_or_default(),
        example_prompts,
        rank,
        alpha,
        base_model: get("base_model")?,
        profile: m.get("profile").cloned().unwrap_or_default(),
        created_by: m.get("created_by").cloned().unwrap_or_default(),
        metrics: parse("metrics", m.get("metrics").cloned().unwrap_or("{}".into()))?,
        region,
        scale,
        upsampling,
        doubling_filters,
        setting,
        fits,
        precision,
        name,
    })
}

/// An installed adapter as the reference backend keeps it: kernel-layout tensors for the float
/// and the quantized model, built once at install so that switching tools only rebinds them.
#[derive(Clone, Debug)]
pub struct ResidentAdapter {
    pub meta: AdapterMeta,
    /// Float adapters were put on the shared profile at load (plain PTQ, not QUAD).
    pub quantized_on_load: bool,
    pub float: BTreeMap<String, (Tensor, Tensor)>,
    pub quantized: BTreeMap<String, (Tensor, Tensor)>,
    pub stored_bytes: usize,
}

impl ResidentAdapter {
    pub fn new(adapter: &Adapter, profile: Option<&Profile>, device: &Device) -> Result<Self> {
        // What the file is (an int8 adapter stays int8 in the listing, though its values are
        // dequantized below for the float path).
        let meta = adapter.meta.clone();
        let stored_bytes = adapter.stored_bytes();
        let dequantized;
        let adapter = match (adapter.meta.precision, profile) {
            (AdapterPrecision::Int8, Some(profile)) => {
                dequantized = adapter.dequantized(profile)?;
                &dequantized
            }
            (AdapterPrecision::Int8, None) => {
                return Err(adapter_error(&adapter.meta.name, "is int8 and needs the model's quantization profile"));
            }
            (AdapterPrecision::Float, _) => adapter,
        };
        let mut float = BTreeMap::new();
        for (layer, t) in &adapter.layers {
            float.insert(layer.clone(), t.kernel_tensors(device)?);
        }
        let (quantized, quantized_on_load) = match (meta.precision, profile) {
            (AdapterPrecision::Int8, _) => (float.clone(), false),
            (AdapterPrecision::Float, Some(profile)) => {
                let q = adapter.quantize_after_training(profile)?;
                let mut tensors = BTreeMap::new();
                for (layer, t) in &q.layers {
                    tensors.insert(layer.clone(), t.kernel_tensors(device)?);
                }
                (tensors, true)
            }
            (AdapterPrecision::Float, None) => (float.clone(), false),
        };
        Ok(Self { meta, quantized_on_load, float, quantized, stored_bytes })
    }
}

/// Binds several adapters for one forward pass: per conv, the A tensors are concatenated along
/// rank, the B tensors too, and each rank channel carries `alpha x weight x strength`. The result
/// is exactly the sum of the adapters' deltas.
pub fn bind_mix(mix: &[(&ResidentAdapter, f32)], strength: f32, quantized: bool) -> Result<LoraSet> {
    let mut per_layer: BTreeMap<&str, Vec<(&Tensor, &Tensor, f32)>> = BTreeMap::new();
    for (adapter, weight) in mix {
        let tensors = if quantized { &adapter.quantized } else { &adapter.float };
        let scale = adapter.meta.alpha * weight * strength;
        for (layer, (a, b)) in tensors {
            per_layer.entry(layer).or_default().push((a, b, scale));
        }
    }
    let mut set = LoraSet::default();
    for (layer, parts) in per_layer {
        let a_parts: Vec<&Tensor> = parts.iter().map(|p| p.0).collect();
        let b_parts: Vec<&Tensor> = parts.iter().map(|p| p.1).collect();
        let mut scales = Vec::new();
        for (a, _, s) in &parts {
            scales.extend(std::iter::repeat_n(*s, a.dim(1)?));
        }
        let device = a_parts[0].device().clone();
        let rank = scales.len();
        set.layers.insert(
            layer.to_string(),
            LoraLayer {
                a: Tensor::cat(&a_parts, 1)?,
                b: Tensor::cat(&b_parts, 0)?,
                rank_scale: Tensor::from_vec(scales, rank, &device)?,
            },
        );
    }
    Ok(set)
}

/// Shared LoRA quantizers covering every given adapter (pooled PTQ).
pub fn pooled_lora_quantizers(adapters: &[&Adapter]) -> BTreeMap<String, crate::quant::LoraQuant> {
    let mut ranges: BTreeMap<String, [f32; 4]> = BTreeMap::new();
    for adapter in adapters {
        for (layer, t) in &adapter.layers {
            let r = ranges.entry(layer.clone()).or_insert([0.0; 4]);
            for &v in &t.a {
                r[0] = r[0].min(v);
                r[1] = r[1].max(v);
            }
            for &v in &t.b {
                r[2] = r[2].min(v);
                r[3] = r[3].max(v);
            }
        }
    }
    ranges
        .into_iter()
        .map(|(layer, r)| (layer, crate::quant::LoraQuant { a: Affine::covering(r[0], r[1]), b: Affine::covering(r[2], r[3]) }))
        .collect()
}

/// A float adapter's metadata with the given identity (imports and tests).
pub fn float_meta(name: &str, base_model: &str, rank: usize, alpha: f32) -> AdapterMeta {
    AdapterMeta {
        name: name.into(),
        title: name.into(),
        task: "custom".into(),
        description: String::new(),
        example_prompts: Vec::new(),
        rank,
        alpha,
        base_model: base_model.into(),
        profile: String::new(),
        created_by: format!("prism {}", env!("CARGO_PKG_VERSION")),
        metrics: serde_json::json!({}),
        region: Region::Global,
        scale: 1,
        upsampling: Upsampling::default(),
        doubling_filters: None,
        setting: None,
        fits: PhotoFit::Any,
        precision: AdapterPrecision::Float,
    }
}

/// Imports a PEFT LoRA (`adapter_model.safetensors` + `adapter_config.json` in `dir`, or the
/// safetensors file itself with the config beside it). Scales are folded into B (alpha = 1).
pub fn import_peft(path: &Path, name: &str, base_model: &str) -> Result<Adapter> {
    let (weights, config_path) = if path.is_dir() {
        (path.join("adapter_model.safetensors"), path.join("adapter_config.json"))
    } else {
        (path.to_path_buf(), path.with_file_name("adapter_config.json"))
    };
    let config_text = std::fs::read_to_string(&config_path).map_err(|e| EngineError::io(&config_path, e))?;
    let config: serde_json::Value =
        serde_json::from_str(&config_text).map_err(|e| EngineError::file(&config_path, format!("is not valid JSON: {e}")))?;
    let rank = config["r"].as_u64().ok_or_else(|| EngineError::file(&config_path, "has no integer 'r'"))? as usize;
    let lora_alpha = config["lora_alpha"].as_f64().unwrap_or(rank as f64) as f32;
    let rslora = config["use_rslora"].as_bool().unwrap_or(false);
    let scale = if rslora { lora_alpha / (rank as f32).sqrt() } else { lora_alpha / rank as f32 };
    let file = TensorFile::read(&weights)?;
    let mut found: BTreeMap<String, (Option<&RawTensor>, Option<&RawTensor>)> = BTreeMap::new();
    for (key, raw) in &file.tensors {
        let inner = key.strip_prefix("base_model.model.").unwrap_or(key);
        if let Some(layer) = inner.strip_suffix(".lora_A.weight") {
            found.entry(layer.into()).or_default().0 = Some(raw);
        } else if let Some(layer) = inner.strip_suffix(".lora_B.weight") {
            found.entry(layer.into()).or_default().1 = Some(raw);
        } else {
            return Err(EngineError::file(&weights, format!("has tensor '{key}', which is not a PEFT LoRA A/B weight")));
        }
    }
    collect_imported(found.into_iter().map(|(l, p)| (l, p, scale)).collect(), name, base_model, rank, &weights)
}

/// Imports a kohya-style LoRA (`lora_unet_<layer>.lora_down/lora_up.weight`, `.alpha`). Layer
/// names are matched against `layers` (kohya writes them with `_` for `.`).
pub fn import_kohya(path: &Path, name: &str, base_model: &str, layers: &[String]) -> Result<Adapter> {
    let file = TensorFile::read(path)?;
    let by_kohya: HashMap<String, &String> = layers.iter().map(|l| (format!("lora_unet_{}", l.replace('.', "_")), l)).collect();
    let mut found: BTreeMap<String, KohyaParts<'_>> = BTreeMap::new();
    for (key, raw) in &file.tensors {
        let (prefix, part) = key.rsplit_once('.').unwrap_or((key, ""));
        let (prefix, part) = match part {
            "weight" => match prefix.rsplit_once('.') {
                Some((p, kind)) => (p, kind),
                None => (prefix, part),
            },
            _ => (prefix, part),
        };
        let layer = by_kohya
            .get(prefix)
            .ok_or_else(|| EngineError::file(path, format!("has tensor '{key}' for a layer this model does not have")))?;
        let entry = found.entry((*layer).clone()).or_default();
        match part {
            "lora_down" => entry.0 = Some(raw),
            "lora_up" => entry.1 = Some(raw),
            "alpha" => entry.2 = raw.to_f32().first().copied(),
            _ => {
                return Err(EngineError::file(path, format!("has tensor '{key}', which is not a kohya LoRA tensor")));
            }
        }
    }
    let rank = found.values().find_map(|(down, _, _)| down.map(|d| d.shape[0])).unwrap_or(0);
    let pairs = found
        .into_iter()
        .map(|(layer, (down, up, alpha))| {
            let scale = alpha.unwrap_or(rank as f32) / rank.max(1) as f32;
            (layer, (down, up), scale)
        })
        .collect();
    collect_imported(pairs, name, base_model, rank, path)
}

/// lora_down, lora_up and alpha of one kohya layer.
type KohyaParts<'a> = (Option<&'a RawTensor>, Option<&'a RawTensor>, Option<f32>);

type ImportedPair<'a> = (String, (Option<&'a RawTensor>, Option<&'a RawTensor>), f32);

fn collect_imported(pairs: Vec<ImportedPair<'_>>, name: &str, base_model: &str, rank: usize, path: &Path) -> Result<Adapter> {
    if pairs.is_empty() || rank == 0 {
        return Err(EngineError::file(path, "has no LoRA tensors"));
    }
    let meta = float_meta(name, base_model, rank, 1.0);
    let mut layers = BTreeMap::new();
    for (layer, (a, b), scale) in pairs {
        let (Some(a), Some(b)) = (a, b) else {
            return Err(EngineError::file(path, format!("layer '{layer}' has only one of its two LoRA tensors")));
        };
        if a.dtype == ElementType::I8 || b.dtype == ElementType::I8 {
            return Err(EngineError::file(path, format!("layer '{layer}' is int8; imported LoRAs must be float")));
        }
        let mut t = lora_from_raw(&meta, &layer, a, b).map_err(|e| EngineError::file(path, e.to_string()))?;
        t.b.iter_mut().for_each(|v| *v *= scale);
        layers.insert(layer, t);
    }
    Ok(Adapter { meta, layers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{random_adapter, random_model, tiny_config};

    fn largest_error(adapter: &Adapter, of: &Adapter) -> f32 {
        adapter
            .layers
            .keys()
            .flat_map(|name| adapter.delta(name).unwrap().into_iter().zip(of.delta(name).unwrap()))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// An adapter trained in float with A far over its grid beside a small B (as the look tool's
    /// head learns) comes back inside both grids with the same B A, and rounds much closer to it.
    #[test]
    fn balancing_keeps_b_a_fits_the_grids_and_rounds_closer() {
        let model = random_model(&tiny_config(), 1).unwrap();
        let mut adapter = random_adapter(&model, "look", 3, 7, Region::Global).unwrap();
        for t in adapter.layers.values_mut() {
            t.a.iter_mut().for_each(|v| *v *= 40.0);
            t.b.iter_mut().for_each(|v| *v = 0.01 * v.signum());
        }
        let grid = LoraQuant { a: Affine::covering(-1.0, 1.0), b: Affine::covering(-0.5, 0.5) };
        let lora = adapter.layers.keys().map(|name| (name.clone(), grid)).collect();
        let profile = Profile::new("test", 16, Default::default(), lora, "test").unwrap();
        assert!(adapter.layers.values().any(|t| t.a.iter().any(|v| v.abs() > 1.0)), "the test starts over A's grid");

        let balanced = adapter.balanced_to(&profile).unwrap();
        for (name, t) in &balanced.layers {
            let (kept, now) = (adapter.delta(name).unwrap(), balanced.delta(name).unwrap());
            for (x, y) in kept.iter().zip(&now) {
                assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{name}: B A changed");
            }
            assert!(t.a.iter().all(|&v| grid.a.reach(v) <= 1.0) && t.b.iter().all(|&v| grid.b.reach(v) <= 1.0), "{name}");
        }
        let rounded_as_is = largest_error(&adapter.quantize(&profile).unwrap(), &adapter);
        let rounded_balanced = largest_error(&adapter.quantize_after_training(&profile).unwrap(), &adapter);
        assert!(rounded_balanced < 0.2 * rounded_as_is, "balanced {rounded_balanced} against as is {rounded_as_is}");
    }
}
