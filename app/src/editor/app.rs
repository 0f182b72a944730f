//! `PrismApp`: the eframe app. Its state in three kinds — persisted [`Settings`], the open
//! [`Document`], and the session (tool choice, jobs, windows) — and the frame: engine events in,
//! panels drawn, actions applied, autosave.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender, unbounded};
use eframe::egui;
use prism_engine::backends::AdapterInfo;
use prism_engine::engine::{Command, EngineHandle};
use prism_engine::imageio::Picture;
use prism_engine::job::JobId;
use prism_engine::mix::Mix;
use prism_engine::model::Model;

use super::actions::Action;
use super::canvas::{self, Compare, MaskTool};
use super::state::{DemoView, EngineStatus, Lightbox, Modal, Notice, QuantCompare, RunningJob, ToolChoice};
use super::{Document, EditorOptions, Settings, Theme, autosave, textures};
use crate::library::all_adapter_files;

pub(super) type Loaded = (Option<PathBuf>, String, Result<Picture>);

/// The editor. Fields are grouped by the kind of state they are (see the module doc); the rooms
/// beside this file (`actions`, `events`, `jobs`, `files`, `tools`, `input`, `panels/`) each own
/// the changes to their part.
pub struct PrismApp {
    // ---- persisted between runs
    pub settings: Settings,

    // ---- the open document
    pub document: Option<Document>,
    /// Alpha channel and bit depth of the opened file, kept for saving.
    pub(super) source_format: Option<(Option<Vec<f32>>, bool)>,

    // ---- the session: what the user is doing now
    pub tool: ToolChoice,
    pub mask_tool: MaskTool,
    pub compare: Compare,
    /// "Hold to see the original" is pressed.
    pub(super) holding_original: bool,
    pub(super) jobs: BTreeMap<JobId, RunningJob>,
    pub(super) next_job: JobId,
    pub lightbox: Option<Lightbox>,
    pub quantized: Option<QuantCompare>,
    pub demo: Option<DemoView>,
    /// The demo was asked for with no photo open: it runs once the sample has loaded.
    pub(super) demo_waiting: bool,
    pub notices: Vec<Notice>,
    pub(super) modal: Option<Modal>,
    pub show_shortcuts: bool,
    pub show_adapters: bool,
    pub show_history: bool,
    /// Typed into the adapter manager's path box.
    pub install_path: String,

    // ---- what the engine said about itself
    pub status: EngineStatus,
    /// Installed tools (teachers excluded), sorted by title.
    pub tools: Vec<AdapterInfo>,
    /// Tools whose float teacher is installed, and the teacher's size.
    pub teachers: BTreeMap<String, usize>,
    /// Teacher files sent to the engine that it has not answered yet (installed or rejected).
    pub(super) teachers_awaited: usize,
    /// "Quantized vs float" was asked for while teachers were loading: it runs when they are in.
    pub(super) quantized_waiting: bool,

    // ---- machinery: the engine, loader and autosave threads, textures, this frame's actions
    pub(super) options: EditorOptions,
    pub(super) model: Option<Model>,
    pub(super) engine: Option<EngineHandle>,
    pub(super) loads: (Sender<Loaded>, Receiver<Loaded>),
    pub(super) loading: Option<String>,
    pub(super) prompts: super::prompts::PromptIndex,
    pub(super) autosaver: Option<autosave::Autosaver>,
    pub(super) autosaved_revision: Option<u64>,
    pub(super) canvas: canvas::CanvasState,
    pub(super) images: textures::ImageTextures,
    pub(super) overlay: Option<textures::OverlayTexture>,
    pub(super) actions: Vec<Action>,
    pub(super) ctx: egui::Context,
}

impl PrismApp {
    pub fn new(ctx: &egui::Context, options: EditorOptions) -> Self {
        let settings = options.config_dir.as_deref().map(Settings::load).unwrap_or_default();
        apply_theme(ctx, settings.theme);
        let mut app = Self {
            settings,
            model: None,
            engine: None,
            status: EngineStatus::default(),
            tools: Vec::new(),
            teachers: BTreeMap::new(),
            teachers_awaited: 0,
            quantized_waiting: false,
            document: None,
            source_format: None,
            canvas: canvas::CanvasState::default(),
            images: textures::ImageTextures::default(),
            overlay: None,
            mask_tool: MaskTool::Brush,
            tool: ToolChoice::default(),
            jobs: BTreeMap::new(),
            next_job: 1,
            compare: Compare::Off,
            holding_original: false,
            lightbox: None,
            quantized: None,
            demo: None,
            demo_waiting: false,
            notices: Vec::new(),
            modal: None,
            show_shortcuts: false,
            show_adapters: false,
            show_history: true,
            install_path: String::new(),
            loads: unbounded(),
            loading: None,
            prompts: Default::default(),
            autosaver: options.config_dir.as_ref().map(|d| autosave::Autosaver::new(d.join("autosave"))),
            autosaved_revision: None,
            actions: Vec::new(),
            ctx: ctx.clone(),
            options,
        };
        app.start_engine();
        if let Some(summary) = app.autosaver.as_ref().and_then(|a| autosave::pending(a.dir())) {
            tracing::info!(name = %summary.name, steps = summary.steps, "offering the autosaved document");
            app.modal = Some(Modal::RestoreAutosave(summary));
        }
        if let Some(path) = app.options.image.clone() {
            app.open(path);
        }
        app
    }

    pub(super) fn start_engine(&mut self) {
        let model = match Model::load(&self.options.model_dir) {
            Ok(model) => model,
            Err(error) => {
                self.error(format!("No model loaded ({error}). Tools are unavailable; set PRISM_MODEL to a model folder."));
                return;
            }
        };
        let adapters = match all_adapter_files(&model) {
            Ok(files) => files,
            Err(error) => {
                self.error(format!("{error:#}"));
                model.shipped_adapters()
            }
        };
        let ctx = self.ctx.clone();
        let waker: prism_engine::engine::Waker = Box::new(move || ctx.request_repaint());
        match EngineHandle::spawn(model.clone(), adapters, Some(waker)) {
            Ok(engine) => {
                for teacher in model.teacher_adapters() {
                    if engine.send(Command::InstallTeacher(teacher)).is_ok() {
                        self.teachers_awaited += 1;
                    }
                }
                // The engine starts on the CPU backend; this moves it to the one chosen (auto: a
                // hardware GPU when there is one).
                let _ = engine.send(Command::SetBackend(self.settings.backend, self.settings.provider));
                self.engine = Some(engine);
                self.model = Some(model);
            }
            Err(error) => self.error(format!("The engine did not start: {error}")),
        }
    }

    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::warn!("{text}");
        self.notices.push(Notice { text, error: true });
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.notices.retain(|n| n.error);
        self.notices.push(Notice { text: text.into(), error: false });
    }

    pub fn is_busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// (done, total) over the jobs running now.
    pub fn progress(&self) -> Option<(usize, usize)> {
        (!self.jobs.is_empty()).then(|| self.jobs.values().fold((0, 0), |(d, t), j| (d + j.done, t + j.total.max(1))))
    }

    /// The model fills a hole smoothly and takes the texture from its surroundings (model v2),
    /// so a removal's texture can be chosen.
    pub(super) fn textured_fill(&self) -> bool {
        self.model.as_ref().is_some_and(|m| !m.config().hole_fill.is_blank())
    }

    pub(super) fn tool_title(&self, name: &str) -> String {
        super::state::tool_title(&self.tools, name)
    }

    pub(super) fn mix_title(&self, mix: &Mix) -> String {
        mix.title(|name| self.tool_title(name))
    }
}

impl eframe::App for PrismApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain_events();
        self.receive_loads();
        self.receive_prompt_index();
        self.keyboard(&ctx);
        self.frame_ui(ui);
        self.apply_actions();
        self.autosave();
        if self.is_busy() || self.is_loading() || self.is_reading_prompt() {
            // Progress arrives by events; this keeps the spinner moving between them.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn on_exit(&mut self) {
        self.save_settings();
        // A clean exit with everything saved needs no recovery next time.
        if let (Some(autosaver), Some(document)) = (&self.autosaver, &self.document)
            && !document.has_unsaved_changes()
        {
            autosaver.discard();
            // Give the writer a moment to finish before the process ends.
            let deadline = Instant::now() + Duration::from_secs(2);
            while autosaver.dir().exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

pub(super) fn apply_theme(ctx: &egui::Context, theme: Theme) {
    ctx.set_theme(match theme {
        Theme::Dark => egui::ThemePreference::Dark,
        Theme::Light => egui::ThemePreference::Light,
        Theme::System => egui::ThemePreference::System,
    });
}
