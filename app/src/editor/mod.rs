//! The editor window: an eframe app beside the engine thread. It is split into rooms:
//!
//! | file | room |
//! |---|---|
//! | `app` | `PrismApp`: its state and the frame (events in, panels drawn, actions applied, autosave) |
//! | `state` | what lives only for the session: tool choice, jobs, lightbox, quantized view, notices |
//! | `settings` | what is remembered between runs (serde; old files still load) |
//! | `document` | the open photo, its working mask and history |
//! | `actions` | `Action`: what clicks and keys ask for, and `apply`, which runs them after the frame |
//! | `events` | engine events into state |
//! | `jobs`, `files`, `tools` | starting edits; files in and out; picking tools |
//! | `input` | keyboard, drops and the clipboard into actions |
//! | `panels/` | one file per panel or window: takes the state it draws, returns actions |
//! | `canvas_area`, `canvas`, `mask`, `textures` | the central canvas, view, mask painting, textures |
//! | `autosave`, `metrics`, `prompts` | crash recovery, PSNR/SSIM and heatmaps, typed requests into tools (the prompt encoder, built off the UI thread) |

mod actions;
mod app;
mod autosave;
mod canvas;
mod canvas_area;
mod document;
mod events;
mod files;
mod input;
mod jobs;
mod mask;
mod metrics;
mod panels;
mod prompts;
mod settings;
mod state;
mod textures;
mod tools;

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use eframe::egui;

pub use actions::{Action, MaskOp};
pub use app::PrismApp;
pub use autosave::AutosaveSummary;
pub use canvas::{Compare, MaskTool};
pub use document::Document;
pub use mask::{Brush, MaskLayer};
pub use metrics::Agreement;
pub use panels::SHORTCUTS;
pub use settings::{Settings, Theme};
pub use state::{EngineStatus, Lightbox, LightboxEntry, Notice, PromptOutcome, QuantCompare, QuantShow, ToolChoice};

/// How the editor starts.
#[derive(Clone, Debug)]
pub struct EditorOptions {
    /// Opened at start.
    pub image: Option<PathBuf>,
    pub model_dir: PathBuf,
    /// Settings and autosave; None remembers nothing between runs.
    pub config_dir: Option<PathBuf>,
}

impl EditorOptions {
    /// The image given on the command line, or a shipped sample so there is something to edit.
    pub fn for_command_line(image: Option<PathBuf>) -> Self {
        let model_dir = crate::library::default_model_dir();
        let image = image.or_else(|| Some(model_dir.join("samples").join("coffee.jpg")).filter(|p| p.exists()));
        Self { image, model_dir, config_dir: settings::config_dir() }
    }
}

/// Opens the editor window and returns when it closes.
pub fn run_editor(options: EditorOptions) -> Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Prism")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native("Prism", native, Box::new(move |cc| Ok(Box::new(PrismApp::new(&cc.egui_ctx, options)))))
        .map_err(|e| anyhow!("cannot open the editor window: {e}"))
}
