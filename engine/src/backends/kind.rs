//! The names a user picks: which backend runs the model, and at which precision.

use serde::{Deserialize, Serialize};

/// Which backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The best available: a hardware GPU through wgpu, the reference CPU backend otherwise.
    #[default]
    Auto,
    Reference,
    Wgpu,
    Ort,
}

impl BackendKind {
    /// Every backend, in the order menus list them.
    pub const ALL: [Self; 4] = [Self::Auto, Self::Reference, Self::Wgpu, Self::Ort];

    /// What a menu shows for it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "auto (GPU when there is one)",
            Self::Reference => "reference (CPU)",
            Self::Wgpu => "wgpu (GPU)",
            Self::Ort => "ONNX Runtime",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Reference => "reference",
            Self::Wgpu => "wgpu",
            Self::Ort => "ort",
        }
    }
}

/// Quantized (int8 weights, int16 activations, int8 adapters) or the float reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Int8,
    Float,
}

impl Precision {
    pub const ALL: [Self; 2] = [Self::Int8, Self::Float];

    /// What a menu shows for it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Int8 => "int8 (shared quantized model)",
            Self::Float => "float",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Float => "float",
        }
    }

    /// What a menu shows for a choice, `None` being "whichever runs faster here".
    pub fn describe_choice(choice: Option<Self>) -> &'static str {
        choice.map_or("auto (the faster here)", Self::describe)
    }

    /// The short name of a choice.
    pub fn choice_name(choice: Option<Self>) -> &'static str {
        choice.map_or("auto", Self::name)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which ONNX Runtime execution provider the `ort` backend asks for: the NPU and GPU delegates
/// of Windows and macOS, or the CPU. The CPU provider is always the fallback for the operators
/// a delegate does not place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The first this ONNX Runtime offers of QNN, DirectML, CoreML, then the CPU.
    #[default]
    Auto,
    Cpu,
    /// Windows: any DirectX 12 GPU or NPU.
    #[cfg_attr(feature = "clap", value(name = "directml"))]
    DirectMl,
    /// macOS: Core ML (the Neural Engine, GPU or CPU).
    #[cfg_attr(feature = "clap", value(name = "coreml"))]
    CoreMl,
    /// Qualcomm's QNN (the Hexagon NPU of Snapdragon X), from the `onnxruntime-qnn` build.
    Qnn,
}

impl Provider {
    /// Every provider, in the order menus list them.
    pub const ALL: [Self; 5] = [Self::Auto, Self::Cpu, Self::Qnn, Self::DirectMl, Self::CoreMl];

    /// The delegates `auto` tries, most specialised first.
    pub const DELEGATES: [Self; 3] = [Self::Qnn, Self::DirectMl, Self::CoreMl];

    /// What this choice resolves to on a runtime that offers `offered`: `auto` takes the first
    /// delegate offered, else the CPU.
    pub fn resolve(self, offered: &[Self]) -> Self {
        match self {
            Self::Auto => Self::DELEGATES.into_iter().find(|p| offered.contains(p)).unwrap_or(Self::Cpu),
            other => other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::DirectMl => "directml",
            Self::CoreMl => "coreml",
            Self::Qnn => "qnn",
        }
    }

    /// What a menu shows for it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "auto (an NPU or GPU delegate when the runtime has one)",
            Self::Cpu => "CPU",
            Self::DirectMl => "DirectML (Windows GPU/NPU)",
            Self::CoreMl => "Core ML (Apple Neural Engine)",
            Self::Qnn => "QNN (Snapdragon NPU)",
        }
    }

    /// How ONNX Runtime itself names it.
    pub fn runtime_name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "CPUExecutionProvider",
            Self::DirectMl => "DmlExecutionProvider",
            Self::CoreMl => "CoreMLExecutionProvider",
            Self::Qnn => "QNNExecutionProvider",
        }
    }
}
