//! Files in and out: opening (on a loader thread), saving with the edit record (asking before
//! replacing the opened photo), masks from images, adapters installed or removed, settings and
//! the autosave.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use prism_engine::engine::Command;
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, Picture, RgbImage, load_mask, load_picture, save_picture};
use prism_engine::record::file_entries;

use super::actions::Action;
use super::state::Modal;
use super::{Document, MaskLayer, PrismApp, autosave};
use crate::library::{install_adapter, user_adapter_dir};

impl PrismApp {
    /// Asks for a photo to open.
    pub(super) fn open_dialog(&mut self) {
        let picked = rfd::FileDialog::new()
            .add_filter("Images", &["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"])
            .set_title("Open a photo")
            .pick_file();
        if let Some(path) = picked {
            self.open(path);
        }
    }

    pub(super) fn open_pasted(&mut self, image: RgbImage) {
        self.source_format = None;
        self.set_document(Document::new(image, None, "Pasted image".into()));
    }

    /// Saves over the opened file (asking first), or asks where to save a pasted one.
    pub(super) fn save(&mut self) {
        let Some(document) = &self.document else { return };
        match document.source.clone() {
            Some(path) if prism_engine::imageio::OutputFormat::from_path(&path).is_ok() => {
                self.act(Action::SaveTo { path, confirmed: false })
            }
            _ => self.act(Action::SaveAsDialog),
        }
    }

    pub(super) fn save_as_dialog(&mut self) {
        let Some(document) = &self.document else { return };
        let stem =
            Path::new(&document.name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
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

    pub(super) fn import_mask_dialog(&mut self) {
        if let Some(path) = rfd::FileDialog::new()
            .add_filter("Images", &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"])
            .set_title("Import a mask")
            .pick_file()
        {
            self.act(Action::ImportMask(path));
        }
    }

    pub(super) fn import_mask(&mut self, path: &Path) -> Result<()> {
        let Some(document) = &mut self.document else { return Ok(()) };
        let mask = load_mask(path, DEFAULT_MAX_PIXELS)?;
        let layer = MaskLayer::from_engine(&mask).resized(document.mask.width, document.mask.height);
        document.mask = layer;
        document.commit_mask("Import mask");

        Ok(())
    }

    pub(super) fn install_dialog(&mut self) {
        if let Some(path) = rfd::FileDialog::new()
            .add_filter("Adapters", &["prism-lora", "safetensors"])
            .set_title("Install an adapter")
            .pick_file()
        {
            self.act(Action::Install(path));
        }
    }

    pub(super) fn restore_autosave(&mut self) -> Result<()> {
        self.modal = None;
        let dir = self.autosaver.as_ref().map(|a| a.dir().to_path_buf()).ok_or_else(|| anyhow!("autosave is off"))?;
        let document = autosave::restore(&dir).context("the autosaved document could not be restored")?;
        self.source_format = None;
        self.set_document(document);
        self.info("Restored the autosaved document.");

        Ok(())
    }

    pub(super) fn discard_autosave(&mut self) {
        self.modal = None;
        if let Some(autosaver) = &self.autosaver {
            autosaver.discard();
        }
        // The document open now (if any) is autosaved afresh.
        self.autosaved_revision = None;
    }

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

    pub(super) fn receive_loads(&mut self) {
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
                    if std::mem::take(&mut self.demo_waiting)
                        && let Err(error) = self.run_demo()
                    {
                        self.error(format!("{error:#}"));
                    }
                }
                Err(error) => self.error(format!("Could not open {name}: {error:#}")),
            }
        }
    }

    pub(super) fn set_document(&mut self, document: Document) {
        self.document = Some(document);
        self.overlay = None;
        self.lightbox = None;
        self.quantized = None;
        self.canvas.view.follow_fit = true;
        self.autosaved_revision = None;
    }

    pub(super) fn save_settings(&mut self) {
        if let Some(dir) = &self.options.config_dir
            && let Err(error) = self.settings.save(dir)
        {
            let text = format!("Settings were not saved: {error}");
            self.error(text);
        }
    }

    pub(super) fn save_to(&mut self, path: &Path, confirmed: bool) -> Result<()> {
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

    pub(super) fn install(&mut self, path: &Path) -> Result<()> {
        let model = self.model.as_ref().ok_or_else(|| anyhow!("no model is loaded, so adapters cannot be checked"))?;
        let (target, adapter) =
            install_adapter(model, path, true).map_err(|e| anyhow!("{} was not installed: {e:#}", path.display()))?;
        self.engine.as_ref().ok_or_else(|| anyhow!("the engine is not running"))?.send(Command::InstallAdapter(target))?;
        self.info(format!("Installed {} ({}).", adapter.meta.title, adapter.meta.name));
        Ok(())
    }

    pub(super) fn remove_adapter(&mut self, name: &str) -> Result<()> {
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

    pub(super) fn autosave(&mut self) {
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

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
