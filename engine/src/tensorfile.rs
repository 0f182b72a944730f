//! safetensors files with metadata: the one container for base weights and adapters.
//!
//! Reading is defensive: the file size is checked before it is read, the safetensors crate
//! validates the header (length, offsets, overlaps), and every float is checked to be finite.
//! Writing goes to a temporary file in the same folder and is renamed into place, so a full disk or
//! a crash never leaves a half-written file under the real name.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};

use crate::error::{EngineError, Result};

/// Files larger than this are refused before being read (a base model of a much larger config
/// is still far below it).
pub const MAX_TENSOR_FILE_BYTES: u64 = 2 << 30;

/// Element types Prism stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    F32,
    F16,
    BF16,
    I8,
}

impl ElementType {
    fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::I8 => 1,
        }
    }

    fn to_safetensors(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::F16 => Dtype::F16,
            Self::BF16 => Dtype::BF16,
            Self::I8 => Dtype::I8,
        }
    }
}

/// One tensor as stored: element type, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub dtype: ElementType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Self { dtype: ElementType::F32, shape, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    /// f32 values stored as f16 (half the bytes; about three significant digits).
    pub fn from_f32_as_f16(shape: Vec<usize>, values: &[f32]) -> Self {
        let bytes = values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        Self { dtype: ElementType::F16, shape, bytes }
    }

    pub fn from_i8(shape: Vec<usize>, values: &[i8]) -> Self {
        Self { dtype: ElementType::I8, shape, bytes: values.iter().map(|&v| v as u8).collect() }
    }

    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Values as f32 (widening f16/bf16; int8 values as their integer value).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            ElementType::F32 => self.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            ElementType::F16 => self.bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            ElementType::BF16 => self.bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            ElementType::I8 => self.bytes.iter().map(|&b| b as i8 as f32).collect(),
        }
    }

    pub fn to_i8(&self) -> Option<Vec<i8>> {
        (self.dtype == ElementType::I8).then(|| self.bytes.iter().map(|&b| b as i8).collect())
    }
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype.to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Tensors and string metadata of one file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, RawTensor>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    pub fn read(path: &Path) -> Result<Self> {
        let size = std::fs::metadata(path).map_err(|e| EngineError::io(path, e))?.len();
        if size > MAX_TENSOR_FILE_BYTES {
            return Err(EngineError::file(
                path,
                format!("is {size} bytes, larger than any Prism model or adapter ({MAX_TENSOR_FILE_BYTES} bytes at most)"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
        Self::parse(&bytes).map_err(|message| EngineError::file(path, message))
    }

    /// Parses safetensors bytes; the error says what is wrong with them.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("is not a valid safetensors file ({e})"))?;
        let parsed = SafeTensors::deserialize(bytes).map_err(|e| format!("is not a valid safetensors file ({e})"))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in parsed.tensors() {
            let dtype = match view.dtype() {
                Dtype::F32 => ElementType::F32,
                Dtype::F16 => ElementType::F16,
                Dtype::BF16 => ElementType::BF16,
                Dtype::I8 => ElementType::I8,
                other => {
                    return Err(format!("tensor '{name}' has element type {other:?}; Prism reads f32, f16, bf16 and i8"));
                }
            };
            let raw = RawTensor { dtype, shape: view.shape().to_vec(), bytes: view.data().to_vec() };
            if raw.bytes.len() != raw.element_count() * dtype.size() {
                return Err(format!("tensor '{name}' has {} bytes for shape {:?}", raw.bytes.len(), raw.shape));
            }
            if dtype != ElementType::I8 && raw.to_f32().iter().any(|v| !v.is_finite()) {
                return Err(format!("tensor '{name}' contains NaN or infinite values"));
            }
            tensors.insert(name, raw);
        }
        let metadata = header.metadata().clone().unwrap_or_default();
        Ok(Self { tensors, metadata })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let metadata = (!self.metadata.is_empty()).then(|| self.metadata.clone());
        safetensors::serialize(self.tensors.iter().map(|(k, v)| (k.as_str(), v)), metadata)
            .map_err(|e| EngineError::Model(format!("cannot serialise tensors: {e}")))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomically(path, &self.to_bytes()?)
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// Headers larger than this are refused (a Prism file's header is a few kilobytes).
const MAX_HEADER_BYTES: u64 = 1 << 24;

/// The string metadata of a safetensors file, read from its header alone (the weights are not
/// read): what a model's hash and config are before its weights are needed.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let size = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
    if size < 8 {
        return Err(EngineError::file(path, "is not a valid safetensors file (it is too short)"));
    }
    let mut length = [0u8; 8];
    let mut reader = std::io::BufReader::new(file);
    std::io::Read::read_exact(&mut reader, &mut length).map_err(|e| EngineError::io(path, e))?;
    let header_bytes = u64::from_le_bytes(length);
    if header_bytes > MAX_HEADER_BYTES || header_bytes + 8 > size {
        return Err(EngineError::file(path, "is not a valid safetensors file (its header length is wrong)"));
    }
    let mut header = vec![0u8; header_bytes as usize];
    std::io::Read::read_exact(&mut reader, &mut header).map_err(|e| EngineError::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| EngineError::file(path, format!("is not a valid safetensors file ({e})")))?;
    let metadata = json.get("__metadata__").and_then(|m| m.as_object()).into_iter().flatten();
    Ok(metadata.filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string()))).collect())
}

/// Writes `bytes` to a sibling temporary file, syncs it and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.partial", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    result.map_err(|e| {
        // Best effort: the temporary file is ours and useless after a failure.
        let _ = std::fs::remove_file(&temp);
        EngineError::file(path, format!("could not be written: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact() {
        let mut file = TensorFile::default();
        file.tensors.insert("a".into(), RawTensor::from_f32(vec![2, 2], &[1.0, -2.5, 3.25, f32::MIN_POSITIVE]));
        file.tensors.insert("b".into(), RawTensor::from_i8(vec![3], &[-128, 0, 127]));
        file.metadata.insert("k".into(), "v".into());
        let parsed = TensorFile::parse(&file.to_bytes().unwrap()).unwrap();
        assert_eq!(parsed, file);
    }

    #[test]
    fn garbage_and_nan_are_refused_with_reasons() {
        let huge_header = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, b'{', b'}'];
        assert!(TensorFile::parse(&huge_header).unwrap_err().contains("not a valid safetensors"));
        let mut file = TensorFile::default();
        file.tensors.insert("w".into(), RawTensor::from_f32(vec![2], &[1.0, f32::NAN]));
        assert!(TensorFile::parse(&file.to_bytes().unwrap()).unwrap_err().contains("NaN"));
    }

    #[test]
    fn the_metadata_is_read_from_the_header_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = TensorFile::default();
        file.tensors.insert("w".into(), RawTensor::from_f32(vec![2], &[1.0, 2.0]));
        file.metadata.insert("hash".into(), "0123".into());
        let path = dir.path().join("m.safetensors");
        file.write(&path).unwrap();
        assert_eq!(read_metadata(&path).unwrap(), file.metadata);
        let bytes = file.to_bytes().unwrap();
        std::fs::write(&path, &bytes[..12]).unwrap();
        assert!(read_metadata(&path).unwrap_err().to_string().contains("not a valid safetensors"), "cut inside the header");
        std::fs::write(&path, [0xff; 8]).unwrap();
        assert!(read_metadata(&path).unwrap_err().to_string().contains("not a valid safetensors"), "an absurd length");
        std::fs::write(&path, [1, 2, 3]).unwrap();
        assert!(read_metadata(&path).unwrap_err().to_string().contains("not a valid safetensors"), "shorter than a length");
    }
}
