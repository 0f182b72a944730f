//! The history panel: every step, with what made each edit; a click goes back to it.

use eframe::egui::{self, RichText};

use crate::editor::Document;
use crate::editor::actions::Action;

pub fn history_ui(ui: &mut egui::Ui, document: Option<&Document>) -> Option<Action> {
    ui.heading("History");
    let Some(document) = document else {
        ui.label(RichText::new("Nothing open.").weak());
        return None;
    };
    let position = document.position();
    let mut clicked = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (index, step) in document.steps().iter().enumerate() {
            let text = if index > position { RichText::new(&step.label).weak() } else { RichText::new(&step.label) };
            let response = ui.selectable_label(index == position, text);
            let response = match &step.record {
                Some(r) => {
                    let mut hover = format!(
                        "adapters: {}\nstrength {:.2}\n{} on {} [{}]\nswitch {:.2} ms, forward {:.0} ms, total {:.0} ms",
                        r.adapters.parts().iter().map(|(n, w)| format!("{n} ×{w:.2}")).collect::<Vec<_>>().join(", "),
                        r.strength,
                        r.backend,
                        r.device,
                        r.precision,
                        r.switch_ms,
                        r.forward_ms,
                        r.total_ms
                    );
                    if let Some(stops) = r.exposure {
                        hover.push_str(&format!("\nexposure {stops:+.2} stops"));
                    }
                    if let Some(sigma) = r.blur_size {
                        let pass = if r.deconvolved { "deconvolved" } else { "unsharp-masked" };
                        hover.push_str(&format!("\nblur size {sigma:.2} px, {pass}"));
                    }
                    if let Some(level) = r.noise_level {
                        hover.push_str(&format!("\nnoise level {level:.1} of 255"));
                    }
                    response.on_hover_text(hover)
                }
                None => response,
            };
            if response.clicked() {
                clicked = Some(index);
            }
            if let Some(r) = &step.record {
                ui.label(
                    RichText::new(format!("  {} · ×{:.2} · {} · {:.0} ms", r.precision, r.strength, r.backend, r.total_ms))
                        .small()
                        .weak(),
                );
            }
        }
    });
    clicked.map(Action::GoTo)
}
