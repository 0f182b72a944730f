//! Backends run the compiled model with adapters bound as inputs. One trait; the reference
//! backend (candle on the CPU, f32 and QuantSim) is the ground truth the others are checked
//! against.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, AdapterMeta, ResidentAdapter, bind_mix};
use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::quant::QuantSim;
use crate::unet::{FloatActivations, LoraSet};

/// Which backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The best available: a hardware GPU through wgpu, the reference CPU backend otherwise.
    #[default]
    Auto,
    Reference,
    Wgpu,
    Ort,
}

impl BackendKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "reference" => Some(Self::Reference),
            "wgpu" => Some(Self::Wgpu),
            "ort" => Some(Self::Ort),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Reference => "reference",
            Self::Wgpu => "wgpu",
            Self::Ort => "ort",
        }
    }
}

/// Quantized (int8 weights, int16 activations, int8 adapters) or the float reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Int8,
    Float,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Float => "float",
        }
    }
}

/// What an installed adapter looks like from outside the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterInfo {
    pub meta: AdapterMeta,
    /// The adapter was float and was put on the shared profile at load (plain PTQ, not QUAD).
    pub quantized_on_load: bool,
    pub stored_bytes: usize,
}

/// Bytes resident on the backend, by category.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub base_bytes: usize,
    pub adapter_bytes: usize,
    pub adapters: usize,
}

/// The runtime: one compiled base model, adapters installed once, bound per job.
pub trait Backend: Send {
    fn kind(&self) -> BackendKind;
    /// The device, in words ("CPU (candle, 2 threads)", "NVIDIA ... (Vulkan)").
    fn device(&self) -> String;
    fn install(&mut self, adapter: &Adapter) -> Result<AdapterInfo>;
    fn remove(&mut self, name: &str) -> bool;
    fn installed(&self) -> Vec<AdapterInfo>;
    /// Binds a blend of installed adapters (name, weight) for the next forwards: the tool switch.
    fn bind(&mut self, mix: &[(String, f32)], strength: f32, precision: Precision) -> Result<()>;
    /// Runs the bound model on `[1,H,W,4]` and returns the residual `[1,H,W,3]`.
    fn forward(&mut self, input: &Tensor) -> Result<Tensor>;
    fn memory(&self) -> MemoryReport;
    fn alignment(&self) -> usize;
}

/// Builds the backend `kind` names. `Auto` takes wgpu on a hardware GPU and the reference CPU
/// backend otherwise (a software GPU adapter is slower than the CPU backend); an explicit
/// `Wgpu` takes a software adapter too, and fails with what to do when there is none.
pub fn create_backend(kind: BackendKind, model: &Model) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Reference => Ok(Box::new(ReferenceBackend::new(model.clone()))),
        BackendKind::Wgpu => Ok(Box::new(crate::gpu::WgpuBackend::new(model.clone(), true)?)),
        BackendKind::Auto => match crate::gpu::WgpuBackend::new(model.clone(), false) {
            Ok(backend) => Ok(Box::new(backend)),
            Err(error) => {
                tracing::info!(%error, "no hardware GPU; using the reference CPU backend");
                Ok(Box::new(ReferenceBackend::new(model.clone())))
            }
        },
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Box::new(crate::ort_backend::OrtBackend::new(model.clone())?)),
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => Err(EngineError::Backend(
            "this build has no ONNX Runtime backend (build with --features ort); use --backend reference or wgpu".into(),
        )),
    }
}

/// Every installed adapter, resident and ready to bind.
#[derive(Default)]
pub struct AdapterBank {
    adapters: BTreeMap<String, ResidentAdapter>,
}

impl AdapterBank {
    pub fn insert(&mut self, adapter: ResidentAdapter) -> AdapterInfo {
        let info = info_of(&adapter);
        self.adapters.insert(adapter.meta.name.clone(), adapter);
        info
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.adapters.remove(name).is_some()
    }

    pub fn get(&self, name: &str) -> Result<&ResidentAdapter> {
        self.adapters.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.adapters.keys().map(String::as_str).collect();
            EngineError::Job(format!(
                "no tool named '{name}' is installed (installed: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    }

    pub fn infos(&self) -> Vec<AdapterInfo> {
        self.adapters.values().map(info_of).collect()
    }

    pub fn stored_bytes(&self) -> usize {
        self.adapters.values().map(|a| a.stored_bytes).sum()
    }

    pub fn len(&self) -> usize {
        self.adapters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty()
    }
}

fn info_of(adapter: &ResidentAdapter) -> AdapterInfo {
    AdapterInfo { meta: adapter.meta.clone(), quantized_on_load: adapter.quantized_on_load, stored_bytes: adapter.stored_bytes }
}

/// candle on the CPU: the float model and the QuantSim int8 model.
pub struct ReferenceBackend {
    model: Model,
    device: Device,
    bank: AdapterBank,
    bound: Option<(LoraSet, Precision)>,
}

impl ReferenceBackend {
    pub fn new(model: Model) -> Self {
        Self { model, device: Device::Cpu, bank: AdapterBank::default(), bound: None }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn bank(&self) -> &AdapterBank {
        &self.bank
    }
}

impl Backend for ReferenceBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Reference
    }

    fn device(&self) -> String {
        format!("CPU (candle reference, {} threads)", rayon::current_num_threads())
    }

    fn install(&mut self, adapter: &Adapter) -> Result<AdapterInfo> {
        adapter.check_compatible(&self.model.float, &self.model.hash, Some(&self.model.profile))?;
        let resident = ResidentAdapter::new(adapter, Some(&self.model.profile), &self.device)?;
        Ok(self.bank.insert(resident))
    }

    fn remove(&mut self, name: &str) -> bool {
        self.bound = None;
        self.bank.remove(name)
    }

    fn installed(&self) -> Vec<AdapterInfo> {
        self.bank.infos()
    }

    fn bind(&mut self, mix: &[(String, f32)], strength: f32, precision: Precision) -> Result<()> {
        let mut resident = Vec::with_capacity(mix.len());
        for (name, weight) in mix {
            if !weight.is_finite() {
                return Err(EngineError::Job(format!("the weight of '{name}' is not a number")));
            }
            resident.push((self.bank.get(name)?, *weight));
        }
        let set = bind_mix(&resident, strength, precision == Precision::Int8)?;
        self.bound = Some((set, precision));
        Ok(())
    }

    fn forward(&mut self, input: &Tensor) -> Result<Tensor> {
        let (lora, precision) = match &self.bound {
            Some((set, precision)) => (Some(set), *precision),
            None => (None, Precision::Int8),
        };
        match precision {
            Precision::Float => self.model.float.forward(input, lora, &mut FloatActivations),
            Precision::Int8 => self.model.quantized.forward(input, lora, &mut QuantSim { profile: &self.model.profile }),
        }
    }

    fn memory(&self) -> MemoryReport {
        MemoryReport { base_bytes: self.model.int8_bytes(), adapter_bytes: self.bank.stored_bytes(), adapters: self.bank.len() }
    }

    fn alignment(&self) -> usize {
        self.model.float.config().alignment()
    }
}
