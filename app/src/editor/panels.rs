//! Everything the editor draws around the canvas: menus, the mask and tool panel, history, the
//! status bar, and the lightbox, quantized-vs-float, adapter and shortcut windows. Drawing only
//! reads state and queues [`Action`]s; nothing here runs an edit or touches a file.

use std::sync::Arc;

use eframe::egui::{self, Color32, RichText};
use prism_engine::adapter::{AdapterPrecision, Region};
use prism_engine::backends::{BackendKind, Precision};
use prism_engine::imageio::RgbImage;
use prism_engine::settings::{DEFAULT_BLUR_SIZE, MAX_AUTO_EXPOSURE, ToolSetting, auto_exposure};

use super::canvas::{self, Compare, Layers, MaskTool};
use super::mask::Brush;
use super::metrics;
use super::textures::OverlayTexture;
use super::{Action, MaskOp, Modal, PrismApp, QuantShow, Theme, apply_theme};

/// Keyboard shortcuts, as the `?` sheet lists them.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Ctrl+O", "Open a photo (or drop one on the window, or paste one)"),
    ("Ctrl+S / Ctrl+Shift+S", "Save (asks before overwriting the original) / Save as"),
    ("Ctrl+Enter", "Run the tool"),
    ("Esc", "Cancel the running edit"),
    ("Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "Undo / Redo (mask strokes and edits)"),
    ("B / E / R / L", "Brush / Eraser / Rectangle / Lasso"),
    ("[ / ]", "Smaller / larger brush"),
    ("I / Delete", "Invert / clear the mask"),
    ("Wheel, + / -", "Zoom at the pointer / in / out"),
    ("F or Ctrl+0 / Ctrl+1", "Fit / 100% (one image pixel per screen pixel)"),
    ("Space+drag, middle drag", "Pan"),
    ("Hold the Original button", "See the original photo"),
    ("0-9 (lightbox open)", "Flip between the lightbox results"),
    ("?", "This sheet"),
];

impl PrismApp {
    pub(super) fn frame_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::left("tools").resizable(true).default_size(300.0).min_size(260.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                self.mask_panel_ui(ui);
                ui.separator();
                self.tool_panel_ui(ui);
            });
        });
        if self.show_history {
            egui::Panel::right("history").resizable(true).default_size(220.0).min_size(180.0).show(ui, |ui| self.history_ui(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            self.notices_ui(ui);
            self.compare_bar_ui(ui);
            self.canvas_area_ui(ui);
        });
        let ctx = ui.ctx().clone();
        self.lightbox_window(&ctx);
        self.quantized_window(&ctx);
        self.adapters_window(&ctx);
        self.shortcuts_window(&ctx);
        self.modal_ui(&ctx);
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open…").clicked() {
                    self.act(Action::OpenDialog);
                }
                ui.menu_button("Open recent", |ui| {
                    if self.settings.recent_files.is_empty() {
                        ui.label("No recent files");
                    }
                    for path in self.settings.recent_files.clone() {
                        if ui.button(path.display().to_string()).clicked() {
                            self.act(Action::Open(path));
                        }
                    }
                });
                let has_document = self.document.is_some();
                if ui.add_enabled(has_document, egui::Button::new("Save")).clicked() {
                    self.act(Action::Save);
                }
                if ui.add_enabled(has_document, egui::Button::new("Save as / Export…")).clicked() {
                    self.act(Action::SaveAsDialog);
                }
            });
            ui.menu_button("Edit", |ui| {
                let (undo, redo) = self.document.as_ref().map(|d| (d.can_undo(), d.can_redo())).unwrap_or_default();
                if ui.add_enabled(undo, egui::Button::new("Undo")).clicked() {
                    self.act(Action::Undo);
                }
                if ui.add_enabled(redo, egui::Button::new("Redo")).clicked() {
                    self.act(Action::Redo);
                }
            });
            ui.menu_button("View", |ui| {
                if ui.button("Fit").clicked() {
                    self.act(Action::ZoomFit);
                }
                if ui.button("100%").clicked() {
                    self.act(Action::ZoomActual);
                }
                ui.checkbox(&mut self.show_history, "History panel");
                ui.separator();
                let before = self.settings.theme;
                ui.radio_value(&mut self.settings.theme, Theme::Dark, "Dark theme");
                ui.radio_value(&mut self.settings.theme, Theme::Light, "Light theme");
                ui.radio_value(&mut self.settings.theme, Theme::System, "System theme");
                if before != self.settings.theme {
                    apply_theme(ui.ctx(), self.settings.theme);
                    self.save_settings();
                }
            });
            ui.menu_button("Adapters", |ui| {
                if ui.button("Adapter manager…").clicked() {
                    self.show_adapters = true;
                }
                if ui.button("Lightbox…").clicked() {
                    self.act(Action::OpenLightbox);
                }
                if ui.button("Quantized vs float…").clicked() {
                    self.act(Action::RunQuantized);
                }
            });
            ui.menu_button("Help", |ui| {
                if ui.button("Keyboard shortcuts").clicked() {
                    self.show_shortcuts = true;
                }
            });
        });
    }

    fn mask_panel_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Mask");
        ui.horizontal_wrapped(|ui| {
            for tool in MaskTool::ALL {
                ui.selectable_value(&mut self.mask_tool, tool, tool.label()).on_hover_text(format!(
                    "{} ({})",
                    tool.label(),
                    tool.shortcut().name()
                ));
            }
        });
        ui.add(
            egui::Slider::new(&mut self.settings.brush_radius, 1.0..=400.0).logarithmic(true).max_decimals(0).text("Brush size"),
        )
        .on_hover_text("Brush radius in image pixels ([ and ])");
        ui.add(egui::Slider::new(&mut self.settings.brush_hardness, 0.0..=1.0).text("Hardness"))
            .on_hover_text("1 = hard edge, 0 = soft all the way in");
        ui.horizontal_wrapped(|ui| {
            let enabled = self.document.is_some();
            for (label, op, tip) in [
                ("Clear", MaskOp::Clear, "Remove the whole mask (Delete)"),
                ("Invert", MaskOp::Invert, "Edit everything except what is painted (I)"),
                ("Grow", MaskOp::Grow(4), "Widen the mask by 4 pixels"),
                ("Shrink", MaskOp::Grow(-4), "Narrow the mask by 4 pixels"),
                ("Feather", MaskOp::Feather(4), "Soften the mask's edge by 4 pixels"),
            ] {
                if ui.add_enabled(enabled, egui::Button::new(label)).on_hover_text(tip).clicked() {
                    self.act(Action::MaskOp(op));
                }
            }
            if ui
                .add_enabled(enabled, egui::Button::new("Import mask…"))
                .on_hover_text("Use an image's alpha (or brightness) as the mask")
                .clicked()
            {
                self.act(Action::ImportMaskDialog);
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Overlay");
            let mut color =
                Color32::from_rgb(self.settings.overlay_color[0], self.settings.overlay_color[1], self.settings.overlay_color[2]);
            if ui.color_edit_button_srgba(&mut color).labelled_by(label.id).changed() {
                self.settings.overlay_color = [color.r(), color.g(), color.b()];
            }
            ui.add(egui::Slider::new(&mut self.settings.overlay_opacity, 0.0..=1.0).text("Opacity"));
        });
    }

    /// The exposure a night-shot tool brightens by before it runs: estimated, or set by eye.
    fn exposure_ui(&mut self, ui: &mut egui::Ui) {
        let mut auto = self.tool.exposure.is_none();
        if ui.checkbox(&mut auto, "Auto exposure").on_hover_text("Estimate the exposure from the photo's highlights").changed() {
            self.tool.exposure = if auto { None } else { Some(self.document.as_ref().map_or(0.0, |d| auto_exposure(d.image()))) };
        }
        if let Some(stops) = &mut self.tool.exposure {
            ui.add(egui::Slider::new(stops, 0.0..=MAX_AUTO_EXPOSURE).step_by(0.05).text("Exposure (stops)"))
                .on_hover_text("How much to brighten before the tool cleans up; each stop doubles the light");
        }
    }

    fn tool_panel_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Tools");
        let prompt_label = ui.label("Describe the edit");
        let response = ui
            .add(
                egui::TextEdit::singleline(&mut self.tool.prompt)
                    .hint_text("e.g. remove the noise and sharpen")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(prompt_label.id);
        let submitted = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Choose tools from the prompt").clicked() || submitted {
            self.act(Action::ApplyPrompt);
        }
        if let Some(matches) = &self.tool.prompt_matches {
            if matches.is_empty() {
                ui.label(RichText::new("No tool matches those words; pick one below.").weak());
            } else {
                let chosen: Vec<String> = matches
                    .iter()
                    .map(|m| format!("{} ×{:.2} ({})", self.tool_title(&m.name), m.weight, m.matched.join(", ")))
                    .collect();
                ui.label(format!("Chosen: {}", chosen.join("; ")))
                    .on_hover_text("Change the tools or weights below if this is not what you meant");
            }
        }
        ui.add_space(4.0);
        if self.tools.is_empty() {
            ui.label(RichText::new("No tools installed.").weak());
        }
        let single = (self.tool.mix.len() == 1).then(|| self.tool.mix[0].0.clone());
        for info in self.tools.clone() {
            let meta = &info.meta;
            let selected = single.as_deref() == Some(meta.name.as_str());
            let mut hover = meta.description.clone();
            if !meta.example_prompts.is_empty() {
                hover.push_str(&format!("\nTry: \"{}\"", meta.example_prompts.join("\", \"")));
            }
            if meta.region == Region::Local {
                hover.push_str("\nPaint over what to fill first.");
            }
            if ui.selectable_label(selected, &meta.title).on_hover_text(hover).clicked() {
                self.act(Action::PickTool(meta.name.clone()));
            }
            if selected {
                ui.label(RichText::new(&meta.description).small());
                if let Some(example) = meta.example_prompts.first() {
                    ui.label(RichText::new(format!("e.g. \"{example}\"")).small().italics());
                }
            }
        }
        ui.add_space(4.0);
        egui::CollapsingHeader::new("Mix").default_open(self.tool.mix.len() > 1).show(ui, |ui| self.mix_ui(ui));
        ui.add(egui::Slider::new(&mut self.tool.strength, 0.0..=2.0).text("Strength"))
            .on_hover_text("Scales every adapter's side path; 0 = the base model alone");
        let takes = |setting| {
            self.tools.iter().any(|t| t.meta.setting == Some(setting) && self.tool.mix.iter().any(|(n, _)| n == &t.meta.name))
        };
        let (exposure, blur_size) = (takes(ToolSetting::Exposure), takes(ToolSetting::BlurSize));
        if exposure {
            self.exposure_ui(ui);
        }
        if blur_size {
            let mut sigma = self.tool.blur_size.unwrap_or(DEFAULT_BLUR_SIZE);
            let slider = egui::Slider::new(&mut sigma, 0.5..=4.0).step_by(0.1).text("Blur size (px)");
            if ui.add(slider).on_hover_text("How far the blur spreads a point; match it to the photo by eye").changed() {
                self.tool.blur_size = Some(sigma);
            }
        }
        egui::ComboBox::from_label("Precision").selected_text(self.settings.precision.name()).show_ui(ui, |ui| {
            let before = self.settings.precision;
            for precision in Precision::ALL {
                ui.selectable_value(&mut self.settings.precision, precision, precision.describe());
            }
            if before != self.settings.precision {
                self.save_settings();
            }
        });
        let backend = self.settings.backend;
        egui::ComboBox::from_label("Backend").selected_text(backend.name()).show_ui(ui, |ui| {
            for kind in BackendKind::ALL {
                if ui.selectable_label(backend == kind, kind.describe()).clicked() && backend != kind {
                    self.act(Action::SetBackend(kind));
                }
            }
        });
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let can_run = self.document.is_some() && !self.tool.mix.is_empty() && !self.is_busy();
            if ui
                .add_enabled(can_run, egui::Button::new(RichText::new("Run").strong()))
                .on_hover_text("Apply to the mask, or to the whole image when nothing is painted (Ctrl+Enter)")
                .clicked()
            {
                self.act(Action::Run);
            }
            if ui.add_enabled(self.is_busy(), egui::Button::new("Cancel")).clicked() {
                self.act(Action::Cancel);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let ready = self.document.is_some() && !self.tools.is_empty();
            if ui
                .add_enabled(ready, egui::Button::new("Lightbox"))
                .on_hover_text("Run the image through several adapters and flip between them")
                .clicked()
            {
                self.act(Action::OpenLightbox);
            }
            if ui
                .add_enabled(ready && !self.tool.mix.is_empty(), egui::Button::new("Quantized vs float"))
                .on_hover_text("The same edit through the int8 model and the float teachers")
                .clicked()
            {
                self.act(Action::RunQuantized);
            }
        });
    }

    fn mix_ui(&mut self, ui: &mut egui::Ui) {
        let mut remove = None;
        let titles: Vec<String> = self.tool.mix.iter().map(|(n, _)| self.tool_title(n)).collect();
        for (index, (_, weight)) in self.tool.mix.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.add(egui::Slider::new(weight, 0.0..=1.5).text(&titles[index]));
                if ui.small_button("Remove").on_hover_text(format!("Take {} out of the mix", titles[index])).clicked() {
                    remove = Some(index);
                }
            });
        }
        if let Some(index) = remove {
            self.tool.mix.remove(index);
        }
        let available: Vec<(String, String)> = self
            .tools
            .iter()
            .filter(|t| !self.tool.mix.iter().any(|(n, _)| *n == t.meta.name))
            .map(|t| (t.meta.name.clone(), t.meta.title.clone()))
            .collect();
        if !available.is_empty() {
            egui::ComboBox::from_label("Add to mix").selected_text("choose…").show_ui(ui, |ui| {
                for (name, title) in available {
                    if ui.selectable_label(false, title).clicked() {
                        self.tool.mix.push((name, 0.5));
                        self.tool.picked = true;
                    }
                }
            });
        }
    }

    fn history_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("History");
        let Some(document) = &self.document else {
            ui.label(RichText::new("Nothing open.").weak());
            return;
        };
        let position = document.position();
        let mut clicked = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (index, step) in document.steps().iter().enumerate() {
                let text = if index > position { RichText::new(&step.label).weak() } else { RichText::new(&step.label) };
                let response = ui.selectable_label(index == position, text);
                let response = match &step.record {
                    Some(r) => response.on_hover_text(format!(
                        "adapters: {}\nstrength {:.2}\n{} on {} [{}]\nswitch {:.2} ms, forward {:.0} ms, total {:.0} ms",
                        r.adapters.parts().iter().map(|(n, w)| format!("{n} ×{w:.2}")).collect::<Vec<_>>().join(", "),
                        r.strength,
                        r.backend,
                        r.device,
                        r.precision,
                        r.switch_ms,
                        r.forward_ms,
                        r.total_ms
                    )),
                    None => response,
                };
                if response.clicked() {
                    clicked = Some(index);
                }
                if let Some(r) = &step.record {
                    ui.label(
                        RichText::new(format!("  {} · ×{:.2} · {} · {:.0} ms", r.precision, r.strength, r.backend, r.total_ms))
                            .small()
                            .weak(),
                    );
                }
            }
        });
        if let Some(index) = clicked {
            self.act(Action::GoTo(index));
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some((done, total)) = self.progress() {
                ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32).desired_width(160.0).show_percentage());
                if ui.button("Cancel").clicked() {
                    self.act(Action::Cancel);
                }
            } else if let Some(name) = &self.loading {
                ui.spinner();
                ui.label(format!("Opening {name}…"));
            }
            let status = &self.status;
            let backend = status.backend.map_or("no engine", BackendKind::name);
            ui.label(format!("Backend: {backend}")).on_hover_text(&status.device);
            ui.label(format!("Device: {}", if status.device.is_empty() { "-" } else { &status.device }));
            if let Some(stats) = &status.last_stats {
                ui.label(format!(
                    "Switch {:.2} ms · Forward {:.0} ms",
                    stats.switch_time.as_secs_f64() * 1e3,
                    stats.forward_time.as_secs_f64() * 1e3
                ));
            }
            // The engine counts the float teachers too; they are loaded for the QA view only.
            let m = status.memory;
            let teacher_bytes: usize = self.teachers.values().sum();
            let tool_bytes: usize = self.tools.iter().map(|t| t.stored_bytes).sum();
            ui.label(format!("Resident: base {:.2} MB + {} tools {:.2} MB", m.base_bytes as f64 / 1e6, self.tools.len(), tool_bytes as f64 / 1e6)).on_hover_text(format!(
                "One shared int8 model; every tool is a small adapter bound at run time.\nAlso loaded for the quantized-vs-float view: {} float teachers, {:.2} MB.",
                self.teachers.len(),
                teacher_bytes as f64 / 1e6
            ));
            if let Some(document) = &self.document {
                let image = document.image();
                ui.label(format!(
                    "{}×{} · zoom {:.0}%",
                    image.width,
                    image.height,
                    self.canvas.view.zoom * ui.ctx().pixels_per_point() * 100.0
                ));
            }
        });
    }

    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (index, notice) in self.notices.iter().enumerate() {
            ui.horizontal(|ui| {
                if notice.error {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Error: {}", notice.text));
                } else {
                    ui.label(&notice.text);
                }
                if ui.small_button("Dismiss").clicked() {
                    dismiss = Some(index);
                }
            });
        }
        if let Some(index) = dismiss {
            self.notices.remove(index);
        }
    }

    fn compare_bar_ui(&mut self, ui: &mut egui::Ui) {
        if self.document.is_none() {
            return;
        }
        ui.horizontal(|ui| {
            let hold = ui.button("Original").on_hover_text("Hold to see the original photo");
            self.holding_original = hold.is_pointer_button_down_on();
            ui.separator();
            ui.label("Compare:");
            let mut mode = match self.compare {
                Compare::Off => 0,
                Compare::Slider { .. } => 1,
                Compare::SideBySide => 2,
            };
            ui.selectable_value(&mut mode, 0, "Off");
            ui.selectable_value(&mut mode, 1, "Before/after slider");
            ui.selectable_value(&mut mode, 2, "Side by side");
            self.compare = match (mode, self.compare) {
                (1, Compare::Slider { split }) => {
                    let mut split = split;
                    ui.add(egui::Slider::new(&mut split, 0.0..=1.0).text("Split").show_value(false));
                    Compare::Slider { split }
                }
                (1, _) => Compare::Slider { split: 0.5 },
                (2, _) => Compare::SideBySide,
                _ => Compare::Off,
            };
            ui.separator();
            for (label, action) in [("Fit", Action::ZoomFit), ("100%", Action::ZoomActual)] {
                if ui.button(label).clicked() {
                    self.act(action);
                }
            }
        });
    }

    /// The image the canvas shows now (with a texture of its own, for the heatmap), and the one
    /// it is compared with.
    fn shown_images(&mut self, ctx: &egui::Context) -> Option<Shown> {
        let document = self.document.as_ref()?;
        let original = document.original().clone();
        let current = document.image().clone();
        if let Some(lightbox) = &self.lightbox
            && let Some(image) = lightbox.entries.get(lightbox.selected).and_then(|e| e.result.clone())
        {
            return Some(Shown { image, texture: None, other: Some(current) });
        }
        if let Some(view) = &mut self.quantized {
            match view.show {
                QuantShow::Int8 => {
                    if let Some(image) = view.int8.clone() {
                        return Some(Shown { image, texture: None, other: view.float.clone() });
                    }
                }
                QuantShow::Float => {
                    if let Some(image) = view.float.clone() {
                        return Some(Shown { image, texture: None, other: view.int8.clone() });
                    }
                }
                QuantShow::Difference => {
                    if let (Some(a), Some(b)) = (view.int8.clone(), view.float.clone())
                        && (a.width, a.height) == (b.width, b.height)
                    {
                        let scale = view.heat_scale / 255.0;
                        let stale = view.heatmap.as_ref().is_none_or(|(key, _)| !Arc::ptr_eq(key, &a))
                            || (view.heat_scale_used - scale).abs() > 1e-6;
                        if stale {
                            let rgba = metrics::difference_heatmap(&a, &b, scale);
                            let image = egui::ColorImage::from_rgba_unmultiplied([a.width, a.height], &rgba);
                            let texture = ctx.load_texture("prism-heatmap", image, egui::TextureOptions::NEAREST);
                            view.heatmap = Some((a.clone(), texture));
                            view.heat_scale_used = scale;
                        }
                        let texture = view.heatmap.as_ref().map(|(_, t)| t.id());
                        return Some(Shown { image: a, texture, other: view.float.clone() });
                    }
                }
            }
        }
        if self.holding_original {
            return Some(Shown { image: original, texture: None, other: None });
        }
        Some(Shown { image: current, texture: None, other: Some(original) })
    }

    fn canvas_area_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let Some(Shown { image: shown, texture: texture_override, other }) = self.shown_images(&ctx) else {
            ui.centered_and_justified(|ui| {
                let text = if self.loading.is_some() {
                    "Opening…"
                } else {
                    "Open a photo (Ctrl+O), drop one here, or paste one (Ctrl+V)."
                };
                ui.label(RichText::new(text).size(18.0).weak());
            });
            return;
        };
        let current = texture_override.unwrap_or_else(|| self.images.get(&ctx, &shown));
        let other_texture = match (self.compare, &other) {
            (Compare::Off, _) | (_, None) => None,
            (_, Some(image)) => Some(self.images.get(&ctx, image)),
        };
        // The mask is painted on the document; it is shown (and paintable) only over the
        // document's own image at its own size.
        let paints_document = self.lightbox.as_ref().is_none_or(|l| l.entries.get(l.selected).is_none_or(|e| e.result.is_none()))
            && self.quantized.as_ref().is_none_or(|q| q.int8.is_none() && q.float.is_none());
        let overlay = match &mut self.document {
            Some(document) if paints_document && (document.mask.width, document.mask.height) == (shown.width, shown.height) => {
                Some(OverlayTexture::update(&mut self.overlay, &ctx, &mut document.mask, self.settings.overlay_color))
            }
            _ => None,
        };
        let layers = Layers {
            image_size: egui::vec2(shown.width as f32, shown.height as f32),
            current,
            other: other_texture,
            compare: if other_texture.is_some() { self.compare } else { Compare::Off },
            overlay,
            overlay_opacity: self.settings.overlay_opacity,
        };
        let brush = Brush {
            radius: self.settings.brush_radius,
            hardness: self.settings.brush_hardness,
            erase: self.mask_tool == MaskTool::Eraser,
        };
        let mask = if paints_document && overlay.is_some() && !self.is_busy() {
            self.document.as_mut().map(|d| &mut d.mask)
        } else {
            None
        };
        let finished = canvas::canvas_ui(ui, &mut self.canvas, &layers, mask, self.mask_tool, brush);
        if let (Some(label), Some(document)) = (finished, &mut self.document) {
            document.commit_mask(label);
        }
    }

    fn lightbox_window(&mut self, ctx: &egui::Context) {
        let Some(lightbox) = &mut self.lightbox else { return };
        let mut open = true;
        let mut actions = Vec::new();
        let tools: Vec<(String, String, bool)> =
            self.tools.iter().map(|t| (t.meta.name.clone(), t.meta.title.clone(), t.meta.scale == 1)).collect();
        egui::Window::new("Adapter lightbox").open(&mut open).default_pos(window_corner(ctx)).default_width(280.0).show(
            ctx,
            |ui| {
                ui.label("The same image and mask through each ticked tool, plus the base model alone.");
                for (name, title, same_size) in &tools {
                    let mut ticked = lightbox.chosen.contains(name);
                    let response = ui.add_enabled(*same_size, egui::Checkbox::new(&mut ticked, title.as_str()));
                    if !same_size {
                        response.on_disabled_hover_text("Changes the image size; compare it on its own");
                    }
                    if ticked {
                        lightbox.chosen.insert(name.clone());
                    } else {
                        lightbox.chosen.remove(name);
                    }
                }
                if ui.button("Run lightbox").clicked() {
                    actions.push(Action::RunLightbox);
                }
                ui.separator();
                for (index, entry) in lightbox.entries.iter().enumerate() {
                    let state = match (&entry.result, &entry.error) {
                        (Some(_), _) => String::new(),
                        (None, Some(error)) => format!(" — failed: {error}"),
                        (None, None) => " — running…".into(),
                    };
                    ui.selectable_value(&mut lightbox.selected, index, format!("{index} · {}{state}", entry.label));
                }
                if !lightbox.entries.is_empty() {
                    ui.label(RichText::new("Number keys flip; zoom and pan stay in sync.").small().weak());
                    if ui.button("Keep this result").clicked() {
                        actions.push(Action::KeepLightboxResult);
                    }
                }
            },
        );
        if !open {
            actions.push(Action::CloseLightbox);
        }
        self.actions.extend(actions);
    }

    fn quantized_window(&mut self, ctx: &egui::Context) {
        let Some(view) = &mut self.quantized else { return };
        let mut open = true;
        egui::Window::new("Quantized vs float").open(&mut open).default_pos(window_corner(ctx)).default_width(300.0).show(
            ctx,
            |ui| {
                ui.label(format!("{}: int8 (shared QUAD profile) against the float teachers.", view.title));
                for note in &view.notes {
                    ui.label(RichText::new(note).small().weak());
                }
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut view.show, QuantShow::Int8, "int8");
                    ui.selectable_value(&mut view.show, QuantShow::Float, "float");
                    ui.selectable_value(&mut view.show, QuantShow::Difference, "Difference");
                });
                if view.show == QuantShow::Difference {
                    ui.add(egui::Slider::new(&mut view.heat_scale, 1.0..=64.0).logarithmic(true).text("White at (of 255)"));
                }
                if let Some(error) = &view.error {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Error: {error}"));
                }
                match &view.agreement {
                    Some(a) => {
                        let db = |v: Option<f64>| v.map(|v| format!("{v:.1} dB")).unwrap_or_else(|| "-".into());
                        let ssim = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
                        egui::Grid::new("agreement").striped(true).show(ui, |ui| {
                            ui.label("");
                            ui.label("PSNR");
                            ui.label("SSIM");
                            ui.end_row();
                            ui.label("Inside mask");
                            ui.label(db(a.psnr_inside));
                            ui.label(ssim(a.ssim_inside));
                            ui.end_row();
                            ui.label(if a.psnr_inside.is_some() { "Outside mask" } else { "Whole image" });
                            ui.label(db(a.psnr_outside));
                            ui.label(ssim(a.ssim_outside));
                            ui.end_row();
                        });
                        ui.label(format!("Largest difference: {:.1} of 255", a.max_difference));
                    }
                    None if view.error.is_none() => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("Running both…");
                        });
                    }
                    None => {}
                }
            },
        );
        if !open {
            self.act(Action::CloseQuantized);
        }
    }

    fn adapters_window(&mut self, ctx: &egui::Context) {
        if !self.show_adapters {
            return;
        }
        let mut open = true;
        let mut actions = Vec::new();
        egui::Window::new("Adapter manager").open(&mut open).default_pos(window_corner(ctx)).default_width(420.0).show(
            ctx,
            |ui| {
                egui::Grid::new("adapters").striped(true).show(ui, |ui| {
                    for heading in ["Tool", "Id", "Kind", "Size", ""] {
                        ui.label(RichText::new(heading).strong());
                    }
                    ui.end_row();
                    for info in &self.tools {
                        let meta = &info.meta;
                        ui.label(&meta.title).on_hover_text(&meta.description);
                        ui.label(&meta.name);
                        let precision = match (meta.precision, info.quantized_on_load) {
                            (AdapterPrecision::Int8, _) => "int8 (QUAD)",
                            (AdapterPrecision::Float, true) => "float, int8 on load (PTQ)",
                            (AdapterPrecision::Float, false) => "float",
                        };
                        ui.label(format!("{precision}, rank {}", meta.rank));
                        ui.label(format!("{:.1} KB", info.stored_bytes as f64 / 1e3));
                        if ui.small_button(format!("Remove {}", meta.name)).clicked() {
                            actions.push(Action::RemoveAdapter(meta.name.clone()));
                        }
                        ui.end_row();
                    }
                });
                ui.separator();
                ui.label("Install an adapter (.prism-lora, PEFT or kohya safetensors):");
                ui.horizontal(|ui| {
                    let label = ui.label("Adapter file");
                    ui.add(egui::TextEdit::singleline(&mut self.install_path).hint_text("path to the file").desired_width(220.0))
                        .labelled_by(label.id);
                    if ui.button("Install").clicked() && !self.install_path.trim().is_empty() {
                        actions.push(Action::Install(self.install_path.trim().into()));
                    }
                });
                if ui.button("Choose a file…").clicked() {
                    actions.push(Action::InstallDialog);
                }
            },
        );
        self.show_adapters = open;
        self.actions.extend(actions);
    }

    fn shortcuts_window(&mut self, ctx: &egui::Context) {
        if !self.show_shortcuts {
            return;
        }
        let mut open = true;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                    for (keys, what) in SHORTCUTS {
                        ui.label(RichText::new(*keys).monospace());
                        ui.label(*what);
                        ui.end_row();
                    }
                });
            });
        self.show_shortcuts = open;
    }

    fn modal_ui(&mut self, ctx: &egui::Context) {
        let Some(modal) = &self.modal else { return };
        let mut actions = Vec::new();
        let mut close = false;
        egui::Modal::new(egui::Id::unique("prism-modal")).show(ctx, |ui| match modal {
            Modal::ConfirmOverwrite(path) => {
                ui.heading("Overwrite the original?");
                ui.label(format!("{} is the photo you opened. Saving replaces it with the edited image.", path.display()));
                ui.horizontal(|ui| {
                    if ui.button("Overwrite").clicked() {
                        actions.push(Action::SaveTo { path: path.clone(), confirmed: true });
                    }
                    if ui.button("Save as…").clicked() {
                        close = true;
                        actions.push(Action::SaveAsDialog);
                    }
                    if ui.button("Keep the original").clicked() {
                        close = true;
                    }
                });
            }
            Modal::RestoreAutosave(summary) => {
                ui.heading("Restore your last document?");
                let age = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|now| now.as_secs().saturating_sub(summary.saved_at_unix))
                    .unwrap_or(0);
                ui.label(format!(
                    "Prism did not close normally while editing {} ({} history steps, autosaved {} ago).",
                    summary.name,
                    summary.steps,
                    human_age(age)
                ));
                ui.horizontal(|ui| {
                    if ui.button("Restore").clicked() {
                        actions.push(Action::RestoreAutosave);
                    }
                    if ui.button("Discard").clicked() {
                        actions.push(Action::DiscardAutosave);
                    }
                });
            }
        });
        if close {
            self.modal = None;
        }
        self.actions.extend(actions);
    }
}

/// Where the tool windows open: over the canvas's top-right corner, clear of the side panels.
fn window_corner(ctx: &egui::Context) -> egui::Pos2 {
    let screen = ctx.content_rect();
    egui::pos2((screen.right() - 620.0).max(screen.left() + 320.0), screen.top() + 80.0)
}

struct Shown {
    image: Arc<RgbImage>,
    texture: Option<egui::TextureId>,
    other: Option<Arc<RgbImage>>,
}

fn human_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86400),
    }
}
