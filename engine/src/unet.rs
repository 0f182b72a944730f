//! prism-unet's weights and the reference lowering of its graph (see `graph` for the structure).
//!
//! NHWC throughout, so every conv is an im2col + matmul (see `conv`). Every conv takes an optional LoRA side path `y = conv(W,x) + B(s * q(A(x)))` where `s` holds one
//! scale per rank channel (alpha x adapter weight x strength), so blending adapters is exact rank
//! concatenation. Activations pass through an [`ActivationHook`] at each quantization point: the
//! float model uses the identity, QuantSim rounds to the profile's static scales, calibration
//! records ranges. The same code trains the model (candle autograd) and runs inference.

use std::collections::{BTreeMap, HashMap};

use candle_core::{D, Device, Tensor};
use sha2::{Digest, Sha256};

use crate::conv::{add_bias, conv_nhwc, kernel_to_oihw, oihw_values_to_kernel};
use crate::error::{EngineError, Result};
use crate::graph::{Graph, Node, SHUFFLE, ValueId, missing_value};
use crate::tensorfile::{RawTensor, TensorFile};

pub use crate::graph::{ARCH_NAME, ARCH_VERSION, ConvSpec, INPUT_CHANNELS, LEAKY_SLOPE, OUTPUT_CHANNELS, UnetConfig};

/// What happens to activations at each quantization point.
pub trait ActivationHook {
    /// Called with the tensor stored at `point` (e.g. `input`, `stem.out`, `enc0.res0.add`,
    /// `stem.lora_mid`); returns the tensor the next op reads.
    fn visit(&mut self, point: &str, x: Tensor) -> Result<Tensor>;
}

/// The float model: activations pass unchanged.
pub struct FloatActivations;

impl ActivationHook for FloatActivations {
    fn visit(&mut self, _point: &str, x: Tensor) -> Result<Tensor> {
        Ok(x)
    }
}

/// LoRA side path of one conv, in kernel layout.
#[derive(Clone, Debug)]
pub struct LoraLayer {
    /// `[k*k*cin, rank]`
    pub a: Tensor,
    /// `[rank, cout]`
    pub b: Tensor,
    /// `[rank]`: alpha x mix weight x strength, per rank channel.
    pub rank_scale: Tensor,
}

/// LoRA side paths bound for one forward pass, by conv name.
#[derive(Clone, Debug, Default)]
pub struct LoraSet {
    pub layers: HashMap<String, LoraLayer>,
}

/// The model's parameters in kernel layout.
#[derive(Clone, Debug)]
pub struct Unet {
    config: UnetConfig,
    graph: Graph,
    /// Kernel-layout weight and bias of each of `graph.convs`, in the same order.
    weights: Vec<(Tensor, Tensor)>,
}

impl Unet {
    /// Builds the model from `<conv>.weight [cout,cin,k,k]` and `<conv>.bias [cout]` tensors; a
    /// missing, mis-shaped or unknown tensor is an error that names it.
    pub fn new(config: &UnetConfig, tensors: &BTreeMap<String, Tensor>) -> Result<Self> {
        config.validate()?;
        let graph = config.graph();
        let specs = &graph.convs;
        let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for spec in specs {
            expected.insert(spec.weight_name(), spec.weight_shape());
            expected.insert(spec.bias_name(), vec![spec.cout]);
        }
        if let Some(unknown) = tensors.keys().find(|k| !expected.contains_key(*k)) {
            return Err(EngineError::Model(format!("unknown tensor '{unknown}' in the model weights")));
        }
        for (name, shape) in &expected {
            let tensor = tensors.get(name).ok_or_else(|| EngineError::Model(format!("model weights lack tensor '{name}'")))?;
            if tensor.dims() != shape.as_slice() {
                return Err(EngineError::Model(format!(
                    "tensor '{name}' has shape {:?}, the model config needs {shape:?}",
                    tensor.dims()
                )));
            }
        }
        let mut weights = Vec::with_capacity(specs.len());
        for spec in specs {
            let oihw = tensors[&spec.weight_name()].flatten_all()?.to_vec1::<f32>()?;
            let kernel = oihw_values_to_kernel(&oihw, spec.cout, spec.cin, spec.k * spec.k);
            let weight = Tensor::from_vec(kernel, (spec.k * spec.k * spec.cin, spec.cout), tensors[&spec.bias_name()].device())?;
            weights.push((weight, tensors[&spec.bias_name()].clone()));
        }
        Ok(Self { config: config.clone(), graph, weights })
    }

    /// Builds the model from kernel-layout `(weight [k*k*cin, cout], bias [cout])` pairs in the
    /// order of [`UnetConfig::convs`]; training passes its variables here so gradients reach them.
    pub fn from_kernel_tensors(config: &UnetConfig, layers: Vec<(Tensor, Tensor)>) -> Result<Self> {
        config.validate()?;
        let graph = config.graph();
        if graph.convs.len() != layers.len() {
            return Err(EngineError::Model(format!(
                "the model has {} convolutions, {} were given",
                graph.convs.len(),
                layers.len()
            )));
        }
        for (spec, (weight, bias)) in graph.convs.iter().zip(&layers) {
            if weight.dims() != [spec.k * spec.k * spec.cin, spec.cout] || bias.dims() != [spec.cout] {
                return Err(EngineError::Model(format!("kernel tensors of '{}' have the wrong shape", spec.name)));
            }
        }
        Ok(Self { config: config.clone(), graph, weights: layers })
    }

    /// A model with random weights (He init, residual branches scaled down): for tests and as the
    /// starting point of training.
    pub fn random_tensors(config: &UnetConfig, seed: u64, device: &Device) -> Result<BTreeMap<String, Tensor>> {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut tensors = BTreeMap::new();
        for spec in config.convs() {
            let fan_in = (spec.cin * spec.k * spec.k) as f32;
            let mut std = (2.0 / fan_in).sqrt();
            if spec.name.ends_with(".conv2") || spec.name == "head" {
                std *= 0.1;
            }
            let normal = rand_distr::Normal::new(0f32, std).map_err(|e| EngineError::Model(e.to_string()))?;
            let count = spec.cout * spec.cin * spec.k * spec.k;
            let values: Vec<f32> = (0..count).map(|_| normal.sample(&mut rng)).collect();
            tensors.insert(spec.weight_name(), Tensor::from_vec(values, spec.weight_shape(), device)?);
            tensors.insert(spec.bias_name(), Tensor::zeros(spec.cout, candle_core::DType::F32, device)?);
        }
        Ok(tensors)
    }

    pub fn config(&self) -> &UnetConfig {
        &self.config
    }

    /// The structure every backend lowers.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn convs(&self) -> impl Iterator<Item = &ConvSpec> {
        self.graph.convs.iter()
    }

    /// Every conv with its kernel-layout weight and bias.
    pub fn layers(&self) -> impl Iterator<Item = (&ConvSpec, &Tensor, &Tensor)> {
        self.graph.convs.iter().zip(&self.weights).map(|(spec, (weight, bias))| (spec, weight, bias))
    }

    pub fn spec(&self, name: &str) -> Option<&ConvSpec> {
        self.convs().find(|s| s.name == name)
    }

    /// Weights back in file layout (`[cout,cin,k,k]`), keyed by tensor name.
    pub fn tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (spec, weight, bias) in self.layers() {
            out.insert(spec.weight_name(), kernel_to_oihw(weight, spec.k)?);
            out.insert(spec.bias_name(), bias.clone());
        }
        Ok(out)
    }

    /// The same model with every weight replaced by `f(spec, kernel-layout weight)`.
    pub fn map_weights(&self, mut f: impl FnMut(&ConvSpec, &Tensor) -> Result<Tensor>) -> Result<Self> {
        let mut weights = Vec::with_capacity(self.weights.len());
        for (spec, weight, bias) in self.layers() {
            weights.push((f(spec, weight)?, bias.clone()));
        }
        Ok(Self { config: self.config.clone(), graph: self.graph.clone(), weights })
    }

    /// Runs the model on `input [N,H,W,4]` (H, W multiples of `alignment`) and returns the RGB
    /// residual `[N,H,W,3]`.
    pub fn forward(&self, input: &Tensor, lora: Option<&LoraSet>, hook: &mut dyn ActivationHook) -> Result<Tensor> {
        let (_, h, w, c) = input.dims4()?;
        let align = self.config.alignment();
        if c != INPUT_CHANNELS || h % align != 0 || w % align != 0 || h == 0 || w == 0 {
            return Err(EngineError::Model(format!(
                "model input must be [N,H,W,{INPUT_CHANNELS}] with H and W multiples of {align}, got {:?}",
                input.dims()
            )));
        }
        let value = |values: &[Option<Tensor>], id: ValueId| values[id].clone().ok_or_else(|| missing_value(id));
        let mut values: Vec<Option<Tensor>> = vec![None; self.graph.nodes.len()];
        for (index, (node, last_reads)) in self.graph.nodes.iter().zip(self.graph.last_reads()).enumerate() {
            let out = match node {
                Node::Input => hook.visit("input", input.clone())?,
                Node::Unshuffle { x } => pixel_unshuffle(&value(&values, *x)?, SHUFFLE)?,
                Node::Conv { conv, x, join } => {
                    let mut x = value(&values, *x)?;
                    if let Some(join) = join {
                        let main = if join.upsamples_x() { upsample_nearest2(&x)? } else { x };
                        x = Tensor::cat(&[&main, &value(&values, join.value())?], D::Minus1)?;
                    }
                    let (spec, (weight, bias)) = (&self.graph.convs[*conv], &self.weights[*conv]);
                    conv_layer(spec, weight, bias, &x, lora.and_then(|l| l.layers.get(&spec.name)), hook)?
                }
                Node::Add { x, y, point } => hook.visit(point, (value(&values, *x)? + value(&values, *y)?)?)?,
                Node::Shuffle { x } => pixel_shuffle(&value(&values, *x)?, SHUFFLE)?,
            };
            values[index] = Some(out);
            // Inference frees activations as soon as nothing reads them (training's autograd
            // keeps what it needs on its own).
            for read in last_reads {
                values[read] = None;
            }
        }
        values.pop().flatten().ok_or_else(|| missing_value(self.graph.nodes.len()))
    }

    /// Content hash of config and weights: what adapters and profiles are bound to.
    pub fn content_hash(&self) -> Result<String> {
        hash_tensors(&self.config, &self.tensors()?)
    }

    /// Saves the float model as safetensors with config and hash in the metadata.
    pub fn to_file(&self) -> Result<TensorFile> {
        let mut file = TensorFile::default();
        for (name, tensor) in self.tensors()? {
            file.tensors.insert(name, raw_f32(&tensor)?);
        }
        file.metadata.insert("format".into(), ARCH_NAME.into());
        file.metadata.insert("precision".into(), "float".into());
        file.metadata.insert("config".into(), config_json(&self.config));
        file.metadata.insert("hash".into(), self.content_hash()?);
        Ok(file)
    }

    /// The model with every weight and bias rounded to f16 and saved as such: half the bytes,
    /// for a training checkpoint kept between sessions (the hash is the rounded model's).
    pub fn to_half_file(&self) -> Result<TensorFile> {
        let round =
            |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(candle_core::DType::F16)?.to_dtype(candle_core::DType::F32)?) };
        let weights = self.weights.iter().map(|(w, b)| Ok((round(w)?, round(b)?))).collect::<Result<Vec<_>>>()?;
        let rounded = Self { config: self.config.clone(), graph: self.graph.clone(), weights };
        let mut file = rounded.to_file()?;
        for (name, tensor) in rounded.tensors()? {
            let values = tensor.flatten_all()?.to_vec1::<f32>()?;
            file.tensors.insert(name, RawTensor::from_f32_as_f16(tensor.dims().to_vec(), &values));
        }
        Ok(file)
    }

    /// The file a model directory keeps: f16 when that loses nothing (every value is an f16, as in
    /// a base trained from its f16 export), half the bytes of f32 for the same hash; f32 otherwise.
    pub fn to_smallest_file(&self) -> Result<TensorFile> {
        let half = self.to_half_file()?;
        if half.meta("hash") == Some(self.content_hash()?.as_str()) { Ok(half) } else { self.to_file() }
    }

    /// Loads a float model written by [`Unet::to_file`] (f32) or [`Unet::to_half_file`] (f16),
    /// checking its stored hash.
    pub fn from_file(file: &TensorFile, device: &Device) -> Result<Self> {
        let config = config_from_metadata(file)?;
        if file.meta("precision") != Some("float") {
            return Err(EngineError::Model("this weights file is not a float prism-unet model".into()));
        }
        let mut tensors = BTreeMap::new();
        for (name, raw) in &file.tensors {
            if !matches!(raw.dtype, crate::tensorfile::ElementType::F32 | crate::tensorfile::ElementType::F16) {
                return Err(EngineError::Model(format!("tensor '{name}' must be f32 or f16 in a float model")));
            }
            tensors.insert(name.clone(), Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), device)?);
        }
        let model = Self::new(&config, &tensors)?;
        let stored = file.meta("hash").unwrap_or_default();
        // The file's own tensors: what `content_hash` would turn the model back into.
        let actual = hash_tensors(&config, &tensors)?;
        if stored != actual {
            return Err(EngineError::Model(format!(
                "model weights do not match their recorded hash ({stored} recorded, {actual} computed): the file is damaged"
            )));
        }
        Ok(model)
    }
}

pub(crate) fn config_json(config: &UnetConfig) -> String {
    // A plain struct of strings and numbers always serialises.
    serde_json::to_string(config).unwrap_or_default()
}

pub(crate) fn config_from_metadata(file: &TensorFile) -> Result<UnetConfig> {
    if file.meta("format") != Some(ARCH_NAME) {
        return Err(EngineError::Model(format!("this is not a {ARCH_NAME} weights file (no 'format: {ARCH_NAME}' metadata)")));
    }
    let json = file.meta("config").ok_or_else(|| EngineError::Model("model file has no config metadata".into()))?;
    let config: UnetConfig =
        serde_json::from_str(json).map_err(|e| EngineError::Model(format!("model config metadata is invalid: {e}")))?;
    config.validate()?;
    Ok(config)
}

pub(crate) fn raw_f32(tensor: &Tensor) -> Result<RawTensor> {
    Ok(RawTensor::from_f32(tensor.dims().to_vec(), &tensor.flatten_all()?.to_vec1::<f32>()?))
}

/// sha256 over the config and every tensor (name, shape, f32 bytes), first 16 hex digits.
pub fn hash_tensors(config: &UnetConfig, tensors: &BTreeMap<String, Tensor>) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(config_json(config).as_bytes());
    for (name, tensor) in tensors {
        hasher.update(name.as_bytes());
        hasher.update(format!("{:?}", tensor.dims()).as_bytes());
        let bytes: Vec<u8> = tensor.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect();
        hasher.update(&bytes);
    }
    Ok(short_hash(hasher))
}

pub(crate) fn short_hash(hasher: Sha256) -> String {
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn conv_layer(
    spec: &ConvSpec,
    weight: &Tensor,
    bias: &Tensor,
    x: &Tensor,
    lora: Option<&LoraLayer>,
    hook: &mut dyn ActivationHook,
) -> Result<Tensor> {
    let mut y = add_bias(&conv_nhwc(x, weight, spec.geometry())?, bias)?;
    if let Some(lora) = lora {
        let mid = conv_nhwc(x, &lora.a, spec.geometry())?;
        let mid = hook.visit(&format!("{}.lora_mid", spec.name), mid)?.broadcast_mul(&lora.rank_scale)?;
        let (n, h, w, rank) = mid.dims4()?;
        let delta = mid.reshape((n * h * w, rank))?.matmul(&lora.b)?.reshape((n, h, w, spec.cout))?;
        y = (y + delta)?;
    }
    if spec.leaky_relu {
        y = y.maximum(&(&y * LEAKY_SLOPE as f64)?)?;
    }
    hook.visit(&format!("{}.out", spec.name), y)
}

/// `[N,H,W,C] -> [N,H/f,W/f,C*f*f]`, channel order `(dy, dx, c)`.
pub fn pixel_unshuffle(x: &Tensor, f: usize) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    x.reshape((n, h / f, f, w / f, f, c))?.permute((0, 1, 3, 2, 4, 5))?.contiguous()?.reshape((n, h / f, w / f, f * f * c))
}

/// Inverse of [`pixel_unshuffle`].
pub fn pixel_shuffle(x: &Tensor, f: usize) -> candle_core::Result<Tensor> {
    let (n, h, w, cff) = x.dims4()?;
    let c = cff / (f * f);
    x.reshape((n, h, w, f, f, c))?.permute((0, 1, 3, 2, 4, 5))?.contiguous()?.reshape((n, h * f, w * f, c))
}

/// Nearest-neighbour x2 upsampling in NHWC.
pub fn upsample_nearest2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    x.reshape((n, h, 1, w, 1, c))?.broadcast_as((n, h, 2, w, 2, c))?.contiguous()?.reshape((n, h * 2, w * 2, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensorfile::ElementType;

    pub(crate) fn tiny_config() -> UnetConfig {
        UnetConfig::new(vec![8, 12], vec![1, 1], 4).unwrap()
    }

    #[test]
    fn forward_shape_and_alignment_errors() {
        let dev = Device::Cpu;
        let config = tiny_config();
        let model = Unet::new(&config, &Unet::random_tensors(&config, 1, &dev).unwrap()).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 12, 20, 4), &dev).unwrap();
        let y = model.forward(&x, None, &mut FloatActivations).unwrap();
        assert_eq!(y.dims(), &[1, 12, 20, 3]);
        let bad = Tensor::zeros((1, 10, 20, 4), candle_core::DType::F32, &dev).unwrap();
        let err = model.forward(&bad, None, &mut FloatActivations).unwrap_err().to_string();
        assert!(err.contains("multiples of 4"), "{err}");
    }

    /// The gradient of the whole model (every weight, through shuffles, skips and upsampling)
    /// agrees with a finite difference along a random direction.
    #[test]
    fn model_gradient_matches_finite_difference() {
        use candle_core::Var;
        let dev = Device::Cpu;
        let config = tiny_config();
        let start = Unet::new(&config, &Unet::random_tensors(&config, 3, &dev).unwrap()).unwrap();
        let vars: Vec<(Var, Var)> =
            start.layers().map(|(_, w, b)| (Var::from_tensor(w).unwrap(), Var::from_tensor(b).unwrap())).collect();
        // Seeded values: the check is the same on every run.
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let normal = rand_distr::Normal::new(0f32, 1.0).unwrap();
        let mut randn = |shape: &[usize]| {
            let values: Vec<f32> = (0..shape.iter().product()).map(|_| normal.sample(&mut rng)).collect();
            Tensor::from_vec(values, shape, &dev).unwrap()
        };
        let x = randn(&[2, 8, 12, 4]);
        let probe = randn(&[2, 8, 12, 3]);
        let loss = |shift: f64, direction: &[(Tensor, Tensor)]| -> (Tensor, Unet) {
            let layers = vars
                .iter()
                .zip(direction)
                .map(|((w, b), (dw, db))| {
                    ((w.as_tensor() + (dw * shift).unwrap()).unwrap(), (b.as_tensor() + (db * shift).unwrap()).unwrap())
                })
                .collect();
            let model = Unet::from_kernel_tensors(&config, layers).unwrap();
            let y = model.forward(&x, None, &mut FloatActivations).unwrap();
            ((y * &probe).unwrap().sum_all().unwrap(), model)
        };
        let direction: Vec<(Tensor, Tensor)> = vars.iter().map(|(w, b)| (randn(w.dims()), randn(b.dims()))).collect();
        let zero: Vec<(Tensor, Tensor)> =
            direction.iter().map(|(w, b)| (w.zeros_like().unwrap(), b.zeros_like().unwrap())).collect();
        // Gradients with respect to the variables themselves (shift 0 keeps them in the graph).
        let layers = vars.iter().map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone())).collect();
        let model = Unet::from_kernel_tensors(&config, layers).unwrap();
        let y = model.forward(&x, None, &mut FloatActivations).unwrap();
        let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let mut analytic = 0f64;
        for ((w, b), (dw, db)) in vars.iter().zip(&direction) {
            for (v, d) in [(w, dw), (b, db)] {
                let g = grads.get(v.as_tensor()).unwrap();
                analytic += (g * d).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
            }
        }
        // Small enough that few activations cross the kink of the leaky ReLU.
        let eps = 1e-4;
        let plus = loss(eps, &direction).0.to_scalar::<f32>().unwrap() as f64;
        let minus = loss(-eps, &direction).0.to_scalar::<f32>().unwrap() as f64;
        let numeric = (plus - minus) / (2.0 * eps);
        let _ = loss(0.0, &zero);
        // f32 rounding of the loss limits the finite difference to about 0.1 here; a wrong gradient
        // is off by its own size.
        assert!((numeric - analytic).abs() <= 0.03 * analytic.abs() + 0.3, "numeric {numeric} vs analytic {analytic}");
    }

    #[test]
    fn adapter_flops_match_a_count_by_hand() {
        // Counted separately (Python, from the conv list): 10,078,912,512 for the base and
        // 12,510,560,256 with a rank-8 adapter at 512x512.
        let config = UnetConfig::new(vec![24, 48, 96], vec![1, 1, 2], 8).unwrap();
        assert_eq!(config.flops(512, 512), 10_078_912_512);
        assert_eq!(config.lora_flops(512, 512, 8), 12_510_560_256 - 10_078_912_512);
        assert_eq!(config.lora_flops(512, 512, 32), 4 * config.lora_flops(512, 512, 8));
        // The shipped rank-8 adapter files hold 65,568 LoRA values.
        assert_eq!(config.lora_values(8), 65_568);
    }

    #[test]
    fn a_half_file_loads_as_the_rounded_model_and_is_half_the_size() {
        let config = tiny_config();
        let model = Unet::new(&config, &Unet::random_tensors(&config, 4, &Device::Cpu).unwrap()).unwrap();
        let (full, half) = (model.to_file().unwrap(), model.to_half_file().unwrap());
        let bytes = |f: &TensorFile| f.tensors.values().map(|t| t.bytes.len()).sum::<usize>();
        assert_eq!(bytes(&half) * 2, bytes(&full));
        let loaded = Unet::from_file(&half, &Device::Cpu).unwrap();
        let (a, b) = (model.tensors().unwrap(), loaded.tensors().unwrap());
        for (name, t) in &a {
            let diff: f32 = (t - &b[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let size: f32 = t.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(diff <= size * 1e-3, "{name}: rounded by {diff} of {size}");
        }
    }

    #[test]
    fn a_model_is_kept_at_f16_only_when_that_loses_nothing() {
        let config = tiny_config();
        let model = Unet::new(&config, &Unet::random_tensors(&config, 4, &Device::Cpu).unwrap()).unwrap();
        let dtype = |f: &TensorFile| f.tensors.values().next().unwrap().dtype;
        assert_eq!(dtype(&model.to_smallest_file().unwrap()), ElementType::F32, "random f32 weights are no f16");
        let rounded = Unet::from_file(&model.to_half_file().unwrap(), &Device::Cpu).unwrap();
        let kept = rounded.to_smallest_file().unwrap();
        assert_eq!(dtype(&kept), ElementType::F16);
        assert_eq!(Unet::from_file(&kept, &Device::Cpu).unwrap().content_hash().unwrap(), rounded.content_hash().unwrap());
    }

    #[test]
    fn pixel_shuffle_inverts_unshuffle() {
        let x = Tensor::randn(0f32, 1.0, (2, 6, 4, 3), &Device::Cpu).unwrap();
        let back = pixel_shuffle(&pixel_unshuffle(&x, 2).unwrap(), 2).unwrap();
        let diff: f32 = (x - back).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn missing_misshaped_and_unknown_tensors_are_named() {
        let dev = Device::Cpu;
        let config = tiny_config();
        let good = Unet::random_tensors(&config, 1, &dev).unwrap();
        let mut missing = good.clone();
        missing.remove("head.bias");
        assert!(Unet::new(&config, &missing).unwrap_err().to_string().contains("'head.bias'"));
        let mut misshaped = good.clone();
        misshaped.insert("stem.bias".into(), Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap());
        assert!(Unet::new(&config, &misshaped).unwrap_err().to_string().contains("'stem.bias'"));
        let mut unknown = good;
        unknown.insert("extra.weight".into(), Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap());
        assert!(Unet::new(&config, &unknown).unwrap_err().to_string().contains("'extra.weight'"));
    }
}
