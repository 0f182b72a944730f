//! The status bar: progress, backend and device, the last switch and forward times, and what is
//! resident (one base + every tool).

use std::collections::BTreeMap;

use eframe::egui;
use prism_engine::backends::{AdapterInfo, BackendKind};
use prism_engine::imageio::RgbImage;

use crate::editor::actions::Action;
use crate::editor::state::EngineStatus;

/// What the status bar shows.
pub struct StatusView<'a> {
    pub status: &'a EngineStatus,
    /// (done, total) over the running jobs.
    pub progress: Option<(usize, usize)>,
    /// The file being opened.
    pub loading: Option<&'a str>,
    pub tools: &'a [AdapterInfo],
    /// Float teachers (loaded for the quantized-vs-float view) and their sizes.
    pub teachers: &'a BTreeMap<String, usize>,
    pub image: Option<&'a RgbImage>,
    /// Points per image pixel.
    pub zoom: f32,
}

pub fn status_bar_ui(ui: &mut egui::Ui, view: &StatusView<'_>) -> Option<Action> {
    let mut action = None;
    ui.horizontal(|ui| {
        if let Some((done, total)) = view.progress {
            ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32).desired_width(160.0).show_percentage());
            if ui.button("Cancel").clicked() {
                action = Some(Action::Cancel);
            }
        } else if let Some(name) = view.loading {
            ui.spinner();
            ui.label(format!("Opening {name}…"));
        }
        let status = view.status;
        let backend = status.backend.map_or("no engine", BackendKind::name);
        ui.label(format!("Backend: {backend}")).on_hover_text(&status.device);
        ui.label(format!("Device: {}", if status.device.is_empty() { "-" } else { &status.device }));
        if let Some(stats) = &status.last_stats {
            ui.label(format!(
                "Switch {:.2} ms · Forward {:.0} ms ({})",
                stats.switch_time.as_secs_f64() * 1e3,
                stats.forward_time.as_secs_f64() * 1e3,
                stats.precision
            ));
        }
        // The engine counts the float teachers too; they are loaded for the QA view only.
        let base = status.memory.base_bytes as f64 / 1e6;
        let teacher_bytes: usize = view.teachers.values().sum();
        let tool_bytes: usize = view.tools.iter().map(|t| t.stored_bytes).sum();
        ui.label(format!("Resident: base {base:.2} MB + {} tools {:.2} MB", view.tools.len(), tool_bytes as f64 / 1e6))
            .on_hover_text(format!(
                "One shared int8 model; every tool is a small adapter bound at run time.\nAlso loaded for the quantized-vs-float view: {} float teachers, {:.2} MB.",
                view.teachers.len(),
                teacher_bytes as f64 / 1e6
            ));
        if let Some(image) = view.image {
            let percent = view.zoom * ui.ctx().pixels_per_point() * 100.0;
            ui.label(format!("{}×{} · zoom {percent:.0}%", image.width, image.height));
        }
    });
    action
}
