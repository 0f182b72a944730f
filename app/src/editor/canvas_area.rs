//! The central area: the compare bar and the canvas, showing the document (or a lightbox or
//! quantized-vs-float result) with the mask painted over it.

use std::sync::Arc;

use eframe::egui::{self, RichText};
use prism_engine::imageio::RgbImage;

use super::PrismApp;
use super::actions::Action;
use super::canvas::{self, Compare, Layers, MaskTool};
use super::mask::Brush;
use super::metrics;
use super::state::QuantShow;
use super::textures::OverlayTexture;

impl PrismApp {
    /// Hold-for-original, the compare mode and zoom buttons above the canvas.
    pub(super) fn compare_bar_ui(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.document.is_none() {
            return actions;
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
                    actions.push(action);
                }
            }
        });
        actions
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

    pub(super) fn canvas_area_ui(&mut self, ui: &mut egui::Ui) {
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
}

struct Shown {
    image: Arc<RgbImage>,
    texture: Option<egui::TextureId>,
    other: Option<Arc<RgbImage>>,
}
