//! Messages for the user over the canvas; errors stay until dismissed.

use eframe::egui;

use crate::editor::actions::Action;
use crate::editor::state::Notice;

pub fn notices_ui(ui: &mut egui::Ui, notices: &[Notice]) -> Option<Action> {
    let mut dismiss = None;
    for (index, notice) in notices.iter().enumerate() {
        ui.horizontal(|ui| {
            if notice.error {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {}", notice.text));
            } else {
                ui.label(&notice.text);
            }
            if ui.small_button("Dismiss").clicked() {
                dismiss = Some(Action::DismissNotice(index));
            }
        });
    }
    dismiss
}
