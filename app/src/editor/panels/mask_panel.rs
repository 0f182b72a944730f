//! The mask panel: mask tools, brush, mask operations and the overlay.

use eframe::egui::{self, Color32};

use crate::editor::actions::{Action, MaskOp};
use crate::editor::{MaskTool, Settings};

pub fn mask_panel_ui(ui: &mut egui::Ui, mask_tool: &mut MaskTool, settings: &mut Settings, has_document: bool) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.heading("Mask");
    ui.horizontal_wrapped(|ui| {
        for tool in MaskTool::ALL {
            ui.selectable_value(mask_tool, tool, tool.label()).on_hover_text(format!(
                "{} ({})",
                tool.label(),
                tool.shortcut().name()
            ));
        }
    });
    ui.add(egui::Slider::new(&mut settings.brush_radius, 1.0..=400.0).logarithmic(true).max_decimals(0).text("Brush size"))
        .on_hover_text("Brush radius in image pixels ([ and ])");
    ui.add(egui::Slider::new(&mut settings.brush_hardness, 0.0..=1.0).text("Hardness"))
        .on_hover_text("1 = hard edge, 0 = soft all the way in");
    ui.horizontal_wrapped(|ui| {
        for (label, op, tip) in [
            ("Clear", MaskOp::Clear, "Remove the whole mask (Delete)"),
            ("Invert", MaskOp::Invert, "Edit everything except what is painted (I)"),
            ("Grow", MaskOp::Grow(4), "Widen the mask by 4 pixels"),
            ("Shrink", MaskOp::Grow(-4), "Narrow the mask by 4 pixels"),
            ("Feather", MaskOp::Feather(4), "Soften the mask's edge by 4 pixels"),
        ] {
            if ui.add_enabled(has_document, egui::Button::new(label)).on_hover_text(tip).clicked() {
                actions.push(Action::MaskOp(op));
            }
        }
        if ui
            .add_enabled(has_document, egui::Button::new("Import mask…"))
            .on_hover_text("Use an image's alpha (or brightness) as the mask")
            .clicked()
        {
            actions.push(Action::ImportMaskDialog);
        }
    });
    ui.horizontal(|ui| {
        let label = ui.label("Overlay");
        let [r, g, b] = settings.overlay_color;
        let mut color = Color32::from_rgb(r, g, b);
        if ui.color_edit_button_srgba(&mut color).labelled_by(label.id).changed() {
            settings.overlay_color = [color.r(), color.g(), color.b()];
        }
        ui.add(egui::Slider::new(&mut settings.overlay_opacity, 0.0..=1.0).text("Opacity"));
    });
    actions
}
