//! What lives only for the session: the tool the next run uses, running jobs, the lightbox,
//! quantized-vs-float and demo views, notices, modals, and what the engine said about itself.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use prism_engine::backends::{AdapterInfo, BackendKind, MemoryReport};
use prism_engine::imageio::RgbImage;
use prism_engine::job::JobStats;
use prism_engine::mix::Mix;
use prism_engine::record::{EditRecord, PromptRecord};

use super::{Agreement, AutosaveSummary};

/// What a running job is for.
#[derive(Clone, Debug)]
pub(super) enum JobPurpose {
    Edit {
        mix: Mix,
        strength: f32,
        title: String,
        prompt: Option<PromptRecord>,
    },
    Lightbox {
        slot: usize,
    },
    Quantized {
        float: bool,
    },
    /// A demo run of `tools[tool]` of the demo view.
    Demo {
        tool: usize,
    },
}

pub(super) struct RunningJob {
    pub(super) purpose: JobPurpose,
    pub(super) done: usize,
    pub(super) total: usize,
}

/// The tool (or blend) the next run uses.
#[derive(Clone, Debug)]
pub struct ToolChoice {
    /// Tools and weights as the mix editor holds them; checked into a [`Mix`] when a job starts.
    pub mix: Vec<(String, f32)>,
    pub strength: f32,
    /// Stops to brighten the input by, for tools that take an exposure; None: estimated.
    pub exposure: Option<f32>,
    /// The blur size for tools that take one; None: the default.
    pub blur_size: Option<f32>,
    /// The noise level (8-bit levels) for tools that take one; None: estimated.
    pub noise_level: Option<f32>,
    /// How much of the surroundings' texture a removal's fill takes (models that fill from a
    /// smooth guess).
    pub texture: f32,
    pub prompt: String,
    /// What the prompt chose last, shown under the box.
    pub prompt_outcome: Option<PromptOutcome>,
    /// The user picked a tool; until then the default follows the tools as they install.
    pub picked: bool,
}

impl Default for ToolChoice {
    fn default() -> Self {
        Self {
            mix: Vec::new(),
            strength: 1.0,
            exposure: None,
            blur_size: None,
            noise_level: None,
            texture: prism_engine::job::DEFAULT_TEXTURE,
            prompt: String::new(),
            prompt_outcome: None,
            picked: false,
        }
    }
}

/// How a local tool's job fills the hole: the context it sees around it (a fraction of the
/// hole's size) and how much of the surroundings' texture the fill takes (`EditJob`'s fields).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FillSettings {
    pub context: f32,
    pub texture: f32,
}

impl Default for FillSettings {
    fn default() -> Self {
        Self { context: prism_engine::job::DEFAULT_CONTEXT, texture: prism_engine::job::DEFAULT_TEXTURE }
    }
}

/// What the typed request came to.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptOutcome {
    /// The prompt encoder is still reading the tools' descriptions.
    Reading,
    /// The tools it chose (now in the mix), in words, and what the next edit records.
    Chosen { summary: String, record: PromptRecord },
    /// Nothing fits, or the prompt cannot be read: why, in words.
    Refused(String),
}

/// The adapter lightbox: one image and mask through several adapters and a no-adapter baseline.
pub struct Lightbox {
    pub entries: Vec<LightboxEntry>,
    pub selected: usize,
    /// Tools ticked for the next lightbox run.
    pub chosen: BTreeSet<String>,
    /// Requests to compare, one per line: each becomes an entry with the tools it chooses.
    pub prompts: String,
}

pub struct LightboxEntry {
    pub label: String,
    pub mix: Mix,
    pub strength: f32,
    pub result: Option<Arc<RgbImage>>,
    /// What made `result`, kept with it in the history when the user keeps it.
    pub record: Option<EditRecord>,
    /// The request that chose this entry's tools, if one did.
    pub prompt: Option<PromptRecord>,
    /// Local tools: how this entry's job fills the hole.
    pub fill: FillSettings,
    pub error: Option<String>,
}

impl LightboxEntry {
    pub fn new(label: String, mix: Mix, strength: f32) -> Self {
        Self { label, mix, strength, result: None, record: None, prompt: None, fill: FillSettings::default(), error: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantShow {
    Int8,
    Float,
    Difference,
}

/// The same edit through the int8 model and through the float teachers.
pub struct QuantCompare {
    pub title: String,
    pub int8: Option<Arc<RgbImage>>,
    pub float: Option<Arc<RgbImage>>,
    pub show: QuantShow,
    pub agreement: Option<Agreement>,
    pub(super) heatmap: Option<(Arc<RgbImage>, egui::TextureHandle)>,
    /// Difference shown as full white, in 0..255 steps.
    pub heat_scale: f32,
    pub(super) heat_scale_used: f32,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

/// Every tool in turn on the open photo (View → Demo): each run's switch, forward and memory as
/// it comes in.
pub struct DemoView {
    /// The tools in the order they run, each `rounds` times.
    pub tools: Vec<AdapterInfo>,
    pub rounds: usize,
    pub runs: Vec<crate::demo::DemoRow>,
    pub failures: Vec<String>,
    pub photo: PathBuf,
    pub size: (usize, usize),
    /// The backend and device the last run reported.
    pub device: Option<(BackendKind, String)>,
}

impl DemoView {
    pub fn expected(&self) -> usize {
        self.tools.len() * self.rounds
    }

    pub fn finished(&self) -> bool {
        self.runs.len() + self.failures.len() >= self.expected()
    }

    /// The same report `prism demo --json` prints.
    pub fn report(&self) -> crate::demo::DemoReport {
        let (backend, device) = self.device.clone().unwrap_or_default();
        crate::demo::DemoReport {
            backend,
            device,
            photo: self.photo.clone(),
            width: self.size.0,
            height: self.size.1,
            rounds: self.rounds,
            runs: self.runs.clone(),
            summary: crate::demo::summarize(&self.tools, &self.runs),
        }
    }
}

/// A message for the user; errors stay until dismissed.
#[derive(Clone, Debug)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

pub enum Modal {
    ConfirmOverwrite(PathBuf),
    RestoreAutosave(AutosaveSummary),
}

/// The title an installed tool shows (its id when no tool has that name).
pub fn tool_title(tools: &[AdapterInfo], name: &str) -> String {
    tools.iter().find(|t| t.meta.name == name).map_or_else(|| name.to_string(), |t| t.meta.title.clone())
}

/// What the engine said about itself, for the status bar.
#[derive(Clone, Debug, Default)]
pub struct EngineStatus {
    /// None until the engine says which backend it runs.
    pub backend: Option<BackendKind>,
    pub device: String,
    pub memory: MemoryReport,
    pub last_stats: Option<JobStats>,
}
