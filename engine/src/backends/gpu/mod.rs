//! The wgpu backend, Prism's NPU stand-in: the base model is compiled once (pipelines, layouts,
//! int8 weights in GPU buffers, per-size activation buffers); adapters are inputs. Installing an
//! adapter uploads its int8 A/B once into buffers of its own and builds its bind groups; a tool
//! switch then only selects those bind groups and writes the 528-byte rank-scale uniform. A blend
//! is assembled on the GPU by buffer-to-buffer copies into a slot (the shared profile makes int8
//! codes of different adapters concatenable). The single-slot variant writes the active
//! adapter's tensors from the CPU into that slot, as an NPU graph input would be written.
//!
//! Semantics are QuantSim's (engine/src/quant.rs): stored activations are int16 (or int8) on the
//! profile's static scales, computed in f32 after dequantizing. A float path (f32 weights and
//! activations, same kernels) exists for comparison.
//!
//! | file | job |
//! |---|---|
//! | `context` | the device, buffers, readback; pipelines and layouts beside their `shaders/*.wgsl` |
//! | `backend` | `WgpuBackend`: compile the model, bind a mix, run a plan (the `Backend` trait) |
//! | `adapters` | adapter upload, the blend / single-slot buffers |
//! | `plan` | the model graph lowered to dispatches and buffers for one input size |
//! | `parity` | the layer-by-layer check against the reference's stored activations |
//! | `timing` | what `prism bench` times beyond the trait: one conv, the matmul ceiling |

mod adapters;
mod backend;
mod context;
mod parity;
mod plan;
mod timing;

pub use backend::WgpuBackend;
pub use context::{Gpu, MAX_RANK, Storage, adapters};
pub use timing::matmul_seconds;
pub use wgpu::DeviceType;

use crate::error::EngineError;

/// How a tool switch reaches the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapMode {
    /// Each adapter keeps its own GPU buffers; a switch selects its bind groups.
    Rebind,
    /// One fixed set of adapter input buffers; a switch writes the adapter's tensors into them.
    SingleSlot,
}

/// Bytes on the GPU, by category.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuMemory {
    pub base_int8: usize,
    pub base_f32: usize,
    pub adapters_int8: usize,
    pub adapters_f32: usize,
    pub slot: usize,
    pub activations: usize,
}

fn backend_error(message: impl Into<String>) -> EngineError {
    EngineError::Backend(message.into())
}
