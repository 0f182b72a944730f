//! The quantized-vs-float window: the same edit through the int8 model and the float teachers,
//! which to show, and how far they agree inside and outside the mask.

use eframe::egui::{self, RichText};

use super::window_corner;
use crate::editor::actions::Action;
use crate::editor::state::{QuantCompare, QuantShow};

pub fn quantized_window(ctx: &egui::Context, view: &mut QuantCompare) -> Option<Action> {
    let mut open = true;
    egui::Window::new("Quantized vs float").open(&mut open).default_pos(window_corner(ctx)).default_width(300.0).show(
        ctx,
        |ui| {
            ui.label(format!("{}: int8 (shared QUAD profile) against the float teachers.", view.title));
            for note in &view.notes {
                ui.label(RichText::new(note).small().weak());
            }
            ui.horizontal(|ui| {
                ui.selectable_value(&mut view.show, QuantShow::Int8, "int8");
                ui.selectable_value(&mut view.show, QuantShow::Float, "float");
                ui.selectable_value(&mut view.show, QuantShow::Difference, "Difference");
            });
            if view.show == QuantShow::Difference {
                ui.add(egui::Slider::new(&mut view.heat_scale, 1.0..=64.0).logarithmic(true).text("White at (of 255)"));
            }
            if let Some(error) = &view.error {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {error}"));
            }
            match &view.agreement {
                Some(a) => {
                    let db = |v: Option<f64>| v.map(|v| format!("{v:.1} dB")).unwrap_or_else(|| "-".into());
                    let ssim = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
                    egui::Grid::new("agreement").striped(true).show(ui, |ui| {
                        ui.label("");
                        ui.label("PSNR");
                        ui.label("SSIM");
                        ui.end_row();
                        ui.label("Inside mask");
                        ui.label(db(a.psnr_inside));
                        ui.label(ssim(a.ssim_inside));
                        ui.end_row();
                        ui.label(if a.psnr_inside.is_some() { "Outside mask" } else { "Whole image" });
                        ui.label(db(a.psnr_outside));
                        ui.label(ssim(a.ssim_outside));
                        ui.end_row();
                    });
                    ui.label(format!("Largest difference: {:.1} of 255", a.max_difference));
                }
                None if view.error.is_none() => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Running both…");
                    });
                }
                None => {}
            }
        },
    );
    (!open).then_some(Action::CloseQuantized)
}
