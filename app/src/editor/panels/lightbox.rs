//! The lightbox window: tick tools, run them all on the same photo and mask (plus the base
//! model alone), flip between the results, keep one.

use eframe::egui::{self, RichText};
use prism_engine::backends::AdapterInfo;

use super::window_corner;
use crate::editor::actions::Action;
use crate::editor::state::Lightbox;

pub fn lightbox_window(ctx: &egui::Context, lightbox: &mut Lightbox, tools: &[AdapterInfo]) -> Vec<Action> {
    let mut open = true;
    let mut actions = Vec::new();
    egui::Window::new("Adapter lightbox").open(&mut open).default_pos(window_corner(ctx)).default_width(280.0).show(ctx, |ui| {
        ui.label("The same image and mask through each ticked tool, plus the base model alone.");
        for info in tools {
            let (name, same_size) = (&info.meta.name, info.meta.scale == 1);
            let mut ticked = lightbox.chosen.contains(name);
            let response = ui.add_enabled(same_size, egui::Checkbox::new(&mut ticked, info.meta.title.as_str()));
            if !same_size {
                response.on_disabled_hover_text("Changes the image size; compare it on its own");
            }
            if ticked {
                lightbox.chosen.insert(name.clone());
            } else {
                lightbox.chosen.remove(name);
            }
        }
        ui.label("Requests to compare, one per line:");
        ui.add(
            egui::TextEdit::multiline(&mut lightbox.prompts)
                .hint_text("warmer\nblack and white with more contrast")
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        );
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
    });
    if !open {
        actions.push(Action::CloseLightbox);
    }
    actions
}
