//! Backends run the compiled model with adapters bound as inputs. One trait ([`Backend`]); the
//! reference backend (candle on the CPU, f32 and QuantSim) is the ground truth the others are
//! checked against.
//!
//! | file | job |
//! |---|---|
//! | `kind` | `BackendKind`, `Precision`: what a user picks |
//! | `traits` | the `Backend` trait, `AdapterInfo`, `MemoryReport` |
//! | `bank` | `AdapterBank`: installed adapters by name, mix lookup, the errors |
//! | `reference` | candle on the CPU (float and QuantSim) |
//! | `gpu/` | wgpu: WGSL kernels beside their Rust side, plan, parity harness, bench timing |
//! | `ort` | (feature `ort`) ONNX Runtime on the exported graph |
//! | `create` | `create_backend`: the backend a user asked for, or the best one |

mod bank;
mod create;
pub mod gpu;
mod kind;
#[cfg(feature = "ort")]
pub mod ort;
mod reference;
mod traits;

pub use bank::{AdapterBank, Installed};
pub use create::create_backend;
pub use kind::{BackendKind, Precision, Provider};
pub use reference::ReferenceBackend;
pub use traits::{AdapterInfo, Backend, MemoryReport};
