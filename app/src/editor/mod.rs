//! The editor window: an eframe app on the engine thread. Three kinds of state are kept apart:
//! persisted [`Settings`], the open [`Document`], and what only lives for the session (view,
//! jobs, windows). Clicks and keys become [`Action`]s, applied after the frame is drawn; anything
//! slow (editing, loading, autosave) runs on another thread and reports back.

mod autosave;
mod canvas;
mod document;
mod mask;
mod metrics;
mod panels;
mod prompt;
mod settings;
mod textures;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::{Receiver, Sender, unbounded};
use eframe::egui::{self, Key, KeyboardShortcut, Modifiers};
use prism_engine::adapter::Region;
use prism_engine::backends::{AdapterInfo, BackendKind, MemoryReport, Precision};
use prism_engine::engine::{Command, EngineHandle, Event, TEACHER_SUFFIX};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, Picture, RgbImage, load_mask, load_picture, save_picture};
use prism_engine::job::{EditJob, JobId, JobStats};
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use prism_engine::record::{EditRecord, file_entries};

pub use autosave::AutosaveSummary;
pub use canvas::{Compare, MaskTool};
pub use document::Document;
pub use mask::{Brush, MaskLayer};
pub use metrics::Agreement;
pub use prompt::PromptMatch;
pub use settings::{Settings, Theme};

use crate::library::{all_adapter_files, install_adapter, user_adapter_dir};

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

/// What a running job is for.
#[derive(Clone, Debug)]
enum JobPurpose {
    Edit { mix: Mix, strength: f32, title: String },
    Lightbox { slot: usize },
    Quantized { float: bool },
}

struct RunningJob {
    purpose: JobPurpose,
    done: usize,
    total: usize,
}

/// The tool (or blend) the next run uses.
#[derive(Clone, Debug, Default)]
pub struct ToolChoice {
    /// Tools and weights as the mix editor holds them; checked into a [`Mix`] when a job starts.
    pub mix: Vec<(String, f32)>,
    pub strength: f32,
    /// Stops to brighten the input by, for tools that take an exposure; None: estimated.
    pub exposure: Option<f32>,
    /// The blur size for tools that take one; None: the default.
    pub blur_size: Option<f32>,
    pub prompt: String,
    /// What the prompt chose last, shown under the box.
    pub prompt_matches: Option<Vec<PromptMatch>>,
    /// The user picked a tool; until then the default follows the tools as they install.
    pub picked: bool,
}

/// The adapter lightbox: one image and mask through several adapters and a no-adapter baseline.
pub struct Lightbox {
    pub entries: Vec<LightboxEntry>,
    pub selected: usize,
    /// Tools ticked for the next lightbox run.
    pub chosen: BTreeSet<String>,
}

pub struct LightboxEntry {
    pub label: String,
    pub mix: Mix,
    pub strength: f32,
    pub result: Option<Arc<RgbImage>>,
    /// What made `result`, kept with it in the history when the user keeps it.
    pub record: Option<EditRecord>,
    pub error: Option<String>,
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
    heatmap: Option<(Arc<RgbImage>, egui::TextureHandle)>,
    /// Difference shown as full white, in 0..255 steps.
    pub heat_scale: f32,
    heat_scale_used: f32,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

/// A message for the user; errors stay until dismissed.
#[derive(Clone, Debug)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

enum Modal {
    ConfirmOverwrite(PathBuf),
    RestoreAutosave(AutosaveSummary),
}

/// Everything a click or key asks for, applied after the frame.
#[derive(Debug)]
pub enum Action {
    OpenDialog,
    Open(PathBuf),
    OpenPasted(RgbImage),
    Save,
    SaveAsDialog,
    SaveTo { path: PathBuf, confirmed: bool },
    ImportMaskDialog,
    ImportMask(PathBuf),
    Run,
    Cancel,
    Undo,
    Redo,
    GoTo(usize),
    MaskOp(MaskOp),
    PickTool(String),
    ApplyPrompt,
    SetBackend(BackendKind),
    InstallDialog,
    Install(PathBuf),
    RemoveAdapter(String),
    OpenLightbox,
    RunLightbox,
    CloseLightbox,
    KeepLightboxResult,
    RunQuantized,
    CloseQuantized,
    RestoreAutosave,
    DiscardAutosave,
    ZoomFit,
    ZoomActual,
    Zoom(f32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskOp {
    Clear,
    Invert,
    Grow(i32),
    Feather(usize),
}

impl MaskOp {
    fn label(self) -> &'static str {
        match self {
            Self::Clear => "Clear mask",
            Self::Invert => "Invert mask",
            Self::Grow(n) if n > 0 => "Grow mask",
            Self::Grow(_) => "Shrink mask",
            Self::Feather(_) => "Feather mask",
        }
    }
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

type Loaded = (Option<PathBuf>, String, Result<Picture>);

pub struct PrismApp {
    options: EditorOptions,
    pub settings: Settings,
    model: Option<Model>,
    engine: Option<EngineHandle>,
    pub status: EngineStatus,
    /// Installed tools (teachers excluded), sorted by title.
    pub tools: Vec<AdapterInfo>,
    /// Tools whose float teacher is installed, and the teacher's size.
    teachers: BTreeMap<String, usize>,
    pub document: Option<Document>,
    /// Alpha channel and bit depth of the opened file, kept for saving.
    source_format: Option<(Option<Vec<f32>>, bool)>,
    canvas: canvas::CanvasState,
    images: textures::ImageTextures,
    overlay: Option<textures::OverlayTexture>,
    pub mask_tool: MaskTool,
    pub tool: ToolChoice,
    jobs: BTreeMap<JobId, RunningJob>,
    next_job: JobId,
    pub compare: Compare,
    /// "Hold to see the original" is pressed.
    holding_original: bool,
    pub lightbox: Option<Lightbox>,
    pub quantized: Option<QuantCompare>,
    pub notices: Vec<Notice>,
    modal: Option<Modal>,
    pub show_shortcuts: bool,
    pub show_adapters: bool,
    pub show_history: bool,
    /// Typed into the adapter manager's path box.
    pub install_path: String,
    loads: (Sender<Loaded>, Receiver<Loaded>),
    loading: Option<String>,
    autosaver: Option<autosave::Autosaver>,
    autosaved_revision: Option<u64>,
    actions: Vec<Action>,
    ctx: egui::Context,
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
            document: None,
            source_format: None,
            canvas: canvas::CanvasState::default(),
            images: textures::ImageTextures::default(),
            overlay: None,
            mask_tool: MaskTool::Brush,
            tool: ToolChoice { strength: 1.0, ..Default::default() },
            jobs: BTreeMap::new(),
            next_job: 1,
            compare: Compare::Off,
            holding_original: false,
            lightbox: None,
            quantized: None,
            notices: Vec::new(),
            modal: None,
            show_shortcuts: false,
            show_adapters: false,
            show_history: true,
            install_path: String::new(),
            loads: unbounded(),
            loading: None,
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

    fn start_engine(&mut self) {
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
                    let _ = engine.send(Command::InstallTeacher(teacher));
                }
                // The engine starts on the CPU backend; this moves it to the one chosen (auto: a
                // hardware GPU when there is one).
                let _ = engine.send(Command::SetBackend(self.settings.backend));
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

    /// Queues an action, as a click would.
    pub fn act(&mut self, action: Action) {
        self.actions.push(action);
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

    fn tool_title(&self, name: &str) -> String {
        self.tools.iter().find(|t| t.meta.name == name).map(|t| t.meta.title.clone()).unwrap_or_else(|| name.to_string())
    }

    fn mix_title(&self, mix: &Mix) -> String {
        mix.title(|name| self.tool_title(name))
    }

    // ---- engine events -------------------------------------------------------------------

    fn drain_events(&mut self) {
        let Some(engine) = &self.engine else { return };
        let mut events = Vec::new();
        while let Some(event) = engine.try_recv() {
            events.push(event);
        }
        for event in events {
            self.handle_event(event);
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::BackendReady { backend, device } => {
                self.status.backend = Some(backend);
                self.status.device = device;
            }
            Event::BackendUnavailable { reason, .. } => self.error(reason),
            Event::AdapterInstalled(info) => {
                if let Some(tool) = info.meta.name.strip_suffix(TEACHER_SUFFIX) {
                    self.teachers.insert(tool.to_string(), info.stored_bytes);
                    return;
                }
                let name = info.meta.name.clone();
                self.tools.retain(|t| t.meta.name != name);
                self.tools.push(info);
                self.tools.sort_by(|a, b| a.meta.title.cmp(&b.meta.title));
                if !self.tool.picked {
                    self.tool.mix = vec![(self.default_tool(), 1.0)];
                }
            }
            Event::AdapterRejected { path, error } => self.error(format!(
                "Adapter {} was not installed: {error}",
                path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            )),
            Event::AdapterRemoved { name } => {
                self.tools.retain(|t| t.meta.name != name);
                self.tool.mix.retain(|(n, _)| *n != name);
            }
            Event::Memory(memory) => self.status.memory = memory,
            Event::Progress { job, done, total } => {
                if let Some(running) = self.jobs.get_mut(&job) {
                    running.done = done;
                    running.total = total;
                }
            }
            Event::Done { job, image, stats } => {
                self.status.memory = stats.memory;
                self.status.last_stats = Some(stats.clone());
                if let Some(running) = self.jobs.remove(&job) {
                    self.finish_job(running.purpose, Ok((image, stats)));
                }
            }
            Event::Failed { job, error } => {
                if let Some(running) = self.jobs.remove(&job) {
                    self.finish_job(running.purpose, Err(error));
                }
            }
            Event::Cancelled { job } => {
                if self.jobs.remove(&job).is_some() && self.jobs.is_empty() {
                    self.info("Cancelled.");
                }
            }
        }
    }

    /// The tool picked when none is: the first global one (it works without a mask).
    fn default_tool(&self) -> String {
        self.tools
            .iter()
            .find(|t| t.meta.name == "denoise")
            .or_else(|| self.tools.iter().find(|t| t.meta.region == Region::Global))
            .or(self.tools.first())
            .map(|t| t.meta.name.clone())
            .unwrap_or_default()
    }

    fn finish_job(&mut self, purpose: JobPurpose, result: std::result::Result<(Arc<RgbImage>, JobStats), String>) {
        match purpose {
            JobPurpose::Edit { mix, strength, title } => match result {
                Ok((image, stats)) => {
                    let fills_hole =
                        mix.names().any(|name| self.tools.iter().any(|t| t.meta.name == name && t.meta.region == Region::Local));
                    if let (Some(document), Some(model)) = (&mut self.document, &self.model) {
                        let record = EditRecord::new(model, title.clone(), &mix, strength, &stats);
                        let resized = (image.width, image.height) != (document.image().width, document.image().height);
                        document.commit_edit(image, record, fills_hole);
                        self.overlay = None;
                        if resized {
                            // An upscale: the view's centre is in image pixels, so fit again.
                            self.canvas.view.follow_fit = true;
                        }
                    }
                    self.info(format!("{title} done in {:.0} ms.", stats.total_time.as_secs_f64() * 1e3));
                }
                Err(error) => self.error(format!("{title} failed: {error}")),
            },
            JobPurpose::Lightbox { slot } => {
                if let Some(entry) = self.lightbox.as_mut().and_then(|l| l.entries.get_mut(slot)) {
                    match result {
                        Ok((image, stats)) => {
                            entry.result = Some(image);
                            entry.record = self
                                .model
                                .as_ref()
                                .map(|model| EditRecord::new(model, entry.label.clone(), &entry.mix, entry.strength, &stats));
                        }
                        Err(error) => entry.error = Some(error),
                    }
                }
            }
            JobPurpose::Quantized { float } => {
                let Some(view) = &mut self.quantized else { return };
                match result {
                    Ok((image, _)) => {
                        if float {
                            view.float = Some(image);
                        } else {
                            view.int8 = Some(image);
                        }
                    }
                    Err(error) => view.error = Some(error),
                }
                if let (Some(a), Some(b)) = (&view.int8, &view.float) {
                    let mask = self.document.as_ref().map(|d| &d.mask);
                    view.agreement = Some(if (a.width, a.height) == (b.width, b.height) {
                        metrics::agreement(a, b, mask)
                    } else {
                        view.error = Some("the two results differ in size".into());
                        return;
                    });
                }
            }
        }
    }

    // ---- actions ---------------------------------------------------------------------------

    fn apply_actions(&mut self) {
        for action in std::mem::take(&mut self.actions) {
            if let Err(error) = self.apply(action) {
                self.error(format!("{error:#}"));
            }
        }
    }

    fn apply(&mut self, action: Action) -> Result<()> {
        match action {
            Action::OpenDialog => {
                let picked = rfd::FileDialog::new()
                    .add_filter("Images", &["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"])
                    .set_title("Open a photo")
                    .pick_file();
                if let Some(path) = picked {
                    self.open(path);
                }
            }
            Action::Open(path) => self.open(path),
            Action::OpenPasted(image) => {
                self.source_format = None;
                self.set_document(Document::new(image, None, "Pasted image".into()));
            }
            Action::Save => {
                let Some(document) = &self.document else { return Ok(()) };
                match document.source.clone() {
                    Some(path) if prism_engine::imageio::OutputFormat::from_path(&path).is_ok() => {
                        self.act(Action::SaveTo { path, confirmed: false })
                    }
                    _ => self.act(Action::SaveAsDialog),
                }
            }
            Action::SaveAsDialog => {
                let Some(document) = &self.document else { return Ok(()) };
                let stem = Path::new(&document.name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                let mut dialog = rfd::FileDialog::new()
                    .add_filter("PNG (keeps the edit record)", &["png"])
                    .add_filter("JPEG", &["jpg", "jpeg"])
                    .add_filter("WebP (lossless)", &["webp"])
                    .set_file_name(format!("{stem}-edited.png"))
                    .set_title("Save the edited image");
                if let Some(dir) = document.source.as_deref().and_then(Path::parent) {
                    dialog = dialog.set_directory(dir);
                }
                if let Some(path) = dialog.save_file() {
                    self.act(Action::SaveTo { path, confirmed: false });
                }
            }
            Action::SaveTo { path, confirmed } => self.save_to(&path, confirmed)?,
            Action::ImportMaskDialog => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("Images", &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"])
                    .set_title("Import a mask")
                    .pick_file()
                {
                    self.act(Action::ImportMask(path));
                }
            }
            Action::ImportMask(path) => {
                let Some(document) = &mut self.document else { return Ok(()) };
                let mask = load_mask(&path, DEFAULT_MAX_PIXELS)?;
                let layer = MaskLayer::from_engine(&mask).resized(document.mask.width, document.mask.height);
                document.mask = layer;
                document.commit_mask("Import mask");
            }
            Action::Run => self.run_edit()?,
            Action::Cancel => {
                if let Some(engine) = &self.engine {
                    for job in self.jobs.keys() {
                        engine.send(Command::Cancel(*job))?;
                    }
                }
            }
            Action::Undo => {
                if let Some(d) = &mut self.document {
                    d.undo();
                }
            }
            Action::Redo => {
                if let Some(d) = &mut self.document {
                    d.redo();
                }
            }
            Action::GoTo(index) => {
                if let Some(d) = &mut self.document {
                    d.go_to(index);
                }
            }
            Action::MaskOp(op) => {
                let Some(document) = &mut self.document else { return Ok(()) };
                match op {
                    MaskOp::Clear => document.mask.clear(),
                    MaskOp::Invert => document.mask.invert(),
                    MaskOp::Grow(n) => document.mask.grow(n),
                    MaskOp::Feather(r) => document.mask.feather(r),
                }
                document.commit_mask(op.label());
            }
            Action::PickTool(name) => {
                self.tool.mix = vec![(name, 1.0)];
                self.tool.prompt_matches = None;
                self.tool.picked = true;
            }
            Action::ApplyPrompt => {
                let metas: Vec<_> = self.tools.iter().map(|t| t.meta.clone()).collect();
                let matches = prompt::match_prompt(&self.tool.prompt, &metas);
                if !matches.is_empty() {
                    self.tool.mix = matches.iter().map(|m| (m.name.clone(), m.weight)).collect();
                    self.tool.picked = true;
                }
                self.tool.prompt_matches = Some(matches);
            }
            Action::SetBackend(kind) => {
                self.settings.backend = kind;
                self.save_settings();
                self.engine.as_ref().ok_or_else(|| anyhow!("the engine is not running"))?.send(Command::SetBackend(kind))?;
            }
            Action::InstallDialog => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("Adapters", &["prism-lora", "safetensors"])
                    .set_title("Install an adapter")
                    .pick_file()
                {
                    self.act(Action::Install(path));
                }
            }
            Action::Install(path) => self.install(&path)?,
            Action::RemoveAdapter(name) => self.remove_adapter(&name)?,
            Action::OpenLightbox => {
                let chosen = if self.tool.mix.len() > 1 {
                    self.tool.mix.iter().map(|(n, _)| n.clone()).collect()
                } else {
                    self.tools
                        .iter()
                        .filter(|t| t.meta.region == Region::Global && t.meta.scale == 1)
                        .map(|t| t.meta.name.clone())
                        .collect()
                };
                self.lightbox = Some(Lightbox { entries: Vec::new(), selected: 0, chosen });
            }
            Action::RunLightbox => self.run_lightbox()?,
            Action::CloseLightbox => {
                self.cancel_jobs(|p| matches!(p, JobPurpose::Lightbox { .. }));
                self.lightbox = None;
            }
            Action::KeepLightboxResult => {
                let Some(lightbox) = self.lightbox.take() else { return Ok(()) };
                if let Some(entry) = lightbox.entries.get(lightbox.selected)
                    && let (Some(image), Some(record)) = (&entry.result, &entry.record)
                    && let Some(document) = &mut self.document
                {
                    document.commit_edit(image.clone(), record.clone(), false);
                }
            }
            Action::RunQuantized => self.run_quantized()?,
            Action::CloseQuantized => {
                self.cancel_jobs(|p| matches!(p, JobPurpose::Quantized { .. }));
                self.quantized = None;
            }
            Action::RestoreAutosave => {
                self.modal = None;
                let dir = self.autosaver.as_ref().map(|a| a.dir().to_path_buf()).ok_or_else(|| anyhow!("autosave is off"))?;
                let document = autosave::restore(&dir).context("the autosaved document could not be restored")?;
                self.source_format = None;
                self.set_document(document);
                self.info("Restored the autosaved document.");
            }
            Action::DiscardAutosave => {
                self.modal = None;
                if let Some(autosaver) = &self.autosaver {
                    autosaver.discard();
                }
                // The document open now (if any) is autosaved afresh.
                self.autosaved_revision = None;
            }
            Action::ZoomFit => self.canvas.view.follow_fit = true,
            Action::ZoomActual => {
                let ppp = self.ctx.pixels_per_point();
                self.canvas.view.actual_pixels(ppp);
            }
            Action::Zoom(factor) => self.canvas.view.scale(factor),
        }
        Ok(())
    }

    fn cancel_jobs(&mut self, which: impl Fn(&JobPurpose) -> bool) {
        let Some(engine) = &self.engine else { return };
        for (id, job) in &self.jobs {
            if which(&job.purpose) {
                let _ = engine.send(Command::Cancel(*id));
            }
        }
    }

    /// Starts loading `path` on a background thread.
    pub fn open(&mut self, path: PathBuf) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        self.loading = Some(name.clone());
        let sender = self.loads.0.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new().name("prism-load".into()).spawn(move || {
            let result = load_picture(&path, DEFAULT_MAX_PIXELS).map_err(anyhow::Error::from);
            let _ = sender.send((Some(path), name, result));
            ctx.request_repaint();
        });
        if let Err(error) = spawned {
            self.loading = None;
            self.error(format!("cannot start loading: {error}"));
        }
    }

    fn receive_loads(&mut self) {
        while let Ok((path, name, result)) = self.loads.1.try_recv() {
            self.loading = None;
            match result {
                Ok(picture) => {
                    if let Some(path) = &path {
                        self.settings.add_recent(path);
                        self.save_settings();
                    }
                    self.source_format = Some((picture.alpha, picture.sixteen_bit));
                    self.set_document(Document::new(picture.rgb, path, name));
                }
                Err(error) => self.error(format!("Could not open {name}: {error:#}")),
            }
        }
    }

    fn set_document(&mut self, document: Document) {
        self.document = Some(document);
        self.overlay = None;
        self.lightbox = None;
        self.quantized = None;
        self.canvas.view.follow_fit = true;
        self.autosaved_revision = None;
    }

    fn save_settings(&mut self) {
        if let Some(dir) = &self.options.config_dir
            && let Err(error) = self.settings.save(dir)
        {
            let text = format!("Settings were not saved: {error}");
            self.error(text);
        }
    }

    fn save_to(&mut self, path: &Path, confirmed: bool) -> Result<()> {
        let Some(document) = &self.document else { return Ok(()) };
        let is_source = document.source.as_deref().is_some_and(|s| same_file(s, path));
        if is_source && !confirmed {
            self.modal = Some(Modal::ConfirmOverwrite(path.to_path_buf()));
            return Ok(());
        }
        let image = document.image();
        let (alpha, sixteen_bit) = match &self.source_format {
            Some((alpha, deep)) => (alpha.clone().filter(|a| a.len() == image.width * image.height), *deep),
            None => (None, false),
        };
        let picture = Picture { rgb: (**image).clone(), alpha, sixteen_bit };
        save_picture(path, &picture, &file_entries(&document.edit_records()))
            .with_context(|| format!("{} was not saved (nothing was overwritten)", path.display()))?;
        if let Some(document) = &mut self.document {
            document.saved_revision = document.revision;
        }
        self.modal = None;
        self.info(format!("Saved {}.", path.display()));
        Ok(())
    }

    fn job(&mut self, mix: Mix, strength: f32, precision: Precision, purpose: JobPurpose) -> Result<()> {
        let engine = self.engine.as_ref().ok_or_else(|| anyhow!("no model is loaded, so no tool can run"))?;
        let document = self.document.as_ref().ok_or_else(|| anyhow!("open a photo first"))?;
        let id = self.next_job;
        self.next_job += 1;
        let mask = (!document.mask.is_empty()).then(|| Arc::new(document.mask.to_engine()));
        let (exposure, blur_size) = (self.tool.exposure, self.tool.blur_size);
        let job = EditJob { id, image: document.image().clone(), mask, mix, strength, precision, exposure, blur_size };
        engine.send(Command::Edit(job))?;
        self.jobs.insert(id, RunningJob { purpose, done: 0, total: 1 });
        Ok(())
    }

    fn run_edit(&mut self) -> Result<()> {
        if self.is_busy() {
            return Ok(());
        }
        let mix = Mix::new(self.tool.mix.clone())?;
        let title = self.mix_title(&mix);
        let strength = self.tool.strength;
        self.job(mix.clone(), strength, self.settings.precision, JobPurpose::Edit { mix, strength, title })
    }

    fn run_lightbox(&mut self) -> Result<()> {
        let Some(lightbox) = &self.lightbox else { return Ok(()) };
        let chosen: Vec<String> =
            self.tools.iter().map(|t| t.meta.name.clone()).filter(|n| lightbox.chosen.contains(n)).collect();
        if chosen.is_empty() {
            return Err(anyhow!("tick at least one tool for the lightbox"));
        }
        let strength = self.tool.strength;
        // The baseline runs the first tool at strength 0: the base model alone, same region.
        let mut entries = vec![LightboxEntry {
            label: "No adapter (base)".into(),
            mix: Mix::single(chosen[0].clone()),
            strength: 0.0,
            result: None,
            record: None,
            error: None,
        }];
        for name in &chosen {
            entries.push(LightboxEntry {
                label: self.tool_title(name),
                mix: Mix::single(name.clone()),
                strength,
                result: None,
                record: None,
                error: None,
            });
        }
        self.cancel_jobs(|p| matches!(p, JobPurpose::Lightbox { .. }));
        let precision = self.settings.precision;
        let jobs: Vec<_> = entries.iter().map(|e| (e.mix.clone(), e.strength)).collect();
        if let Some(lightbox) = &mut self.lightbox {
            lightbox.entries = entries;
            lightbox.selected = lightbox.selected.min(lightbox.entries.len() - 1);
        }
        for (slot, (mix, strength)) in jobs.into_iter().enumerate() {
            self.job(mix, strength, precision, JobPurpose::Lightbox { slot })?;
        }
        Ok(())
    }

    fn run_quantized(&mut self) -> Result<()> {
        let mix = Mix::new(self.tool.mix.clone())?;
        let mut notes = Vec::new();
        for name in mix.names().filter(|name| !self.teachers.contains_key(*name)) {
            notes.push(format!("{} has no float teacher: its own tensors run in float.", self.tool_title(name)));
        }
        let float_mix = mix
            .renamed(|name| if self.teachers.contains_key(name) { format!("{name}{TEACHER_SUFFIX}") } else { name.to_string() });
        self.cancel_jobs(|p| matches!(p, JobPurpose::Quantized { .. }));
        self.quantized = Some(QuantCompare {
            title: self.mix_title(&mix),
            int8: None,
            float: None,
            show: QuantShow::Difference,
            agreement: None,
            heatmap: None,
            heat_scale: 8.0,
            heat_scale_used: 0.0,
            notes,
            error: None,
        });
        let strength = self.tool.strength;
        self.job(mix, strength, Precision::Int8, JobPurpose::Quantized { float: false })?;
        self.job(float_mix, strength, Precision::Float, JobPurpose::Quantized { float: true })
    }

    fn install(&mut self, path: &Path) -> Result<()> {
        let model = self.model.as_ref().ok_or_else(|| anyhow!("no model is loaded, so adapters cannot be checked"))?;
        let (target, adapter) =
            install_adapter(model, path, true).map_err(|e| anyhow!("{} was not installed: {e:#}", path.display()))?;
        self.engine.as_ref().ok_or_else(|| anyhow!("the engine is not running"))?.send(Command::InstallAdapter(target))?;
        self.info(format!("Installed {} ({}).", adapter.meta.title, adapter.meta.name));
        Ok(())
    }

    fn remove_adapter(&mut self, name: &str) -> Result<()> {
        if let Some(model) = &self.model {
            let file = user_adapter_dir(model)?.join(format!("{name}.{}", prism_engine::adapter::ADAPTER_EXTENSION));
            if file.exists() {
                std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
            }
        }
        if let Some(engine) = &self.engine {
            engine.send(Command::RemoveAdapter(name.to_string()))?;
        }
        Ok(())
    }

    // ---- per-frame input ---------------------------------------------------------------------

    fn keyboard(&mut self, ctx: &egui::Context) {
        // Dropped files and pasted images work even while typing.
        let (dropped, pasted) = ctx.input(|i| {
            let dropped: Vec<PathBuf> =
                i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| p.is_absolute()).collect();
            let pasted: Vec<egui::Event> =
                i.events.iter().filter(|e| matches!(e, egui::Event::PasteImage(_) | egui::Event::Paste(_))).cloned().collect();
            (dropped, pasted)
        });
        if let Some(path) = dropped.into_iter().next() {
            self.act(Action::Open(path));
        }
        let typing = ctx.egui_wants_keyboard_input();
        for event in pasted {
            match event {
                egui::Event::PasteImage(image) => {
                    let data = image.pixels.iter().flat_map(|c| [c.r(), c.g(), c.b()]).map(|v| f32::from(v) / 255.0).collect();
                    self.act(Action::OpenPasted(RgbImage { width: image.width(), height: image.height(), data }));
                }
                // A copied file is pasted as its path (file managers put it on the clipboard so).
                egui::Event::Paste(text) if !typing => {
                    let path = PathBuf::from(text.trim().trim_start_matches("file://"));
                    if path.is_file() {
                        self.act(Action::Open(path));
                    }
                }
                _ => {}
            }
        }
        if typing {
            return;
        }
        let command = Modifiers::COMMAND;
        let shortcuts: [(KeyboardShortcut, fn() -> Action); 8] = [
            (KeyboardShortcut::new(command | Modifiers::SHIFT, Key::Z), || Action::Redo),
            (KeyboardShortcut::new(command, Key::Z), || Action::Undo),
            (KeyboardShortcut::new(command, Key::Y), || Action::Redo),
            (KeyboardShortcut::new(command | Modifiers::SHIFT, Key::S), || Action::SaveAsDialog),
            (KeyboardShortcut::new(command, Key::S), || Action::Save),
            (KeyboardShortcut::new(command, Key::O), || Action::OpenDialog),
            (KeyboardShortcut::new(command, Key::Enter), || Action::Run),
            (KeyboardShortcut::new(command, Key::Num0), || Action::ZoomFit),
        ];
        for (shortcut, action) in shortcuts {
            if ctx.input_mut(|i| i.consume_shortcut(&shortcut)) {
                self.act(action());
            }
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(command, Key::Num1))) {
            self.act(Action::ZoomActual);
        }
        let pressed = |key: Key| ctx.input(|i| i.key_pressed(key) && i.modifiers.is_none());
        if let Some(lightbox) = &mut self.lightbox {
            for (digit, key) in
                [Key::Num0, Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9]
                    .into_iter()
                    .enumerate()
            {
                if pressed(key) && digit < lightbox.entries.len() {
                    lightbox.selected = digit;
                }
            }
        }
        for tool in MaskTool::ALL {
            if pressed(tool.shortcut()) {
                self.mask_tool = tool;
            }
        }
        if pressed(Key::OpenBracket) {
            self.settings.brush_radius = (self.settings.brush_radius / 1.25).max(1.0);
        }
        if pressed(Key::CloseBracket) {
            self.settings.brush_radius = (self.settings.brush_radius * 1.25).min(1000.0);
        }
        if pressed(Key::F) {
            self.act(Action::ZoomFit);
        }
        if pressed(Key::Plus) || pressed(Key::Equals) {
            self.act(Action::Zoom(1.25));
        }
        if pressed(Key::Minus) {
            self.act(Action::Zoom(0.8));
        }
        if pressed(Key::I) {
            self.act(Action::MaskOp(MaskOp::Invert));
        }
        if pressed(Key::Delete) || pressed(Key::Backspace) {
            self.act(Action::MaskOp(MaskOp::Clear));
        }
        if pressed(Key::Escape) {
            if self.is_busy() {
                self.act(Action::Cancel);
            } else {
                self.show_shortcuts = false;
            }
        }
        if ctx.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Text(t) if t == "?"))) {
            self.show_shortcuts = !self.show_shortcuts;
        }
    }

    fn autosave(&mut self) {
        let (Some(autosaver), Some(document)) = (&self.autosaver, &self.document) else { return };
        if matches!(self.modal, Some(Modal::RestoreAutosave(_))) {
            // Do not overwrite the document the user may still want back.
            return;
        }
        if self.autosaved_revision != Some(document.revision) {
            autosaver.save(document);
            self.autosaved_revision = Some(document.revision);
        }
        if let Some(error) = autosaver.take_error() {
            self.error(format!("Autosave failed: {error}"));
        }
    }
}

impl eframe::App for PrismApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain_events();
        self.receive_loads();
        self.keyboard(&ctx);
        self.frame_ui(ui);
        self.apply_actions();
        self.autosave();
        if self.is_busy() || self.is_loading() {
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

fn apply_theme(ctx: &egui::Context, theme: Theme) {
    ctx.set_theme(match theme {
        Theme::Dark => egui::ThemePreference::Dark,
        Theme::Light => egui::ThemePreference::Light,
        Theme::System => egui::ThemePreference::System,
    });
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
