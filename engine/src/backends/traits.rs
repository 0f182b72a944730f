//! The one interface every backend implements: install adapters once, bind a mix (the tool
//! switch), run the model.

use candle_core::Tensor;

use super::{BackendKind, Precision};
use crate::adapter::{Adapter, AdapterMeta};
use crate::error::Result;
use crate::mix::Mix;
use crate::unet::UnetConfig;

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
    /// Binds a blend of installed adapters for the next forwards: the tool switch.
    fn bind(&mut self, mix: &Mix, strength: f32, precision: Precision) -> Result<()>;
    /// Runs the bound model on `[1,H,W,4]` and returns the residual `[1,H,W,3]`.
    fn forward(&mut self, input: &Tensor) -> Result<Tensor>;
    fn memory(&self) -> MemoryReport;
    /// The config of the model this backend runs.
    fn config(&self) -> &UnetConfig;
    /// Sides of the model's input must be multiples of this.
    fn alignment(&self) -> usize {
        self.config().alignment()
    }
    /// The precision that runs faster here, used when the user has not chosen one.
    fn preferred_precision(&self) -> Precision {
        Precision::Int8
    }
}
