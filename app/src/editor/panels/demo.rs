//! The demo window: every tool in turn on the open photo, each tool's switch, forward time and
//! resident memory filling in as the runs finish, and the report `prism demo --json` prints.

use eframe::egui::{self, RichText};

use super::window_corner;
use crate::editor::actions::Action;
use crate::editor::state::DemoView;

pub fn demo_window(ctx: &egui::Context, view: &DemoView) -> Option<Action> {
    let mut open = true;
    let mut action = None;
    egui::Window::new("Demo").open(&mut open).default_pos(window_corner(ctx)).default_width(460.0).show(ctx, |ui| {
        let device = view.device.as_ref().map(|(backend, device)| format!("{} on {device}", backend.name()));
        ui.label(format!(
            "{} tools, {} rounds, on {} ({}x{}) — {}",
            view.tools.len(),
            view.rounds,
            view.photo.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            view.size.0,
            view.size.1,
            device.as_deref().unwrap_or("starting…")
        ));
        let summary = crate::demo::summarize(&view.tools, &view.runs);
        egui::Grid::new("demo_rows").striped(true).num_columns(5).show(ui, |ui| {
            for heading in ["Tool", "Switch", "Forward", "Resident", "Adapter"] {
                ui.label(RichText::new(heading).strong());
            }
            ui.end_row();
            for row in &summary {
                ui.label(&row.title);
                ui.label(format!("{:.2} ms", row.switch_ms));
                ui.label(format!("{:.0} ms", row.forward_ms));
                ui.label(format!("{:.2} MB", row.resident_bytes as f64 / 1e6));
                ui.label(format!("{:.0} KB, rank {}", row.adapter_bytes as f64 / 1e3, row.rank));
                ui.end_row();
            }
        });
        for failure in &view.failures {
            ui.colored_label(ui.visuals().error_fg_color, failure);
        }
        if view.finished() {
            ui.label(RichText::new("Median of the rounds; the switch after the first round is the hot swap.").small().weak());
            ui.horizontal(|ui| {
                if ui.button("Run again").clicked() {
                    action = Some(Action::RunDemo);
                }
                if ui.button("Copy JSON").on_hover_text("The report prism demo --json prints").clicked()
                    && let Ok(json) = serde_json::to_string_pretty(&view.report())
                {
                    ui.ctx().copy_text(json);
                }
            });
        } else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("{} of {} runs", view.runs.len() + view.failures.len(), view.expected()));
            });
        }
    });
    if !open {
        return Some(Action::CloseDemo);
    }
    action
}
