//! Everything the editor draws around the canvas, one file per panel or window. Each takes the
//! state it draws (sliders and ticks edit it in place) and returns the [`Action`]s its clicks
//! ask for; nothing here runs an edit, touches a file or reaches the engine.

mod adapter_manager;
mod demo;
mod history;
mod lightbox;
mod mask_panel;
mod menu;
mod modals;
mod notices;
mod quantized;
mod status_bar;
mod tool_panel;

use eframe::egui;

pub use modals::SHORTCUTS;

use super::PrismApp;
use super::actions::Action;

impl PrismApp {
    /// Lays out the frame: menu, status bar, side panels, the canvas and the open windows.
    pub(super) fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let mut actions: Vec<Action> = Vec::new();
        egui::Panel::top("menu").show(ui, |ui| {
            let document = self.document.as_ref();
            let can = document.map(|d| (true, d.can_undo(), d.can_redo())).unwrap_or_default();
            actions.extend(menu::menu_ui(ui, &self.settings, can, &mut self.show_history));
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            let status = status_bar::StatusView {
                status: &self.status,
                progress: self.progress(),
                loading: self.loading.as_deref(),
                tools: &self.tools,
                teachers: &self.teachers,
                image: self.document.as_ref().map(|d| d.image().as_ref()),
                zoom: self.canvas.view.zoom,
            };
            actions.extend(status_bar::status_bar_ui(ui, &status));
        });
        egui::Panel::left("tools").resizable(true).default_size(300.0).min_size(260.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                let has_document = self.document.is_some();
                actions.extend(mask_panel::mask_panel_ui(ui, &mut self.mask_tool, &mut self.settings, has_document));
                ui.separator();
                let busy = self.is_busy();
                let view = tool_panel::ToolPanel {
                    tools: &self.tools,
                    settings: &self.settings,
                    image: self.document.as_ref().map(|d| d.image().as_ref()),
                    busy,
                    textured_fill: self.textured_fill(),
                };
                actions.extend(tool_panel::tool_panel_ui(ui, &mut self.tool, &view));
            });
        });
        if self.show_history {
            egui::Panel::right("history").resizable(true).default_size(220.0).min_size(180.0).show(ui, |ui| {
                actions.extend(history::history_ui(ui, self.document.as_ref()));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            actions.extend(notices::notices_ui(ui, &self.notices));
            actions.extend(self.compare_bar_ui(ui));
            self.canvas_area_ui(ui);
        });
        let ctx = ui.ctx().clone();
        if let Some(lightbox) = &mut self.lightbox {
            actions.extend(lightbox::lightbox_window(&ctx, lightbox, &self.tools));
        }
        if let Some(view) = &mut self.quantized {
            actions.extend(quantized::quantized_window(&ctx, view));
        }
        if let Some(view) = &self.demo {
            actions.extend(demo::demo_window(&ctx, view));
        }
        if self.show_adapters {
            actions.extend(adapter_manager::adapter_manager_window(&ctx, &self.tools, &mut self.install_path));
        }
        if self.show_shortcuts {
            actions.extend(modals::shortcuts_window(&ctx));
        }
        if let Some(modal) = &self.modal {
            actions.extend(modals::modal_ui(&ctx, modal));
        }
        self.actions.extend(actions);
    }
}

/// Where the tool windows open: over the canvas's top-right corner, clear of the side panels.
fn window_corner(ctx: &egui::Context) -> egui::Pos2 {
    let screen = ctx.content_rect();
    egui::pos2((screen.right() - 620.0).max(screen.left() + 320.0), screen.top() + 80.0)
}
