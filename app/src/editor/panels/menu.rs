//! The menu bar.

use eframe::egui;

use crate::editor::actions::Action;
use crate::editor::{Settings, Theme};

/// `document`: (a document is open, it can undo, it can redo).
pub fn menu_ui(ui: &mut egui::Ui, settings: &Settings, document: (bool, bool, bool), show_history: &mut bool) -> Vec<Action> {
    let (has_document, undo, redo) = document;
    let mut actions = Vec::new();
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            if ui.button("Open…").clicked() {
                actions.push(Action::OpenDialog);
            }
            ui.menu_button("Open recent", |ui| {
                if settings.recent_files.is_empty() {
                    ui.label("No recent files");
                }
                for path in &settings.recent_files {
                    if ui.button(path.display().to_string()).clicked() {
                        actions.push(Action::Open(path.clone()));
                    }
                }
            });
            if ui.add_enabled(has_document, egui::Button::new("Save")).clicked() {
                actions.push(Action::Save);
            }
            if ui.add_enabled(has_document, egui::Button::new("Save as / Export…")).clicked() {
                actions.push(Action::SaveAsDialog);
            }
        });
        ui.menu_button("Edit", |ui| {
            if ui.add_enabled(undo, egui::Button::new("Undo")).clicked() {
                actions.push(Action::Undo);
            }
            if ui.add_enabled(redo, egui::Button::new("Redo")).clicked() {
                actions.push(Action::Redo);
            }
        });
        ui.menu_button("View", |ui| {
            if ui.button("Fit").clicked() {
                actions.push(Action::ZoomFit);
            }
            if ui.button("100%").clicked() {
                actions.push(Action::ZoomActual);
            }
            ui.checkbox(show_history, "History panel");
            if ui.button("Demo: every tool in turn").on_hover_text("Switch, forward time and memory per tool, live").clicked() {
                actions.push(Action::RunDemo);
            }
            ui.separator();
            let mut theme = settings.theme;
            ui.radio_value(&mut theme, Theme::Dark, "Dark theme");
            ui.radio_value(&mut theme, Theme::Light, "Light theme");
            ui.radio_value(&mut theme, Theme::System, "System theme");
            if theme != settings.theme {
                actions.push(Action::SetTheme(theme));
            }
        });
        ui.menu_button("Adapters", |ui| {
            if ui.button("Adapter manager…").clicked() {
                actions.push(Action::ShowAdapters(true));
            }
            if ui.button("Lightbox…").clicked() {
                actions.push(Action::OpenLightbox);
            }
            if ui.button("Quantized vs float…").clicked() {
                actions.push(Action::RunQuantized);
            }
        });
        ui.menu_button("Help", |ui| {
            if ui.button("Keyboard shortcuts").clicked() {
                actions.push(Action::ShowShortcuts(true));
            }
        });
    });
    actions
}
