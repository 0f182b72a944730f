//! The reference backend: the model on the CPU. Float runs candle; int8 runs the integer kernels
//! (`int8`) by default, or QuantSim — the ground truth the other backends and the integer kernels
//! are checked against — when built with [`ReferenceBackend::quantsim`].

use candle_core::{Device, Tensor};

use super::{AdapterBank, AdapterInfo, Backend, BackendKind, MemoryReport, Precision};
use crate::adapter::{Adapter, ResidentAdapter, bind_mix};
use crate::error::{EngineError, Result};
use crate::int8::{IntegerLora, IntegerUnet, Kernel, KernelPath};
use crate::mix::Mix;
use crate::model::Model;
use crate::quant::{QuantSim, StoredTensors};
use crate::unet::{FloatActivations, LoraSet, UnetConfig};

/// How the reference backend runs int8.
enum Int8Runner {
    /// candle in f32 with every stored tensor rounded (slow, the definition of the semantics).
    QuantSim,
    /// The integer kernels.
    Integer(Box<IntegerUnet>),
}

/// What `bind` prepared for the next forwards.
enum Bound {
    Float(LoraSet),
    QuantSim(LoraSet),
    Integer(IntegerLora),
}

/// The model on the CPU: float in candle, int8 in the integer kernels or QuantSim.
pub struct ReferenceBackend {
    model: Model,
    device: Device,
    bank: AdapterBank<ResidentAdapter>,
    int8: Int8Runner,
    bound: Option<Bound>,
}

impl ReferenceBackend {
    /// Int8 on the integer kernels this CPU runs best (or those `PRISM_CPU_KERNEL` names; an
    /// unusable name is logged and the detected path used).
    pub fn new(model: Model) -> Self {
        let path = KernelPath::chosen().unwrap_or_else(|error| {
            tracing::warn!(%error, "using the detected CPU kernels");
            KernelPath::detect()
        });
        match Kernel::new(path).and_then(|kernel| IntegerUnet::new(&model, kernel)) {
            Ok(unet) => Self::with(model, Int8Runner::Integer(Box::new(unet))),
            Err(error) => {
                tracing::warn!(%error, "the integer kernels cannot run this model; int8 uses QuantSim");
                Self::quantsim(model)
            }
        }
    }

    /// Int8 on the integer kernels of `path` (an error when this CPU cannot run them).
    pub fn on_kernel(model: Model, path: KernelPath) -> Result<Self> {
        let unet = IntegerUnet::new(&model, Kernel::new(path)?)?;
        Ok(Self::with(model, Int8Runner::Integer(Box::new(unet))))
    }

    /// Int8 through QuantSim: the semantics every other int8 path is checked against.
    pub fn quantsim(model: Model) -> Self {
        Self::with(model, Int8Runner::QuantSim)
    }

    fn with(model: Model, int8: Int8Runner) -> Self {
        Self { model, device: Device::Cpu, bank: AdapterBank::default(), int8, bound: None }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn bank(&self) -> &AdapterBank<ResidentAdapter> {
        &self.bank
    }

    /// The integer kernel path int8 runs on, or `None` for QuantSim.
    pub fn int8_path(&self) -> Option<KernelPath> {
        match &self.int8 {
            Int8Runner::QuantSim => None,
            Int8Runner::Integer(unet) => Some(unet.kernel().path()),
        }
    }

    /// The integer kernels with the bound mix, layer by layer against QuantSim's stored tensors
    /// (see `IntegerUnet::layerwise_check`): each point with its largest difference in steps.
    pub fn layerwise_check(&self, input: &Tensor, reference: &StoredTensors) -> Result<Vec<(String, f32)>> {
        match (&self.int8, &self.bound) {
            (Int8Runner::Integer(unet), Some(Bound::Integer(lora))) => unet.layerwise_check(input, Some(lora), reference),
            (Int8Runner::Integer(unet), None) => unet.layerwise_check(input, None, reference),
            _ => Err(EngineError::Backend("the layerwise check runs the integer kernels bound at int8".into())),
        }
    }
}

impl Backend for ReferenceBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Reference
    }

    fn device(&self) -> String {
        let int8 = self.int8_path().map_or("QuantSim", KernelPath::describe);
        format!("CPU ({int8}, {} threads)", rayon::current_num_threads())
    }

    fn install(&mut self, adapter: &Adapter) -> Result<AdapterInfo> {
        self.model.check_adapter(adapter)?;
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

    fn bind(&mut self, mix: &Mix, strength: f32, precision: Precision) -> Result<()> {
        let set = bind_mix(&self.bank.resolve(mix)?, strength, precision == Precision::Int8)?;
        self.bound = Some(match (precision, &self.int8) {
            (Precision::Float, _) => Bound::Float(set),
            (Precision::Int8, Int8Runner::QuantSim) => Bound::QuantSim(set),
            (Precision::Int8, Int8Runner::Integer(unet)) => Bound::Integer(unet.bind(&set)?),
        });
        Ok(())
    }

    fn forward(&mut self, input: &Tensor) -> Result<Tensor> {
        let quantsim = || QuantSim { profile: &self.model.profile };
        match (&self.bound, &self.int8) {
            (Some(Bound::Float(set)), _) => self.model.float()?.forward(input, Some(set), &mut FloatActivations),
            (Some(Bound::QuantSim(set)), _) => self.model.quantized()?.forward(input, Some(set), &mut quantsim()),
            (Some(Bound::Integer(lora)), Int8Runner::Integer(unet)) => unet.forward(input, Some(lora)),
            (None, Int8Runner::Integer(unet)) => unet.forward(input, None),
            (Some(Bound::Integer(_)), Int8Runner::QuantSim) | (None, Int8Runner::QuantSim) => {
                self.model.quantized()?.forward(input, None, &mut quantsim())
            }
        }
    }

    fn memory(&self) -> MemoryReport {
        MemoryReport { base_bytes: self.model.int8_bytes(), adapter_bytes: self.bank.stored_bytes(), adapters: self.bank.len() }
    }

    fn config(&self) -> &UnetConfig {
        self.model.config()
    }

    fn preferred_precision(&self) -> Precision {
        match self.int8_path() {
            Some(path) if !path.beats_float() => Precision::Float,
            _ => Precision::Int8,
        }
    }
}
