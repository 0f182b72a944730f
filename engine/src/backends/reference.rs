//! The reference backend: candle on the CPU, the float model and QuantSim. The ground truth the
//! other backends are checked against.

use candle_core::{Device, Tensor};

use super::{AdapterBank, AdapterInfo, Backend, BackendKind, MemoryReport, Precision};
use crate::adapter::{Adapter, ResidentAdapter, bind_mix};
use crate::error::Result;
use crate::mix::Mix;
use crate::model::Model;
use crate::quant::QuantSim;
use crate::unet::{FloatActivations, LoraSet, UnetConfig};

/// candle on the CPU: the float model and the QuantSim int8 model.
pub struct ReferenceBackend {
    model: Model,
    device: Device,
    bank: AdapterBank<ResidentAdapter>,
    bound: Option<(LoraSet, Precision)>,
}

impl ReferenceBackend {
    pub fn new(model: Model) -> Self {
        Self { model, device: Device::Cpu, bank: AdapterBank::default(), bound: None }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn bank(&self) -> &AdapterBank<ResidentAdapter> {
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

    fn config(&self) -> &UnetConfig {
        self.model.float.config()
    }
}
