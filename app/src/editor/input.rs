//! The keyboard, dropped files and the clipboard, turned into actions once per frame.

use std::path::PathBuf;

use eframe::egui::{self, Key, KeyboardShortcut, Modifiers};
use prism_engine::imageio::RgbImage;

use super::actions::{Action, MaskOp};
use super::{MaskTool, PrismApp};

impl PrismApp {
    pub(super) fn keyboard(&mut self, ctx: &egui::Context) {
        // Dropped files and pasted images work even while typing.
        let (dropped, pasted) = ctx.input(|i| {
            let dropped: Vec<PathBuf> =
                i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| p.is_absolute()).collect();
            let pasted: Vec<egui::Event> =
                i.events.iter().filter(|e| matches!(e, egui::Event::PasteImage(_) | egui::Event::Paste(_))).cloned().collect();
            (dropped, pasted)
        });
        if let Some(path) = dropped.into_iter().next() {
            self.act(Action::Open(path));
        }
        let typing = ctx.egui_wants_keyboard_input();
        for event in pasted {
            match event {
                egui::Event::PasteImage(image) => {
                    let data = image.pixels.iter().flat_map(|c| [c.r(), c.g(), c.b()]).map(|v| f32::from(v) / 255.0).collect();
                    self.act(Action::OpenPasted(RgbImage { width: image.width(), height: image.height(), data }));
                }
                // A copied file is pasted as its path (file managers put it on the clipboard so).
                egui::Event::Paste(text) if !typing => {
                    let path = PathBuf::from(text.trim().trim_start_matches("file://"));
                    if path.is_file() {
                        self.act(Action::Open(path));
                    }
                }
                _ => {}
            }
        }
        if typing {
            return;
        }
        let command = Modifiers::COMMAND;
        let shortcuts: [(KeyboardShortcut, fn() -> Action); 8] = [
            (KeyboardShortcut::new(command | Modifiers::SHIFT, Key::Z), || Action::Redo),
            (KeyboardShortcut::new(command, Key::Z), || Action::Undo),
            (KeyboardShortcut::new(command, Key::Y), || Action::Redo),
            (KeyboardShortcut::new(command | Modifiers::SHIFT, Key::S), || Action::SaveAsDialog),
            (KeyboardShortcut::new(command, Key::S), || Action::Save),
            (KeyboardShortcut::new(command, Key::O), || Action::OpenDialog),
            (KeyboardShortcut::new(command, Key::Enter), || Action::Run),
            (KeyboardShortcut::new(command, Key::Num0), || Action::ZoomFit),
        ];
        for (shortcut, action) in shortcuts {
            if ctx.input_mut(|i| i.consume_shortcut(&shortcut)) {
                self.act(action());
            }
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(command, Key::Num1))) {
            self.act(Action::ZoomActual);
        }
        let pressed = |key: Key| ctx.input(|i| i.key_pressed(key) && i.modifiers.is_none());
        if let Some(lightbox) = &mut self.lightbox {
            for (digit, key) in
                [Key::Num0, Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9]
                    .into_iter()
                    .enumerate()
            {
                if pressed(key) && digit < lightbox.entries.len() {
                    lightbox.selected = digit;
                }
            }
        }
        for tool in MaskTool::ALL {
            if pressed(tool.shortcut()) {
                self.mask_tool = tool;
            }
        }
        if pressed(Key::OpenBracket) {
            self.settings.brush_radius = (self.settings.brush_radius / 1.25).max(1.0);
        }
        if pressed(Key::CloseBracket) {
            self.settings.brush_radius = (self.settings.brush_radius * 1.25).min(1000.0);
        }
        if pressed(Key::F) {
            self.act(Action::ZoomFit);
        }
        if pressed(Key::Plus) || pressed(Key::Equals) {
            self.act(Action::Zoom(1.25));
        }
        if pressed(Key::Minus) {
            self.act(Action::Zoom(0.8));
        }
        if pressed(Key::I) {
            self.act(Action::MaskOp(MaskOp::Invert));
        }
        if pressed(Key::Delete) || pressed(Key::Backspace) {
            self.act(Action::MaskOp(MaskOp::Clear));
        }
        if pressed(Key::Escape) {
            if self.is_busy() {
                self.act(Action::Cancel);
            } else {
                self.show_shortcuts = false;
            }
        }
        if ctx.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Text(t) if t == "?"))) {
            self.show_shortcuts = !self.show_shortcuts;
        }
    }
}
