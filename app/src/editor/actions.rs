//! Everything a click or key asks for, as an [`Action`]: panels and input queue them during the
//! frame, and `apply` runs them after it, each in the room that owns what it changes.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use prism_engine::backends::{BackendKind, Precision, Provider};
use prism_engine::engine::Command;
use prism_engine::imageio::RgbImage;

use super::app::apply_theme;
use super::{PrismApp, Theme};

/// Everything a click or key asks for, applied after the frame.
#[derive(Debug)]
pub enum Action {
    OpenDialog,
    Open(PathBuf),
    OpenPasted(RgbImage),
    Save,
    SaveAsDialog,
    SaveTo {
        path: PathBuf,
        confirmed: bool,
    },
    ImportMaskDialog,
    ImportMask(PathBuf),
    Run,
    Cancel,
    Undo,
    Redo,
    GoTo(usize),
    MaskOp(MaskOp),
    PickTool(String),
    /// Choose tools from the typed request; `run`: and run them (Enter in the prompt box).
    ApplyPrompt {
        run: bool,
    },
    SetBackend(BackendKind, Provider),
    SetPrecision(Option<Precision>),
    SetTheme(Theme),
    InstallDialog,
    Install(PathBuf),
    RemoveAdapter(String),
    OpenLightbox,
    RunLightbox,
    CloseLightbox,
    KeepLightboxResult,
    RunQuantized,
    CloseQuantized,
    /// Every tool in turn on the open photo (or a sample), timed.
    RunDemo,
    CloseDemo,
    RestoreAutosave,
    DiscardAutosave,
    CloseModal,
    DismissNotice(usize),
    ShowAdapters(bool),
    ShowShortcuts(bool),
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

impl PrismApp {
    /// Queues an action, as a click would.
    pub fn act(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub(super) fn apply_actions(&mut self) {
        for action in std::mem::take(&mut self.actions) {
            if let Err(error) = self.apply(action) {
                self.error(format!("{error:#}"));
            }
        }
    }

    fn apply(&mut self, action: Action) -> Result<()> {
        match action {
            Action::OpenDialog => self.open_dialog(),
            Action::Open(path) => self.open(path),
            Action::OpenPasted(image) => self.open_pasted(image),
            Action::Save => self.save(),
            Action::SaveAsDialog => self.save_as_dialog(),
            Action::SaveTo { path, confirmed } => self.save_to(&path, confirmed)?,
            Action::ImportMaskDialog => self.import_mask_dialog(),
            Action::ImportMask(path) => self.import_mask(&path)?,
            Action::Run => self.run_edit()?,
            Action::Cancel => self.cancel_jobs(|_| true),
            Action::Undo => {
                if let Some(document) = &mut self.document {
                    document.undo();
                }
            }
            Action::Redo => {
                if let Some(document) = &mut self.document {
                    document.redo();
                }
            }
            Action::GoTo(index) => {
                if let Some(document) = &mut self.document {
                    document.go_to(index);
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
            Action::PickTool(name) => self.pick_tool(name),
            Action::ApplyPrompt { run } => self.apply_prompt(run),
            Action::SetBackend(kind, provider) => {
                self.settings.backend = kind;
                self.settings.provider = provider;
                self.save_settings();
                let engine = self.engine.as_ref().ok_or_else(|| anyhow!("the engine is not running"))?;
                engine.send(Command::SetBackend(kind, provider))?;
            }
            Action::SetPrecision(precision) => {
                self.settings.precision = precision;
                self.save_settings();
            }
            Action::SetTheme(theme) => {
                self.settings.theme = theme;
                apply_theme(&self.ctx, theme);
                self.save_settings();
            }
            Action::InstallDialog => self.install_dialog(),
            Action::Install(path) => self.install(&path)?,
            Action::RemoveAdapter(name) => self.remove_adapter(&name)?,
            Action::OpenLightbox => self.open_lightbox(),
            Action::RunLightbox => self.run_lightbox()?,
            Action::CloseLightbox => {
                self.cancel_jobs(|p| matches!(p, super::state::JobPurpose::Lightbox { .. }));
                self.lightbox = None;
            }
            Action::KeepLightboxResult => self.keep_lightbox_result(),
            Action::RunQuantized => self.run_quantized()?,
            Action::RunDemo => self.run_demo()?,
            Action::CloseDemo => {
                self.cancel_jobs(|p| matches!(p, super::state::JobPurpose::Demo { .. }));
                self.demo = None;
            }
            Action::CloseQuantized => {
                self.cancel_jobs(|p| matches!(p, super::state::JobPurpose::Quantized { .. }));
                self.quantized = None;
            }
            Action::RestoreAutosave => self.restore_autosave()?,
            Action::DiscardAutosave => self.discard_autosave(),
            Action::CloseModal => self.modal = None,
            Action::DismissNotice(index) => {
                if index < self.notices.len() {
                    self.notices.remove(index);
                }
            }
            Action::ShowAdapters(show) => self.show_adapters = show,
            Action::ShowShortcuts(show) => self.show_shortcuts = show,
            Action::ZoomFit => self.canvas.view.follow_fit = true,
            Action::ZoomActual => {
                let ppp = self.ctx.pixels_per_point();
                self.canvas.view.actual_pixels(ppp);
            }
            Action::Zoom(factor) => self.canvas.view.scale(factor),
        }
        Ok(())
    }
}
