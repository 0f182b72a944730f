//! The encoder as Prism ships it: every matrix int8 with one scale per row (a token's embedding,
//! a layer's output channel), vectors (biases, layer norms) kept f32. 22.6 M values in 23 MB
//! instead of 91 MB, and the sentence embeddings it gives agree with the f32 model's to a cosine
//! above 0.99 (measured by `prism-adapters encoder` and checked by a test).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use prism_engine::tensorfile::{RawTensor, TensorFile};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, TextError};

/// `format` metadata of a compact encoder file.
pub const FORMAT: &str = "prism-text-encoder";
/// Suffix of the per-row scales stored beside an int8 matrix.
const SCALE_SUFFIX: &str = ".row_scale";

/// Tensors by name: shape and f32 values.
pub type FloatModel = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn encoder_error(path: &Path, message: impl Into<String>) -> TextError {
    TextError::Encoder { path: path.to_path_buf(), message: message.into() }
}

/// The f32 tensors of a BERT safetensors file (Hugging Face layout); index tensors are skipped.
pub fn read_float_model(path: &Path) -> Result<FloatModel> {
    let bytes = std::fs::read(path).map_err(|e| encoder_error(path, e.to_string()))?;
    let parsed = SafeTensors::deserialize(&bytes).map_err(|e| encoder_error(path, format!("not safetensors ({e})")))?;
    let mut out = BTreeMap::new();
    for (name, view) in parsed.tensors() {
        if view.dtype() != Dtype::F32 {
            continue;
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Packs an f32 model: matrices to int8 rows with their scales, the rest as it is. `config` (the
/// model's config.json) and `source` go into the metadata.
pub fn pack(model: &FloatModel, config: &str, source: &str) -> TensorFile {
    let mut file = TensorFile::default();
    for (name, (shape, values)) in model {
        if shape.len() == 2 {
            let (codes, scales) = quantize_rows(values, shape[1]);
            file.tensors.insert(name.clone(), RawTensor::from_i8(shape.clone(), &codes));
            file.tensors.insert(format!("{name}{SCALE_SUFFIX}"), RawTensor::from_f32(vec![shape[0]], &scales));
        } else {
            file.tensors.insert(name.clone(), RawTensor::from_f32(shape.clone(), values));
        }
    }
    file.metadata.insert("format".into(), FORMAT.into());
    file.metadata.insert("config".into(), config.into());
    file.metadata.insert("source".into(), source.into());
    file
}

/// Symmetric int8 per row: `scale = max|row| / 127`.
fn quantize_rows(values: &[f32], row_len: usize) -> (Vec<i8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / row_len.max(1));
    for row in values.chunks(row_len.max(1)) {
        let scale = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        codes.extend(row.iter().map(|v| (v * inverse).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (codes, scales)
}

/// The f32 tensors of a compact file (int8 rows times their scales), ready for the model.
pub fn unpack(file: &TensorFile, path: &Path) -> Result<HashMap<String, Tensor>> {
    if file.metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(encoder_error(path, format!("not a Prism encoder file (no 'format: {FORMAT}' metadata)")));
    }
    let mut out = HashMap::new();
    for (name, raw) in &file.tensors {
        if name.ends_with(SCALE_SUFFIX) {
            continue;
        }
        let values = match raw.to_i8() {
            Some(codes) => {
                let scales = file
                    .tensors
                    .get(&format!("{name}{SCALE_SUFFIX}"))
                    .map(RawTensor::to_f32)
                    .ok_or_else(|| encoder_error(path, format!("int8 tensor '{name}' has no row scales")))?;
                let row_len = raw.shape.last().copied().unwrap_or(1).max(1);
                if raw.shape.len() != 2 || scales.len() * row_len != codes.len() {
                    return Err(encoder_error(path, format!("int8 tensor '{name}' and its scales do not fit together")));
                }
                codes.chunks(row_len).zip(&scales).flat_map(|(row, s)| row.iter().map(move |&c| f32::from(c) * s)).collect()
            }
            None => raw.to_f32(),
        };
        out.insert(name.clone(), Tensor::from_vec(values, raw.shape.as_slice(), &Device::Cpu)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_within_half_a_step_and_vectors_exactly() {
        let mut model = BTreeMap::new();
        let matrix: Vec<f32> = (0..24).map(|i| ((i * 37 % 11) as f32 - 5.0) * if i < 12 { 0.01 } else { 3.0 }).collect();
        model.insert("w".to_string(), (vec![2, 12], matrix.clone()));
        model.insert("b".to_string(), (vec![3], vec![0.1, -2.0, 7.5]));
        model.insert("zero".to_string(), (vec![1, 4], vec![0.0; 4]));
        let file = pack(&model, "{}", "test");
        let bytes = file.to_bytes().expect("serialize");
        let back = unpack(&TensorFile::parse(&bytes).expect("parse"), Path::new("test")).expect("unpack");
        let w = back["w"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (row, chunk) in w.chunks(12).enumerate() {
            let step = matrix[row * 12..row * 12 + 12].iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (got, want) in chunk.iter().zip(&matrix[row * 12..]) {
                assert!((got - want).abs() <= step * 0.5 + 1e-7, "{got} vs {want} (step {step})");
            }
        }
        assert_eq!(back["b"].to_vec1::<f32>().unwrap(), vec![0.1, -2.0, 7.5]);
        assert!(back["zero"].flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn a_file_of_another_kind_or_with_scales_missing_is_refused() {
        let mut model = BTreeMap::new();
        model.insert("w".to_string(), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        let mut file = pack(&model, "{}", "test");
        file.tensors.remove("w.row_scale");
        let error = unpack(&file, Path::new("enc")).unwrap_err().to_string();
        assert!(error.contains("no row scales"), "{error}");
        file.metadata.insert("format".into(), "prism-unet".into());
        let error = unpack(&file, Path::new("enc")).unwrap_err().to_string();
        assert!(error.contains("not a Prism encoder file"), "{error}");
    }
}
