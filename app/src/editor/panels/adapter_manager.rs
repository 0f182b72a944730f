//! The adapter manager window: the installed tools, install from a file, remove.

use eframe::egui::{self, RichText};
use prism_engine::adapter::AdapterPrecision;
use prism_engine::backends::AdapterInfo;

use super::window_corner;
use crate::editor::actions::Action;

/// `install_path`: what is typed into the path box.
pub fn adapter_manager_window(ctx: &egui::Context, tools: &[AdapterInfo], install_path: &mut String) -> Vec<Action> {
    let mut open = true;
    let mut actions = Vec::new();
    egui::Window::new("Adapter manager").open(&mut open).default_pos(window_corner(ctx)).default_width(420.0).show(ctx, |ui| {
        egui::Grid::new("adapters").striped(true).show(ui, |ui| {
            for heading in ["Tool", "Id", "Kind", "Size", ""] {
                ui.label(RichText::new(heading).strong());
            }
            ui.end_row();
            for info in tools {
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
            ui.add(egui::TextEdit::singleline(install_path).hint_text("path to the file").desired_width(220.0))
                .labelled_by(label.id);
            if ui.button("Install").clicked() && !install_path.trim().is_empty() {
                actions.push(Action::Install(install_path.trim().into()));
            }
        });
        if ui.button("Choose a file…").clicked() {
            actions.push(Action::InstallDialog);
        }
    });
    if !open {
        actions.push(Action::ShowAdapters(false));
    }
    actions
}
