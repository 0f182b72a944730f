//! Modal questions (overwrite the original? restore the autosave?) and the shortcut sheet.

use eframe::egui::{self, RichText};

use crate::editor::actions::Action;
use crate::editor::state::Modal;

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

pub fn shortcuts_window(ctx: &egui::Context) -> Option<Action> {
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
    (!open).then_some(Action::ShowShortcuts(false))
}

pub fn modal_ui(ctx: &egui::Context, modal: &Modal) -> Vec<Action> {
    let mut actions = Vec::new();
    egui::Modal::new(egui::Id::unique("prism-modal")).show(ctx, |ui| match modal {
        Modal::ConfirmOverwrite(path) => {
            ui.heading("Overwrite the original?");
            ui.label(format!("{} is the photo you opened. Saving replaces it with the edited image.", path.display()));
            ui.horizontal(|ui| {
                if ui.button("Overwrite").clicked() {
                    actions.push(Action::SaveTo { path: path.clone(), confirmed: true });
                }
                if ui.button("Save as…").clicked() {
                    actions.push(Action::CloseModal);
                    actions.push(Action::SaveAsDialog);
                }
                if ui.button("Keep the original").clicked() {
                    actions.push(Action::CloseModal);
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
    actions
}

fn human_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86400),
    }
}
