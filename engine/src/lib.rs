//! Prism's engine: the shared prism-unet model, its quantization profile, LoRA adapters as runtime
//! inputs, image I/O and the engine thread. No UI code lives here.

pub mod adapter;
pub mod backends;
pub mod calibrate;
pub mod conv;
pub mod deblur_prepass;
pub mod denoise_prepass;
pub mod engine;
pub mod error;
pub mod fill_detail;
pub mod fixtures;
pub mod graph;
pub mod hole_fill;
pub mod imageio;
pub mod int8;
pub mod job;
pub mod learned_doubling;
pub mod mix;
pub mod model;
pub mod onnx;
pub mod photo_fit;
pub mod quant;
pub mod record;
pub mod settings;
pub mod tensorfile;
pub mod unet;
pub mod upscale_prepass;

pub use error::{EngineError, Result};
