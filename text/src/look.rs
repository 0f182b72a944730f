//! The prompt-guided tool's mixer: a small network from a prompt's embedding to the weights of
//! the look basis (LoRA directions trained with it). The adapter a prompt makes is the basis with
//! each direction's B scaled by its weight: an ordinary float LoRA, bound like any other.
//!
//! The mixer trained with the basis on photos reads words it has not seen poorly (it regresses
//! to in-between weights). So a model's look tool may also carry a reader: a classifier over the
//! looks the tool was trained on, whose probabilities mix each look's weights (those the trained
//! mixer gives that look's phrasings). A request then lands on a look the basis was trained to
//! make, or between two it cannot tell apart.

use std::path::Path;

use candle_core::{D, Device, Tensor};
use prism_engine::adapter::{Adapter, AdapterMeta};
use prism_engine::tensorfile::TensorFile;

use crate::encoder::Embedding;
use crate::error::{Result, TextError};

/// Directions in the basis, and the rank of each: the made adapter's rank is their product. A
/// look tool may divide the same rank into another number of directions (its mixer's outputs say
/// how many: `train-look --directions`); these are the shipped tool's.
pub const BASIS: usize = 8;
pub const BASIS_RANK: usize = 4;
/// The basis's rank, whatever its directions: the model's maximum.
pub const BASIS_CHANNELS: usize = BASIS * BASIS_RANK;
/// Width of the mixer's hidden layer.
pub const MIXER_HIDDEN: usize = 64;
/// Names of the mixer's tensors, in the order `Mixer::from_tensors` takes them.
pub const MIXER_TENSORS: [&str; 4] = ["mixer.w1", "mixer.b1", "mixer.w2", "mixer.b2"];
/// The reader's classifier (the same shape of network, one output per look), in the same order.
pub const READER_TENSORS: [&str; 4] = ["reader.w1", "reader.b1", "reader.w2", "reader.b2"];
/// `[looks, basis]`: each look's direction weights.
pub const READER_LOOKS: &str = "reader.looks";
/// Metadata key: the looks' names, comma-separated, in `READER_LOOKS`' row order.
pub const READER_NAMES: &str = "reader.names";

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

    /// How many basis directions it weights.
    pub fn directions(&self) -> Result<usize> {
        Ok(self.b2.dim(0)?)
    }

    /// Each direction's weight repeated over its share of the basis's `channels`: `[N, channels]`.
    pub fn rank_scales(&self, embeddings: &Tensor, channels: usize) -> Result<Tensor> {
        let weights = self.weights(embeddings)?;
        let (n, basis) = weights.dims2()?;
        let rank = direction_rank(channels, basis)?;
        Ok(weights.unsqueeze(D::Minus1)?.broadcast_as((n, basis, rank))?.reshape((n, channels))?)
    }
}

/// The rank of each of `directions` that share a basis of rank `channels`.
pub fn direction_rank(channels: usize, directions: usize) -> Result<usize> {
    if directions == 0 || !channels.is_multiple_of(directions) {
        return Err(TextError::Prompt(format!("a look basis of rank {channels} cannot be split into {directions} directions")));
    }
    Ok(channels / directions)
}

/// How a prompt's embedding becomes direction weights.
enum Reading {
    /// The mixer trained with the basis.
    Mixer(Mixer),
    /// A classifier over looks whose probabilities mix each look's weights.
    Looks { classifier: Mixer, looks: Tensor, names: Vec<String> },
}

impl Reading {
    /// `[N, dim]` embeddings to `[N, basis]` weights.
    fn weights(&self, embeddings: &Tensor) -> Result<Tensor> {
        match self {
            Reading::Mixer(mixer) => mixer.weights(embeddings),
            Reading::Looks { classifier, looks, .. } => Ok(look_probabilities(classifier, embeddings)?.matmul(looks)?),
        }
    }
}

/// The classifier's `[N, looks]` probabilities.
pub fn look_probabilities(classifier: &Mixer, embeddings: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax_last_dim(&classifier.weights(embeddings)?)?)
}

fn one_row(embedding: &Embedding) -> Result<Tensor> {
    Ok(Tensor::from_vec(embedding.0.clone(), (1, embedding.0.len()), &Device::Cpu)?)
}

/// The look tool of a model directory: the basis (a float adapter) and how it reads a prompt.
pub struct LookMaker {
    basis: Adapter,
    reading: Reading,
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
        let network = |names: [&str; 4], outputs: usize| -> Result<Mixer> {
            let mut tensors = Vec::with_capacity(4);
            for name in names {
                let raw = file.tensors.get(name).ok_or_else(|| fail(format!("the look mixer has no '{name}'")))?;
                tensors.push(Tensor::from_vec(raw.to_f32(), raw.shape.as_slice(), &Device::Cpu)?);
            }
            let [w1, b1, w2, b2]: [Tensor; 4] = tensors.try_into().map_err(|_| fail("the look mixer is incomplete".into()))?;
            let hidden = w1.dim(1)?;
            if w2.dims() != [hidden, outputs] || b1.dims() != [hidden] || b2.dims() != [outputs] {
                return Err(fail(format!(
                    "'{}' ({:?} -> {:?}) does not give the {outputs} outputs its basis of rank {} needs",
                    names[0],
                    w1.dims(),
                    w2.dims(),
                    basis.meta.rank
                )));
            }
            Ok(Mixer::from_tensors([w1, b1, w2, b2]))
        };
        // The directions are what the reading weights: the reader's looks' width, or the mixer's outputs.
        let directions = match (file.tensors.get(READER_LOOKS), file.tensors.get(MIXER_TENSORS[3])) {
            (Some(looks), _) => looks.shape.get(1).copied().unwrap_or(0),
            (None, Some(b2)) => b2.shape.first().copied().unwrap_or(0),
            (None, None) => return Err(fail(format!("the look mixer has no '{}'", MIXER_TENSORS[3]))),
        };
        direction_rank(basis.meta.rank, directions).map_err(|e| fail(e.to_string()))?;
        let reading = match file.tensors.get(READER_LOOKS) {
            None => Reading::Mixer(network(MIXER_TENSORS, directions)?),
            Some(raw) => {
                let names: Vec<String> =
                    file.metadata.get(READER_NAMES).map(|n| n.split(',').map(str::to_string).collect()).unwrap_or_default();
                if raw.shape != [names.len(), directions] {
                    return Err(fail(format!("the reader's looks are {:?} for {} names", raw.shape, names.len())));
                }
                let looks = Tensor::from_vec(raw.to_f32(), (names.len(), directions), &Device::Cpu)?;
                Reading::Looks { classifier: network(READER_TENSORS, names.len())?, looks, names }
            }
        };
        Ok(Some(Self { basis, reading }))
    }

    /// What the router knows the tool by.
    pub fn meta(&self) -> &AdapterMeta {
        &self.basis.meta
    }

    /// The adapter `embedding` asks for: the basis with each direction's B scaled by its weight.
    pub fn make(&self, embedding: &Embedding) -> Result<Adapter> {
        let weights = self.weights(embedding)?;
        let rank = direction_rank(self.basis.meta.rank, weights.len())?;
        let scales = weights.into_iter().flat_map(|w| std::iter::repeat_n(w, rank)).collect::<Vec<f32>>();
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
        Ok(self.reading.weights(&one_row(embedding)?)?.squeeze(0)?.to_vec1::<f32>()?)
    }

    /// The looks `embedding` reads as, likeliest first, down to `floor` probability (empty when
    /// the tool has no reader): what the editor and the CLI show beside a made look.
    pub fn read_as(&self, embedding: &Embedding, floor: f32) -> Result<Vec<(String, f32)>> {
        let Reading::Looks { classifier, names, .. } = &self.reading else { return Ok(Vec::new()) };
        let probabilities = look_probabilities(classifier, &one_row(embedding)?)?.squeeze(0)?.to_vec1::<f32>()?;
        let mut read: Vec<(String, f32)> = names.iter().cloned().zip(probabilities).filter(|(_, p)| *p >= floor).collect();
        read.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::adapter::Region;
    use prism_engine::fixtures::{random_adapter, random_model, tiny_config};
    use prism_engine::tensorfile::RawTensor;

    /// A look tool on a tiny model, for 2-dimensional "embeddings": a mixer that gives every
    /// direction weight 0.5, and a reader over two looks (`warmer` for [1, 0], `cooler` for
    /// [0, 1]) whose weights are `looks` (two rows, one weight per direction).
    fn look_dir(dir: &Path, names: &str, looks: &[f32]) -> Adapter {
        let directions = looks.len() / 2;
        let model = random_model(&tiny_config(), 1).unwrap();
        let basis = random_adapter(&model, LOOK_TASK, BASIS_CHANNELS, 2, Region::Global).unwrap();
        std::fs::create_dir_all(dir.join(LOOKS_DIR)).unwrap();
        basis.write(&dir.join(LOOKS_DIR).join(BASIS_FILE)).unwrap();
        let mut file = TensorFile::default();
        let mut put = |name: &str, shape: Vec<usize>, values: Vec<f32>| {
            file.tensors.insert(name.to_string(), RawTensor::from_f32(shape, &values));
        };
        put("mixer.w1", vec![2, 2], vec![0.0; 4]);
        put("mixer.b1", vec![2], vec![0.0; 2]);
        put("mixer.w2", vec![2, directions], vec![0.0; 2 * directions]);
        put("mixer.b2", vec![directions], vec![0.5; directions]);
        // Sharp enough that [1, 0] reads as the first look with probability ~1.
        put("reader.w1", vec![2, 2], vec![20.0, 0.0, 0.0, 20.0]);
        put("reader.b1", vec![2], vec![0.0; 2]);
        put("reader.w2", vec![2, 2], vec![1.0, 0.0, 0.0, 1.0]);
        put("reader.b2", vec![2], vec![0.0; 2]);
        put(READER_LOOKS, vec![2, directions], looks.to_vec());
        file.metadata.insert(READER_NAMES.into(), names.into());
        file.write(&dir.join(LOOKS_DIR).join(MIXER_FILE)).unwrap();
        basis
    }

    #[test]
    fn a_reader_makes_the_look_it_reads_and_says_what_it_read() {
        // The shipped tool's 8 directions of rank 4, and the same rank as 16 directions of 2.
        for directions in [BASIS, 2 * BASIS] {
            let dir = tempfile::tempdir().unwrap();
            let looks: Vec<f32> = (0..2 * directions).map(|i| i as f32 * 0.05 - 0.5).collect();
            let basis = look_dir(dir.path(), "warmer,cooler", &looks);
            let maker = LookMaker::load(dir.path()).unwrap().unwrap();
            let warm = Embedding(vec![1.0, 0.0]);
            let weights = maker.weights(&warm).unwrap();
            assert_eq!(weights.len(), directions);
            for (got, want) in weights.iter().zip(&looks[..directions]) {
                assert!((got - want).abs() < 1e-4, "{weights:?} is not the first look's row {:?}", &looks[..directions]);
            }
            let read = maker.read_as(&warm, 0.1).unwrap();
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].0, "warmer");
            assert!(read[0].1 > 0.999);
            // The made adapter is the basis with each direction's B columns scaled by its weight.
            let made = maker.make(&warm).unwrap();
            let (name, layer) = made.layers.iter().next().unwrap();
            let rank_per_direction = BASIS_CHANNELS / directions;
            for (row, original) in layer.b.chunks(BASIS_CHANNELS).zip(basis.layers[name].b.chunks(BASIS_CHANNELS)) {
                for (j, (value, before)) in row.iter().zip(original).enumerate() {
                    assert!((value - before * weights[j / rank_per_direction]).abs() < 1e-6);
                }
            }
            // Halfway between the two looks, the weights are halfway between their rows.
            let both = maker.weights(&Embedding(vec![1.0, 1.0])).unwrap();
            for (i, w) in both.iter().enumerate() {
                assert!((w - 0.5 * (looks[i] + looks[directions + i])).abs() < 1e-4);
            }
        }
        // Directions that do not divide the basis's rank are refused when the tool is read.
        let dir = tempfile::tempdir().unwrap();
        look_dir(dir.path(), "warmer,cooler", &[0.0; 2 * 5]);
        let error = LookMaker::load(dir.path()).err().expect("5 directions of a rank-32 basis loaded").to_string();
        assert!(error.contains("5 directions"), "{error}");
    }

    #[test]
    fn without_a_reader_the_mixer_gives_the_weights_and_a_reader_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        look_dir(dir.path(), "warmer,cooler", &[0.0; 2 * BASIS]);
        let path = dir.path().join(LOOKS_DIR).join(MIXER_FILE);
        let mut file = TensorFile::read(&path).unwrap();
        for name in READER_TENSORS.iter().chain([&READER_LOOKS]) {
            file.tensors.remove(*name);
        }
        file.write(&path).unwrap();
        let maker = LookMaker::load(dir.path()).unwrap().unwrap();
        assert_eq!(maker.weights(&Embedding(vec![1.0, 0.0])).unwrap(), vec![0.5; BASIS]);
        assert!(maker.read_as(&Embedding(vec![1.0, 0.0]), 0.0).unwrap().is_empty());

        // Three names for two rows of looks, and a classifier with one output too few.
        look_dir(dir.path(), "warmer,cooler,sepia", &[0.0; 2 * BASIS]);
        let error = LookMaker::load(dir.path()).err().expect("a reader with three names for two looks loaded").to_string();
        assert!(error.contains("3 names"), "{error}");
        look_dir(dir.path(), "warmer,cooler", &[0.0; 2 * BASIS]);
        let mut file = TensorFile::read(&path).unwrap();
        file.tensors.insert("reader.b2".into(), RawTensor::from_f32(vec![1], &[0.0]));
        file.write(&path).unwrap();
        assert!(LookMaker::load(dir.path()).is_err(), "a classifier with too few outputs loaded");
    }
}
