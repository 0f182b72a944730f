//! all-MiniLM-L6-v2 as a sentence encoder: WordPiece tokens (the `tokenizers` crate), six BERT
//! layers (candle-transformers), the mean of the token states, unit length. Two prompts mean much
//! the same when their embeddings' dot product is high.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use prism_engine::tensorfile::TensorFile;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::compact;
use crate::error::{Result, TextError};

/// The encoder's files inside a model directory.
pub const ENCODER_DIR: &str = "text";
pub const WEIGHTS_FILE: &str = "encoder.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Tokens read per sentence; a prompt is a sentence or two, and attention costs the square.
pub const MAX_TOKENS: usize = 128;

/// A sentence's meaning as a unit vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    /// Cosine similarity (both are unit length).
    pub fn similarity(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }
}

pub struct SentenceEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl SentenceEncoder {
    /// Loads `<model_dir>/text/`: the compact weights and the tokenizer.
    pub fn load(model_dir: &Path) -> Result<Self> {
        let dir = model_dir.join(ENCODER_DIR);
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.exists() {
            return Err(TextError::Encoder {
                path: dir,
                message: format!(
                    "there is no prompt encoder ({WEIGHTS_FILE}) in this model folder; choose tools by name instead"
                ),
            });
        }
        let file = TensorFile::read(&weights)?;
        let config = file.metadata.get("config").cloned().unwrap_or_default();
        let tensors = compact::unpack(&file, &weights)?;
        Self::from_parts(tensors, &config, &dir.join(TOKENIZER_FILE), &weights)
    }

    /// An encoder from f32 tensors in Hugging Face BERT names, its config.json and tokenizer.json.
    pub fn from_parts(
        tensors: std::collections::HashMap<String, Tensor>,
        config_json: &str,
        tokenizer_path: &Path,
        weights_path: &Path,
    ) -> Result<Self> {
        let fail = |path: &Path, message: String| TextError::Encoder { path: path.to_path_buf(), message };
        let config: Config = serde_json::from_str(config_json)
            .map_err(|e| fail(weights_path, format!("its config is not a BERT config ({e})")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model =
            BertModel::load(vb, &config).map_err(|e| fail(weights_path, format!("its tensors do not make a BERT ({e})")))?;
        let mut tokenizer = Tokenizer::from_file(tokenizer_path).map_err(|e| fail(tokenizer_path, e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| fail(tokenizer_path, e.to_string()))?;
        Ok(Self { model, tokenizer })
    }

    pub fn encode(&self, text: &str) -> Result<Embedding> {
        Ok(self.encode_batch(&[text])?.remove(0))
    }

    /// One embedding per text, in order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let tokens = encodings[0].get_ids().len();
        let device = &Device::Cpu;
        let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let ids = Tensor::from_vec(ids, (texts.len(), tokens), device)?;
        let mask = Tensor::from_vec(mask, (texts.len(), tokens), device)?;
        let types = ids.zeros_like()?;
        let states = self.model.forward(&ids, &types, Some(&mask))?;
        // The mean over real tokens (padding excluded), then unit length.
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&weights)?.sum(1)?;
        let mean = summed.broadcast_div(&weights.sum(1)?.clamp(1.0, f64::MAX)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.to_vec2::<f32>()?.into_iter().map(Embedding).collect())
    }
}

/// Where the shipped encoder lives inside a model directory.
pub fn encoder_dir(model_dir: &Path) -> PathBuf {
    model_dir.join(ENCODER_DIR)
}
