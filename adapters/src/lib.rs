//! Prism's training side: data, the base model, one LoRA adapter per tool, QUAD and evaluation.
//! It uses the engine's model definition, so what is trained is exactly what runs.

pub mod data;
pub mod debian_copyright;
pub mod eval;
pub mod fit_doubling;
pub mod grow;
pub mod joint;
pub mod look_eval;
pub mod look_tool;
pub mod look_widen;
pub mod looks;
pub mod model_card;
pub mod open_head;
pub mod packages;
pub mod placements;
pub mod qt_resources;
pub mod quad;
pub mod recipe;
pub mod tasks;
pub mod text_encoder;
pub mod train;
