//! The prompt-guided tool's mixer: a small network from a prompt's embedding to the weights of
//! the look basis (LoRA directions trained with it). The adapter a prompt makes is the basis with
//! each direction's B scaled by its weight: an ordinary float LoRA, bound like any other.

use std::path::Path;

use candle_core::{D, Device, Tensor};
use prism_engine::adapter::{Adapter, AdapterMeta};
use prism_engine::tensorfile::TensorFile;

use crate::encoder::Embedding;
use crate::error::{Result, TextError};

/// Directions in the basis, and the rank of each: the made adapter's rank is their product.
pub const BASIS: usize = 8;
pub const BASIS_RANK: usize = 4;
/// Width of the mixer's hidden layer.
pub const MIXER_HIDDEN: usize = 64;
/// Names of the mixer's tensors, in the order `Mixer::from_tensors` takes them.
pub const MIXER_TENSORS: [&str; 4] = ["mixer.w1", "mixer.b1", "mixer.w2", "mixer.b2"];

/// `w = W2 · gelu(W1 · e + b1) + b2`, one weight per basis direction.
pub struct Mixer {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

impl Mixer {
    /// From `[dim, hidden]`, `[hidden]`, `[hidden, basis]`, `[basis]` (training passes its
    /// variables' tensors, so the math is the same in both).
    pub fn from_tensors(tensors: [Tensor; 4]) -> Self {
        let [w1, b1, w2, b2] = tensors;
        Self { w1, b1, w2, b2 }
    }

    /// `[N, dim]` embeddings to `[N, basis]` weights.
    pub fn weights(&self, embeddings: &Tensor) -> Result<Tensor> {
        let hidden = embeddings.matmul(&self.w1)?.broadcast_add(&self.b1)?.gelu_erf()?;
        Ok(hidden.matmul(&self.w2)?.broadcast_add(&self.b2)?)
    }

    /// Each direction's weight repeated over its rank channels: `[N, basis * rank]`.
    pub fn rank_scales(&self, embeddings: &Tensor) -> Result<Tensor> {
        let weights = self.weights(embeddings)?;
        let (n, basis) = weights.dims2()?;
        Ok(weights.unsqueeze(D::Minus1)?.broadcast_as((n, basis, BASIS_RANK))?.reshape((n, basis * BASIS_RANK))?)
    }
}

/// The look tool of a model directory: the basis (a float adapter) and the mixer.
pub struct LookMaker {
    basis: Adapter,
    mixer: Mixer,
}

/// The task the look tool's adapters name: made adapters are recognised by it.
pub const LOOK_TASK: &str = "look";

/// Where a model directory keeps the look tool.
pub const LOOKS_DIR: &str = "looks";
pub const BASIS_FILE: &str = "basis.prism-lora";
pub const MIXER_FILE: &str = "mixer.safetensors";

impl LookMaker {
    /// `<model_dir>/looks/`, or None when the model has no look tool.
    pub fn load(model_dir: &Path) -> Result<Option<Self>> {
        let dir = model_dir.join(LOOKS_DIR);
        let (basis_path, mixer_path) = (dir.join(BASIS_FILE), dir.join(MIXER_FILE));
        if !basis_path.exists() || !mixer_path.exists() {
            return Ok(None);
        }
        let basis = Adapter::read(&basis_path)?;
        let file = TensorFile::read(&mixer_path)?;
        let fail = |message: String| TextError::Encoder { path: mixer_path.clone(), message };
        let mut tensors = Vec::with_capacity(4);
        for name in MIXER_TENSORS {
            let raw = file.tensors.get(name).ok_or_else(|| fail(format!("the look mixer has no '{name}'")))?;
            tensors.push(Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?);
        }
        let [w1, b1, w2, b2]: [Tensor; 4] = tensors.try_into().map_err(|_| fail("the look mixer is incomplete".into()))?;
        if w2.dims() != [MIXER_HIDDEN, BASIS] || basis.meta.rank != BASIS * BASIS_RANK || w1.dim(1)? != MIXER_HIDDEN {
            return Err(fail(format!(
                "the look mixer ({:?} -> {:?}) does not fit its basis of rank {}",
                w1.dims(),
                w2.dims(),
                basis.meta.rank
            )));
        }
        Ok(Some(Self { basis, mixer: Mixer::from_tensors([w1, b1, w2, b2]) }))
    }

    /// What the router knows the tool by.
    pub fn meta(&self) -> &AdapterMeta {
        &self.basis.meta
    }

    /// The adapter `embedding` asks for: the basis with each direction's B scaled by its weight.
    pub fn make(&self, embedding: &Embedding) -> Result<Adapter> {
        let input = Tensor::from_vec(embedding.0.clone(), (1, embedding.0.len()), &Device::Cpu)?;
        let scales = self.mixer.rank_scales(&input)?.squeeze(0)?.to_vec1::<f32>()?;
        let mut adapter = self.basis.clone();
        for layer in adapter.layers.values_mut() {
            let rank = layer.b_shape.get(1).copied().unwrap_or(0);
            if rank != scales.len() {
                return Err(TextError::Prompt(format!("the look basis has rank {rank}, its mixer weights {}", scales.len())));
            }
            // B is [cout, rank] row-major: rank channel j of every row scales by its weight.
            for row in layer.b.chunks_mut(rank) {
                for (value, scale) in row.iter_mut().zip(&scales) {
                    *value *= scale;
                }
            }
        }
        Ok(adapter)
    }

    /// The direction weights for `embedding` (for display and tests).
    pub fn weights(&self, embedding: &Embedding) -> Result<Vec<f32>> {
        let input = Tensor::from_vec(embedding.0.clone(), (1, embedding.0.len()), &Device::Cpu)?;
        Ok(self.mixer.weights(&input)?.squeeze(0)?.to_vec1::<f32>()?)
    }
}
