//! Prism's engine: the shared prism-unet model, its quantization profile, LoRA adapters as runtime
//! inputs, image I/O and the engine thread. No UI code lives here.

pub mod adapter;
pub mod backend;
pub mod calibrate;
pub mod conv;
pub mod engine;
pub mod error;
pub mod fixtures;
pub mod gpu;
pub mod imageio;
pub mod job;
pub mod model;
pub mod onnx;
#[cfg(feature = "ort")]
pub mod ort_backend;
pub mod quant;
pub mod settings;
pub mod tensorfile;
pub mod unet;

pub use error::{EngineError, Result};
