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
