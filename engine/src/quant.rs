//! The shared quantization profile and QuantSim (fake-quant) semantics.
//!
//! Exact semantics, which every backend must reproduce (a GPU kernel may compute in f32 after
//! dequantizing; its stored tensors are the quantized ones):
//! - Base weights: int8, symmetric, per output channel. `s_c = max|W_c| / 127`,
//!   `q = clamp(round(W / s_c), -127, 127)`, the conv uses `q * s_c`. Biases stay f32.
//! - Activations: static symmetric per-tensor scales from calibration, int16 (W8A16, default) or
//!   int8 (W8A8). At each point named by [`ActivationHook::visit`] the stored value is
//!   `s * clamp(round(x / s), -2^(b-1), 2^(b-1)-1)`. The points are `input`, every `<conv>.out`
//!   (after bias, LoRA and the leaky ReLU), every residual `<block>.add`, and `<conv>.lora_mid` (the rank-r
//!   intermediate `A(x)`, before the per-rank scale). Concat, upsample and pixel (un)shuffle move
//!   values without changing them and are not quantization points.
//! - LoRA tensors: int8 affine, ONE scale/zero-point per tensor kind (A or B) and layer, shared by
//!   every adapter (QUAD). `q = clamp(round(x / s) + z, -128, 127)`, value `(q - z) * s`.
//! - `round` is round-half-away-from-zero (f32 `round`), the same in WGSL via `sign(x)*floor(|x|+0.5)`.

use std::collections::BTreeMap;

use candle_core::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::conv::oihw_values_to_kernel;
use crate::error::{EngineError, Result};
use crate::tensorfile::{RawTensor, TensorFile};
use crate::unet::{ARCH_NAME, ActivationHook, Unet, UnetConfig, config_from_metadata, config_json, short_hash};

pub const PROFILE_FORMAT: &str = "prism-profile";

/// One affine int8 quantizer (LoRA tensors).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub scale: f32,
    pub zero_point: i32,
}

impl Affine {
    /// The affine int8 grid that covers `[min, max]` (always including 0).
    pub fn covering(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = ((max - min) / 255.0).max(1e-12);
        let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
        Self { scale, zero_point }
    }

    pub fn quantize(&self, x: f32) -> i8 {
        ((x / self.scale).round() + self.zero_point as f32).clamp(-128.0, 127.0) as i8
    }

    pub fn dequantize(&self, q: i8) -> f32 {
        (q as i32 - self.zero_point) as f32 * self.scale
    }

    /// How far toward the grid's end on its own side `x` reaches: 1 at the last code, over 1
    /// where it would be clipped.
    pub fn reach(&self, x: f32) -> f32 {
        let high = ((127 - self.zero_point) as f32 * self.scale).max(1e-12);
        let low = ((-128 - self.zero_point) as f32 * self.scale).min(-1e-12);
        if x > 0.0 { x / high } else { x / low }
    }
}

/// Shared LoRA quantizers of one conv.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraQuant {
    pub a: Affine,
    pub b: Affine,
}

/// The one quantization profile every adapter of a base model is trained for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub format: String,
    /// Hash of everything below; adapters name it.
    pub id: String,
    /// Hash of the float base model this profile was calibrated on.
    pub base_model: String,
    /// 16 (W8A16) or 8 (W8A8).
    pub activation_bits: u32,
    /// Static activation scale per quantization point.
    pub activations: BTreeMap<String, f32>,
    /// Shared LoRA quantizers per conv.
    pub lora: BTreeMap<String, LoraQuant>,
    /// How the LoRA quantizers were chosen (e.g. "ptq-pooled", "quad-anchor:remove").
    pub method: String,
}

impl Profile {
    /// Builds a profile and computes its id.
    pub fn new(
        base_model: &str,
        activation_bits: u32,
        activations: BTreeMap<String, f32>,
        lora: BTreeMap<String, LoraQuant>,
        method: &str,
    ) -> Result<Self> {
        if activation_bits != 8 && activation_bits != 16 {
            return Err(EngineError::Model(format!("activations are int8 or int16, not int{activation_bits}")));
        }
        let mut profile = Self {
            format: PROFILE_FORMAT.into(),
            id: String::new(),
            base_model: base_model.into(),
            activation_bits,
            activations,
            lora,
            method: method.into(),
        };
        profile.id = profile.compute_id();
        Ok(profile)
    }

    fn compute_id(&self) -> String {
        let mut body = self.clone();
        body.id = String::new();
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_string(&body).unwrap_or_default().as_bytes());
        short_hash(hasher)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a profile and checks its id matches its content.
    pub fn from_json(json: &str) -> Result<Self> {
        let profile: Self =
            serde_json::from_str(json).map_err(|e| EngineError::Model(format!("quantization profile is invalid: {e}")))?;
        if profile.format != PROFILE_FORMAT {
            return Err(EngineError::Model("this is not a Prism quantization profile".into()));
        }
        if profile.compute_id() != profile.id {
            return Err(EngineError::Model(format!(
                "quantization profile {} does not match its content: the file is damaged",
                profile.id
            )));
        }
        if profile
            .activations
            .values()
            .chain(profile.lora.values().flat_map(|l| [&l.a.scale, &l.b.scale]))
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(EngineError::Model("quantization profile has a scale that is not a positive number".into()));
        }
        Ok(profile)
    }

    fn qmax(&self) -> f32 {
        ((1i64 << (self.activation_bits - 1)) - 1) as f32
    }

    /// Checks the profile covers every quantization point and conv of `model`.
    pub fn check_covers(&self, model: &UnetConfig) -> Result<()> {
        for spec in model.convs() {
            let point = format!("{}.out", spec.name);
            if !self.activations.contains_key(&point) {
                return Err(EngineError::Model(format!("quantization profile {} has no scale for '{point}'", self.id)));
            }
            if !self.lora.contains_key(&spec.name) {
                return Err(EngineError::Model(format!(
                    "quantization profile {} has no LoRA quantizer for '{}'",
                    self.id, spec.name
                )));
            }
        }
        Ok(())
    }
}

/// Symmetric fake-quant at a static scale: `s * clamp(round(x / s), -qmax-1, qmax)`.
pub fn fake_quant_symmetric(x: &Tensor, scale: f32, qmax: f32) -> Result<Tensor> {
    let q = (x / scale as f64)?.round()?.clamp(-qmax - 1.0, qmax)?;
    Ok((q * scale as f64)?)
}

/// QuantSim activations: rounds every quantization point to the profile's static scale.
pub struct QuantSim<'a> {
    pub profile: &'a Profile,
}

impl ActivationHook for QuantSim<'_> {
    fn visit(&mut self, point: &str, x: Tensor) -> Result<Tensor> {
        let scale = if let Some(scale) = self.profile.activations.get(point) {
            *scale
        } else {
            return Err(EngineError::Model(format!(
                "quantization profile {} has no scale for '{point}': recalibrate it for this model",
                self.profile.id
            )));
        };
        fake_quant_symmetric(&x, scale, self.profile.qmax())
    }
}

/// Stored tensors by quantization point: what the layer-by-layer checks compare against.
pub type StoredTensors = BTreeMap<String, Vec<f32>>;

/// QuantSim (or, with `sim: None`, the float model) keeping every stored tensor by point: the
/// reference of the wgpu and integer-kernel layer-by-layer checks.
pub struct Recorder<'a> {
    pub sim: Option<QuantSim<'a>>,
    pub values: StoredTensors,
}

impl<'a> Recorder<'a> {
    pub fn new(sim: Option<QuantSim<'a>>) -> Self {
        Self { sim, values: StoredTensors::new() }
    }
}

impl ActivationHook for Recorder<'_> {
    fn visit(&mut self, point: &str, x: Tensor) -> Result<Tensor> {
        let y = match &mut self.sim {
            Some(sim) => sim.visit(point, x)?,
            None => x,
        };
        self.values.insert(point.to_string(), y.flatten_all()?.to_vec1::<f32>()?);
        Ok(y)
    }
}

/// Calibration: records the largest magnitude seen at every quantization point.
#[derive(Default, Debug, Clone)]
pub struct RangeObserver {
    pub absmax: BTreeMap<String, f32>,
}

impl ActivationHook for RangeObserver {
    fn visit(&mut self, point: &str, x: Tensor) -> Result<Tensor> {
        let m: f32 = x.abs()?.flatten_all()?.max(0)?.to_scalar()?;
        let entry = self.absmax.entry(point.to_string()).or_insert(0.0);
        *entry = entry.max(m);
        Ok(x)
    }
}

impl RangeObserver {
    /// Static scales for `bits`-bit symmetric activations covering the observed ranges.
    pub fn scales(&self, bits: u32) -> BTreeMap<String, f32> {
        let qmax = ((1i64 << (bits - 1)) - 1) as f32;
        self.absmax.iter().map(|(k, m)| (k.clone(), (m.max(1e-6)) / qmax)).collect()
    }
}

/// Per-output-channel symmetric int8 quantization of a kernel-layout weight `[rows, cout]`.
pub fn quantize_weight_per_channel(weight: &Tensor) -> Result<(Vec<i8>, Vec<f32>)> {
    let (rows, cout) = weight.dims2()?;
    let values = weight.flatten_all()?.to_vec1::<f32>()?;
    let mut scales = vec![0f32; cout];
    for r in 0..rows {
        for c in 0..cout {
            scales[c] = scales[c].max(values[r * cout + c].abs());
        }
    }
    for s in &mut scales {
        *s = (*s / 127.0).max(1e-12);
    }
    let q = values.iter().enumerate().map(|(i, v)| (v / scales[i % cout]).round().clamp(-127.0, 127.0) as i8).collect();
    Ok((q, scales))
}

fn dequantize_weight(q: &[i8], scales: &[f32], shape: (usize, usize), device: &candle_core::Device) -> Result<Tensor> {
    let cout = shape.1;
    let values: Vec<f32> = q.iter().enumerate().map(|(i, &v)| v as f32 * scales[i % cout]).collect();
    Ok(Tensor::from_vec(values, shape, device)?)
}

/// The model whose weights are what int8 storage holds (`q * s` per channel).
pub fn quantized_weights_model(model: &Unet) -> Result<Unet> {
    model.map_weights(|_, weight| {
        let (q, scales) = quantize_weight_per_channel(weight)?;
        dequantize_weight(&q, &scales, weight.dims2()?, weight.device())
    })
}

/// The int8 base model file: int8 weights `[cout,cin,k,k]`, `<conv>.weight_scale [cout]`, f32 bias.
pub fn int8_model_file(model: &Unet) -> Result<TensorFile> {
    let mut file = TensorFile::default();
    for (spec, kernel, bias) in model.layers() {
        let (q, scales) = quantize_weight_per_channel(kernel)?;
        file.tensors.insert(spec.weight_name(), RawTensor::from_i8(spec.weight_shape(), &kernel_to_oihw_i8(&q, spec)));
        file.tensors.insert(format!("{}.weight_scale", spec.name), RawTensor::from_f32(vec![spec.cout], &scales));
        file.tensors.insert(spec.bias_name(), crate::unet::raw_f32(bias)?);
    }
    file.metadata.insert("format".into(), ARCH_NAME.into());
    file.metadata.insert("precision".into(), "int8".into());
    file.metadata.insert("config".into(), config_json(model.config()));
    file.metadata.insert("base_model".into(), model.content_hash()?);
    Ok(file)
}

/// Kernel layout `[(ky,kx,cin), cout]` to file layout `[cout, cin, ky, kx]`, for int8 values.
pub(crate) fn kernel_to_oihw_i8(q: &[i8], spec: &crate::unet::ConvSpec) -> Vec<i8> {
    let (k, cin, cout) = (spec.k, spec.cin, spec.cout);
    let mut out = vec![0i8; q.len()];
    for ky in 0..k {
        for kx in 0..k {
            for ci in 0..cin {
                for co in 0..cout {
                    out[((co * cin + ci) * k + ky) * k + kx] = q[((ky * k + kx) * cin + ci) * cout + co];
                }
            }
        }
    }
    out
}

/// An int8 base as its file holds it: what the integer CPU kernels pack directly, and what the
/// QuantSim model is made from when something needs it.
#[derive(Clone, Debug)]
pub struct Int8Base {
    pub config: UnetConfig,
    /// Per conv, in the order of [`UnetConfig::convs`].
    pub convs: Vec<Int8Conv>,
    /// The hash of the float model it was made from.
    pub base_model: String,
}

/// One conv's int8 weights: codes in the kernel layout `[k*k*cin, cout]`, a scale per output
/// channel, and the f32 bias.
#[derive(Clone)]
pub struct Int8Conv {
    pub codes: Vec<i8>,
    pub scales: Vec<f32>,
    pub bias: Vec<f32>,
}

impl std::fmt::Debug for Int8Conv {
    // Sizes only: a model printed for a log would otherwise print millions of codes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Int8Conv {{ {} codes, {} channels }}", self.codes.len(), self.scales.len())
    }
}

impl Int8Base {
    /// Reads an int8 base file, checking every conv's tensors against the config.
    pub fn from_file(file: &TensorFile) -> Result<Self> {
        let config = config_from_metadata(file)?;
        if file.meta("precision") != Some("int8") {
            return Err(EngineError::Model("this weights file is not an int8 prism-unet model".into()));
        }
        let specs = config.convs();
        let mut stored = Vec::with_capacity(specs.len());
        for spec in &specs {
            let weight = file.tensors.get(&spec.weight_name());
            let scale = file.tensors.get(&format!("{}.weight_scale", spec.name));
            let bias = file.tensors.get(&spec.bias_name());
            let (Some(weight), Some(scale), Some(bias)) = (weight, scale, bias) else {
                return Err(EngineError::Model(format!("int8 model lacks the weight, weight_scale or bias of '{}'", spec.name)));
            };
            if weight.shape != spec.weight_shape() || scale.shape != [spec.cout] || bias.shape != [spec.cout] {
                return Err(EngineError::Model(format!(
                    "int8 tensors of '{}' have the wrong shape for the model config",
                    spec.name
                )));
            }
            stored.push((spec, weight, scale, bias));
        }
        if 3 * stored.len() != file.tensors.len() {
            let known: std::collections::HashSet<String> =
                specs.iter().flat_map(|s| [s.weight_name(), s.bias_name(), format!("{}.weight_scale", s.name)]).collect();
            let unknown = file.tensors.keys().find(|k| !known.contains(*k)).cloned().unwrap_or_default();
            return Err(EngineError::Model(format!("unknown tensor '{unknown}' in the int8 model")));
        }
        // The codes into the kernel layout, the convs side by side.
        let convs = stored
            .into_par_iter()
            .map(|(spec, weight, scale, bias)| {
                let codes =
                    weight.to_i8().ok_or_else(|| EngineError::Model(format!("tensor '{}' must be int8", spec.weight_name())))?;
                Ok(Int8Conv {
                    codes: oihw_values_to_kernel(&codes, spec.cout, spec.cin, spec.k * spec.k),
                    scales: scale.to_f32(),
                    bias: bias.to_f32(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let base_model = file.meta("base_model").unwrap_or_default().to_string();
        Ok(Self { config, convs, base_model })
    }

    /// The model it stands for (weights = codes x per-channel scales): what QuantSim runs.
    pub fn dequantized(&self, device: &candle_core::Device) -> Result<Unet> {
        let layers = self
            .convs
            .par_iter()
            .map(|conv| {
                let cout = conv.scales.len();
                let values: Vec<f32> =
                    conv.codes.iter().enumerate().map(|(i, &c)| f32::from(c) * conv.scales[i % cout]).collect();
                Ok((
                    Tensor::from_vec(values, (conv.codes.len() / cout, cout), device)?,
                    Tensor::from_vec(conv.bias.clone(), cout, device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Unet::from_kernel_tensors(&self.config, layers)
    }
}
