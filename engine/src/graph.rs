//! prism-unet's structure, stated once: the config, its convolutions and the graph of nodes that
//! every backend lowers (the reference forward in `unet`, the wgpu plan, the ONNX export).
//!
//! ```text
//! input [N,H,W,4] -> pixel_unshuffle(2) -> stem conv3x3 -> level 0 residual blocks
//!   -> down conv3x3/s2 -> level 1 blocks -> ... -> bottom level blocks
//!   -> for each level above, bottom up: nearest upsample x2, concat skip, fuse conv1x1, blocks
//!   -> head conv3x3 (12 channels; with `head_sees_input`, reading the unshuffled input beside
//!      the decoder's features) -> pixel_shuffle(2) -> residual [N,H,W,3]
//! ```
//! A new kind of block is one new [`Node`] variant built here plus one lowering per backend;
//! `tests/tests/graph_lowerings.rs` runs a config with every node kind through all three.

use serde::{Deserialize, Serialize};

use crate::conv::ConvGeometry;
use crate::error::{EngineError, Result};
use crate::hole_fill::HoleFill;

pub const ARCH_NAME: &str = "prism-unet";
pub const ARCH_VERSION: u32 = 1;
/// RGB in [-1, 1] (for local tools, masked pixels as the config's [`HoleFill`] says) plus the mask.
pub const INPUT_CHANNELS: usize = 4;
pub const OUTPUT_CHANNELS: usize = 3;
/// The stem works at half resolution on pixel-unshuffled input.
pub const SHUFFLE: usize = 2;
/// Channels of the pixel-unshuffled input.
pub const UNSHUFFLED_CHANNELS: usize = INPUT_CHANNELS * SHUFFLE * SHUFFLE;

/// Architecture hyper-parameters, stored in the weights file's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnetConfig {
    pub arch: String,
    pub version: u32,
    /// Channels per level, top (half resolution) to bottom.
    pub channels: Vec<usize>,
    /// Residual blocks per level (encoder; the decoder mirrors them above the bottom level).
    pub blocks: Vec<usize>,
    /// Largest LoRA rank the compiled graph accepts per adapter.
    pub max_rank: usize,
    /// What the input shows where a local tool fills (absent in files written before it existed).
    #[serde(default, skip_serializing_if = "HoleFill::is_blank")]
    pub hole_fill: HoleFill,
    /// The head reads the unshuffled input beside the decoder's features, so an adapter on the
    /// head can map each pixel's own colour to the output (black and white, a tint) in one
    /// linear step instead of carrying it through the whole network. Absent in older files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub head_sees_input: bool,
}

impl UnetConfig {
    pub fn new(channels: Vec<usize>, blocks: Vec<usize>, max_rank: usize) -> Result<Self> {
        let config = Self {
            arch: ARCH_NAME.into(),
            version: ARCH_VERSION,
            channels,
            blocks,
            max_rank,
            hole_fill: HoleFill::Blank,
            head_sees_input: false,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.arch != ARCH_NAME || self.version != ARCH_VERSION {
            return Err(EngineError::Model(format!(
                "model architecture is {} v{}, this Prism runs {ARCH_NAME} v{ARCH_VERSION}",
                self.arch, self.version
            )));
        }
        if self.channels.is_empty() || self.channels.len() != self.blocks.len() {
            return Err(EngineError::Model("model config needs one block count per level".into()));
        }
        if self.channels.iter().any(|&c| c == 0 || c > 4096) || self.blocks.iter().any(|&b| b > 64) {
            return Err(EngineError::Model(format!(
                "model config has implausible sizes: {:?} / {:?}",
                self.channels, self.blocks
            )));
        }
        if self.max_rank == 0 || self.max_rank > 1024 {
            return Err(EngineError::Model(format!("model max LoRA rank {} is out of range", self.max_rank)));
        }
        Ok(())
    }

    /// Input height and width must be multiples of this.
    pub fn alignment(&self) -> usize {
        SHUFFLE << (self.channels.len() - 1)
    }

    /// Every convolution of the model, in execution order.
    pub fn convs(&self) -> Vec<ConvSpec> {
        self.graph().convs
    }

    /// The model's structure: the one description every backend lowers.
    pub fn graph(&self) -> Graph {
        let c = &self.channels;
        let levels = c.len();
        let mut g = Builder::default();
        let input = g.push(Node::Input);
        let unshuffled = g.push(Node::Unshuffle { x: input });
        let mut x = g.conv(unshuffled, None, ConvSpec::new("stem", UNSHUFFLED_CHANNELS, c[0], 3, 1, true, 0));
        let mut skips = Vec::with_capacity(levels);
        for level in 0..levels {
            for b in 0..self.blocks[level] {
                x = g.residual_block(x, &format!("enc{level}.res{b}"), c[level], level);
            }
            if level + 1 < levels {
                skips.push(x);
                x = g.conv(x, None, ConvSpec::new(&format!("enc{level}.down"), c[level], c[level + 1], 3, 2, true, level + 1));
            }
        }
        for level in (0..levels - 1).rev() {
            let skip = skips.pop();
            let fuse = ConvSpec::new(&format!("dec{level}.fuse"), c[level + 1] + c[level], c[level], 1, 1, true, level);
            x = g.conv(x, skip.map(Join::Upsampled), fuse);
            for b in 0..self.blocks[level] {
                x = g.residual_block(x, &format!("dec{level}.res{b}"), c[level], level);
            }
        }
        let (head_join, head_cin) =
            if self.head_sees_input { (Some(Join::Beside(unshuffled)), c[0] + UNSHUFFLED_CHANNELS) } else { (None, c[0]) };
        let head = g.conv(x, head_join, ConvSpec::new("head", head_cin, OUTPUT_CHANNELS * SHUFFLE * SHUFFLE, 3, 1, false, 0));
        g.push(Node::Shuffle { x: head });
        Graph { nodes: g.nodes, convs: g.convs }
    }

    /// Multiply-accumulates x 2 for one forward pass at `height x width` (no LoRA).
    pub fn flops(&self, height: usize, width: usize) -> u64 {
        self.convs().iter().map(|spec| 2 * (spec.pixels(height, width) * spec.k * spec.k * spec.cin * spec.cout) as u64).sum()
    }

    /// What one bound adapter of `rank` adds to [`Self::flops`]: its A pass (a k x k conv to
    /// `rank` channels) and its B pass (1x1 back to the conv's outputs) on every conv.
    pub fn lora_flops(&self, height: usize, width: usize, rank: usize) -> u64 {
        self.placed_lora_flops(height, width, rank, LoraPlacement::EVERY_CONV)
    }

    /// Values in one adapter of `rank` (A and B on every conv).
    pub fn lora_values(&self, rank: usize) -> usize {
        self.placed_lora_values(rank, LoraPlacement::EVERY_CONV)
    }

    /// [`Self::lora_flops`] of an adapter on the convs `placement` covers.
    pub fn placed_lora_flops(&self, height: usize, width: usize, rank: usize, placement: LoraPlacement) -> u64 {
        let covered = self.convs().into_iter().filter(|spec| placement.covers(spec));
        covered.map(|spec| 2 * (spec.pixels(height, width) * rank * spec.lora_values_per_rank()) as u64).sum()
    }

    /// [`Self::lora_values`] of an adapter on the convs `placement` covers.
    pub fn placed_lora_values(&self, rank: usize, placement: LoraPlacement) -> usize {
        self.convs().iter().filter(|spec| placement.covers(spec)).map(|spec| rank * spec.lora_values_per_rank()).sum()
    }

    pub fn parameter_count(&self) -> usize {
        self.convs().iter().map(|s| s.k * s.k * s.cin * s.cout + s.cout).sum()
    }
}

/// Which convs an adapter carries LoRA on: those whose output lives at `min_level` or below
/// (coarser). Low-resolution levels hold most of a deep model's parameters at little cost in
/// FLOPs, so an adapter there is small in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoraPlacement {
    pub min_level: usize,
}

impl LoraPlacement {
    pub const EVERY_CONV: Self = Self { min_level: 0 };

    pub fn covers(self, spec: &ConvSpec) -> bool {
        spec.level >= self.min_level
    }
}

/// One convolution of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    /// Followed by a leaky ReLU (slope [`LEAKY_SLOPE`] below zero).
    pub leaky_relu: bool,
    /// Resolution level of the conv's output (0 = half resolution, each level halves again).
    pub level: usize,
}

impl ConvSpec {
    fn new(name: &str, cin: usize, cout: usize, k: usize, stride: usize, leaky_relu: bool, level: usize) -> Self {
        Self { name: name.into(), cin, cout, k, stride, leaky_relu, level }
    }

    pub fn geometry(&self) -> ConvGeometry {
        ConvGeometry { k: self.k, stride: self.stride }
    }

    /// Output pixels of this conv for a `height x width` model input.
    fn pixels(&self, height: usize, width: usize) -> usize {
        let scale = SHUFFLE * (1usize << self.level);
        (height / scale) * (width / scale)
    }

    /// Values a LoRA adds to this conv per unit of rank: one A column (k x k x cin) and one B row (cout).
    fn lora_values_per_rank(&self) -> usize {
        self.k * self.k * self.cin + self.cout
    }

    pub fn weight_name(&self) -> String {
        format!("{}.weight", self.name)
    }

    pub fn bias_name(&self) -> String {
        format!("{}.bias", self.name)
    }

    pub fn weight_shape(&self) -> Vec<usize> {
        vec![self.cout, self.cin, self.k, self.k]
    }
}

/// Negative slope of the activation. A plain ReLU let whole decoder layers die within a few
/// hundred training steps (every output negative, no gradient back); a leaky one cannot die.
pub const LEAKY_SLOPE: f32 = 0.1;

/// A value of the graph: the index of the node that produces it.
pub type ValueId = usize;

/// One operation of the model. Quantization points (where QuantSim rounds and backends store
/// quantized activations) are named in each variant's doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// The model input `[N,H,W,4]`, stored at point `input`.
    Input,
    /// Pixel unshuffle by 2 (no rounding).
    Unshuffle { x: ValueId },
    /// Convolution number `conv` of [`Graph::convs`] with its LoRA side path, stored at
    /// `<conv>.out` (and `<conv>.lora_mid` for the side path). With `join`, the conv reads `x`
    /// and the joined value concatenated along channels (no rounding).
    Conv { conv: usize, x: ValueId, join: Option<Join> },
    /// `x + y`, stored at `point` (a residual block's output).
    Add { x: ValueId, y: ValueId, point: String },
    /// Pixel shuffle by 2 of the head: the model's output residual (no rounding).
    Shuffle { x: ValueId },
}

impl Node {
    /// The values this node reads.
    pub fn inputs(&self) -> Vec<ValueId> {
        match self {
            Node::Input => Vec::new(),
            Node::Unshuffle { x } | Node::Shuffle { x } => vec![*x],
            Node::Conv { x, join, .. } => std::iter::once(*x).chain(join.map(Join::value)).collect(),
            Node::Add { x, y, .. } => vec![*x, *y],
        }
    }
}

/// A second value a conv reads after `x`, concatenated along channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// `x` comes from the level below: it is upsampled x2 (nearest) first; the value is the
    /// encoder's skip at this level.
    Upsampled(ValueId),
    /// The value is at `x`'s resolution and is read as it is (the head beside the unshuffled input).
    Beside(ValueId),
}

impl Join {
    pub fn value(self) -> ValueId {
        match self {
            Join::Upsampled(value) | Join::Beside(value) => value,
        }
    }

    /// Whether the conv's main input is upsampled x2 before the join.
    pub fn upsamples_x(self) -> bool {
        matches!(self, Join::Upsampled(_))
    }
}

/// The model as nodes in execution order; every node reads only earlier nodes, the last one is
/// the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Every convolution, in the order the nodes run them.
    pub convs: Vec<ConvSpec>,
}

impl Graph {
    /// Channels of value `id`.
    pub fn channels(&self, id: ValueId) -> usize {
        match &self.nodes[id] {
            Node::Input => INPUT_CHANNELS,
            Node::Unshuffle { x } => self.channels(*x) * SHUFFLE * SHUFFLE,
            Node::Conv { conv, .. } => self.convs[*conv].cout,
            Node::Add { x, .. } => self.channels(*x),
            Node::Shuffle { x } => self.channels(*x) / (SHUFFLE * SHUFFLE),
        }
    }

    /// For each node, the values it reads for the last time: a lowering may free them once the
    /// node has run.
    pub fn last_reads(&self) -> Vec<Vec<ValueId>> {
        let mut last_reader = vec![None; self.nodes.len()];
        for (index, node) in self.nodes.iter().enumerate() {
            for input in node.inputs() {
                last_reader[input] = Some(index);
            }
        }
        let mut reads = vec![Vec::new(); self.nodes.len()];
        for (value, reader) in last_reader.into_iter().enumerate() {
            if let Some(reader) = reader {
                reads[reader].push(value);
            }
        }
        reads
    }
}

/// A graph lowering read a value that is missing: only a malformed graph gets here.
pub(crate) fn missing_value(value: ValueId) -> EngineError {
    EngineError::Model(format!("the model graph reads value {value} before it is computed"))
}

#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    convs: Vec<ConvSpec>,
}

impl Builder {
    fn push(&mut self, node: Node) -> ValueId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn conv(&mut self, x: ValueId, join: Option<Join>, spec: ConvSpec) -> ValueId {
        self.convs.push(spec);
        self.push(Node::Conv { conv: self.convs.len() - 1, x, join })
    }

    /// `x + conv2(conv1(x))`.
    fn residual_block(&mut self, x: ValueId, prefix: &str, channels: usize, level: usize) -> ValueId {
        let inner = self.conv(x, None, ConvSpec::new(&format!("{prefix}.conv1"), channels, channels, 3, 1, true, level));
        let inner = self.conv(inner, None, ConvSpec::new(&format!("{prefix}.conv2"), channels, channels, 3, 1, false, level));
        self.push(Node::Add { x, y: inner, point: format!("{prefix}.add") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_reads_earlier_values_and_every_conv_runs_once() {
        let config = UnetConfig::new(vec![8, 12, 16], vec![1, 0, 2], 4).unwrap();
        let graph = config.graph();
        for (index, node) in graph.nodes.iter().enumerate() {
            assert!(node.inputs().iter().all(|&v| v < index), "node {index} reads a later value");
        }
        let mut ran: Vec<usize> =
            graph.nodes.iter().filter_map(|n| if let Node::Conv { conv, .. } = n { Some(*conv) } else { None }).collect();
        ran.sort_unstable();
        assert_eq!(ran, (0..graph.convs.len()).collect::<Vec<_>>());
        assert!(matches!(graph.nodes.last(), Some(Node::Shuffle { .. })));
        // Stem, 2 downs, 2 fuses and the head, then 2 convs per residual block: 1 + 0 + 2 in the
        // encoder, 0 + 1 in the decoder (the levels above the bottom mirror theirs).
        assert_eq!(graph.convs.len(), 6 + 2 * 4);
        let names: Vec<&str> = graph.convs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[..4], ["stem", "enc0.res0.conv1", "enc0.res0.conv2", "enc0.down"]);
        let levels: Vec<(&str, usize)> = graph.convs.iter().map(|s| (s.name.as_str(), s.level)).collect();
        assert!(levels.contains(&("enc1.down", 2)) && levels.contains(&("dec1.fuse", 1)) && levels.contains(&("head", 0)));
    }

    #[test]
    fn a_head_that_sees_the_input_reads_the_unshuffled_input_beside_the_decoder() {
        let plain = UnetConfig::new(vec![8, 12], vec![1, 1], 4).unwrap();
        let seeing = UnetConfig { head_sees_input: true, ..plain.clone() };
        let graph = seeing.graph();
        let head = graph.convs.iter().position(|s| s.name == "head").unwrap();
        let Some(Node::Conv { join: Some(Join::Beside(joined)), x, .. }) =
            graph.nodes.iter().find(|n| matches!(n, Node::Conv { conv, .. } if *conv == head))
        else {
            panic!("the head joins a value beside its input");
        };
        assert!(matches!(graph.nodes[*joined], Node::Unshuffle { .. }));
        assert_eq!(graph.channels(*joined), UNSHUFFLED_CHANNELS);
        assert_eq!(graph.channels(*x), 8);
        assert_eq!(graph.convs[head].cin, 8 + UNSHUFFLED_CHANNELS);
        // Only the head grows: the rest of the model and its order are the plain one's.
        let plain_convs = plain.convs();
        assert_eq!(graph.convs.len(), plain_convs.len());
        for (a, b) in graph.convs.iter().zip(&plain_convs) {
            assert!(a == b || a.name == "head", "{} changed", a.name);
        }
        // Older files have no such field: they read as a plain head.
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("head_sees_input"));
        assert!(!serde_json::from_str::<UnetConfig>(&json).unwrap().head_sees_input);
        assert!(serde_json::to_string(&seeing).unwrap().contains("\"head_sees_input\":true"));
    }

    #[test]
    fn a_placement_counts_only_the_convs_it_covers() {
        let config = UnetConfig::new(vec![8, 12, 16], vec![1, 0, 2], 4).unwrap();
        let every = LoraPlacement::EVERY_CONV;
        assert_eq!(config.placed_lora_values(4, every), config.lora_values(4));
        let bottom = LoraPlacement { min_level: 2 };
        // At level 2: enc1.down (3x3, 12 -> 16) and two blocks of two 3x3 16 -> 16 convs.
        assert_eq!(config.placed_lora_values(4, bottom), 4 * ((9 * 12 + 16) + 4 * (9 * 16 + 16)));
        // Level 2 works at 1/8 of the input: 64 x 64 -> 8 x 8 pixels.
        assert_eq!(config.placed_lora_flops(64, 64, 4, bottom), 2 * 64 * config.placed_lora_values(4, bottom) as u64);
        assert_eq!(config.placed_lora_values(4, LoraPlacement { min_level: 3 }), 0);
    }

    #[test]
    fn last_reads_free_each_value_once_after_its_last_reader() {
        let graph = UnetConfig::new(vec![8, 12], vec![1, 1], 4).unwrap().graph();
        let reads = graph.last_reads();
        let mut freed = vec![0; graph.nodes.len()];
        for (reader, values) in reads.iter().enumerate() {
            for &value in values {
                freed[value] += 1;
                assert!(graph.nodes[reader].inputs().contains(&value));
                assert!(graph.nodes[reader + 1..].iter().all(|n| !n.inputs().contains(&value)));
            }
        }
        // Everything but the output is read, so everything but the output is freed once.
        let output = graph.nodes.len() - 1;
        assert!(freed[..output].iter().all(|&f| f == 1) && freed[output] == 0);
    }
}
