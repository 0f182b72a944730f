//! The canvas: draws the photo (and a second one for before/after), the mask overlay and the
//! brush cursor; turns the pointer into zoom, pan and mask painting. Zoom is kept in screen
//! points per image pixel; "100%" is one image pixel per physical pixel, so it is sharp on
//! high-DPI screens.

use eframe::egui::{self, Color32, CursorIcon, Key, PointerButton, Pos2, Rect, Sense, Stroke, TextureId, Vec2, pos2, vec2};

use super::mask::{Brush, MaskLayer};

const MIN_ZOOM: f32 = 0.02;
const MAX_ZOOM: f32 = 64.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskTool {
    Brush,
    Eraser,
    Rectangle,
    Lasso,
}

impl MaskTool {
    pub const ALL: [Self; 4] = [Self::Brush, Self::Eraser, Self::Rectangle, Self::Lasso];

    pub fn label(self) -> &'static str {
        match self {
            Self::Brush => "Brush",
            Self::Eraser => "Eraser",
            Self::Rectangle => "Rectangle",
            Self::Lasso => "Lasso",
        }
    }

    pub fn shortcut(self) -> Key {
        match self {
            Self::Brush => Key::B,
            Self::Eraser => Key::E,
            Self::Rectangle => Key::R,
            Self::Lasso => Key::L,
        }
    }
}

/// Where the canvas looks: `zoom` screen points per image pixel, `center` in image pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub zoom: f32,
    pub center: Pos2,
    /// Refit when the canvas or the image changes size (until the user zooms or pans).
    pub follow_fit: bool,
}

impl Default for View {
    fn default() -> Self {
        Self { zoom: 1.0, center: Pos2::ZERO, follow_fit: true }
    }
}

impl View {
    pub fn fit(&mut self, image_size: Vec2, pane: Rect) {
        let zoom = (pane.width() / image_size.x).min(pane.height() / image_size.y) * 0.96;
        self.zoom = zoom.clamp(MIN_ZOOM, MAX_ZOOM);
        self.center = (image_size / 2.0).to_pos2();
        self.follow_fit = true;
    }

    /// One image pixel per physical pixel.
    pub fn actual_pixels(&mut self, pixels_per_point: f32) {
        self.zoom = 1.0 / pixels_per_point;
        self.follow_fit = false;
    }

    /// Zooms by `factor` about the centre of the view.
    pub fn scale(&mut self, factor: f32) {
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        self.follow_fit = false;
    }

    /// Zooms by `factor`, keeping the image point under `anchor` (screen) where it is.
    pub fn zoom_by(&mut self, factor: f32, anchor: Pos2, pane: Rect) {
        let before = self.image_point(anchor, pane);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let after = self.image_point(anchor, pane);
        self.center += before - after;
        self.follow_fit = false;
    }

    pub fn image_point(&self, screen: Pos2, pane: Rect) -> Pos2 {
        self.center + (screen - pane.center()) / self.zoom
    }

    pub fn screen_point(&self, image: Pos2, pane: Rect) -> Pos2 {
        pane.center() + (image - self.center) * self.zoom
    }

    fn image_rect(&self, image_size: Vec2, pane: Rect) -> Rect {
        Rect::from_min_max(self.screen_point(Pos2::ZERO, pane), self.screen_point(image_size.to_pos2(), pane))
    }
}

/// How the current image is compared with another one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compare {
    /// Only the current image.
    Off,
    /// The other image left of `split` (0..1 of the width), the current one right of it.
    Slider { split: f32 },
    /// Two panes, the other image left, zoomed and panned together.
    SideBySide,
}

/// What to draw: textures of the current image, of the one to compare with and of the mask.
pub struct Layers {
    pub image_size: Vec2,
    pub current: TextureId,
    pub other: Option<TextureId>,
    pub compare: Compare,
    pub overlay: Option<TextureId>,
    pub overlay_opacity: f32,
}

/// The gesture in progress.
#[derive(Clone, Debug, Default)]
enum Gesture {
    #[default]
    Idle,
    Painting {
        last: Pos2,
    },
    Rectangle {
        start: Pos2,
        end: Pos2,
    },
    Lasso {
        points: Vec<Pos2>,
    },
    Panning,
}

#[derive(Default)]
pub struct CanvasState {
    pub view: View,
    gesture: Gesture,
}

/// Draws the canvas and applies the pointer to `view` and `mask`. Returns the label of a mask
/// change that just finished ("Brush stroke"...), for the history.
pub fn canvas_ui(
    ui: &mut egui::Ui,
    state: &mut CanvasState,
    layers: &Layers,
    mut mask: Option<&mut MaskLayer>,
    tool: MaskTool,
    brush: Brush,
) -> Option<&'static str> {
    let full = ui.available_rect_before_wrap();
    let response = ui.allocate_rect(full, Sense::click_and_drag());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Canvas"));
    let painter = ui.painter_at(full);
    painter.rect_filled(full, 0.0, ui.visuals().extreme_bg_color);

    let panes: Vec<Rect> = match (layers.compare, layers.other) {
        (Compare::SideBySide, Some(_)) => {
            let half = full.width() / 2.0;
            vec![
                Rect::from_min_size(full.min, vec2(half - 1.0, full.height())),
                Rect::from_min_size(pos2(full.min.x + half + 1.0, full.min.y), vec2(half - 1.0, full.height())),
            ]
        }
        _ => vec![full],
    };
    let main_pane = *panes.last().unwrap_or(&full);
    if state.view.follow_fit {
        state.view.fit(layers.image_size, main_pane);
    }

    // Which pane the pointer is over decides the transform used for painting and zooming.
    let hover = ui.input(|i| i.pointer.hover_pos());
    let pane = hover.and_then(|p| panes.iter().copied().find(|r| r.contains(p))).unwrap_or(main_pane);

    let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
    for (index, pane_rect) in panes.iter().enumerate() {
        let image_rect = state.view.image_rect(layers.image_size, *pane_rect);
        let pane_painter = painter.with_clip_rect(*pane_rect);
        let is_left_of_two = panes.len() == 2 && index == 0;
        let texture = if is_left_of_two { layers.other.unwrap_or(layers.current) } else { layers.current };
        pane_painter.image(texture, image_rect, uv, Color32::WHITE);
        if let (Compare::Slider { split }, Some(other)) = (layers.compare, layers.other) {
            let split_x = image_rect.left() + image_rect.width() * split.clamp(0.0, 1.0);
            let left = Rect::from_min_max(pane_rect.min, pos2(split_x, pane_rect.max.y)).intersect(*pane_rect);
            painter.with_clip_rect(left).image(other, image_rect, uv, Color32::WHITE);
            pane_painter.line_segment(
                [pos2(split_x, pane_rect.top()), pos2(split_x, pane_rect.bottom())],
                Stroke::new(2.0, Color32::WHITE),
            );
        }
        if !is_left_of_two && let Some(overlay) = layers.overlay {
            pane_painter.image(overlay, image_rect, uv, Color32::WHITE.gamma_multiply(layers.overlay_opacity));
        }
    }

    let (pointer, space_down, scroll, zoom_delta, primary_pressed, primary_down, primary_released) = ui.input(|i| {
        (
            i.pointer.interact_pos(),
            i.key_down(Key::Space),
            i.smooth_scroll_delta.y,
            i.zoom_delta(),
            i.pointer.primary_pressed(),
            i.pointer.primary_down(),
            i.pointer.primary_released(),
        )
    });

    // Zoom: wheel or pinch over the canvas.
    if response.hovered()
        && let Some(anchor) = hover
    {
        let factor = zoom_delta * (scroll * 0.0015).exp();
        if (factor - 1.0).abs() > 1e-4 {
            state.view.zoom_by(factor, anchor, pane);
        }
    }

    // Pan: middle button, or the primary button with Space held.
    if response.dragged_by(PointerButton::Middle) || (space_down && response.dragged_by(PointerButton::Primary)) {
        state.view.center -= response.drag_delta() / state.view.zoom;
        state.view.follow_fit = false;
        state.gesture = Gesture::Panning;
        ui.ctx().set_cursor_icon(CursorIcon::Grabbing);
    }

    let mut finished = None;
    if let Some(mask) = mask.as_deref_mut() {
        let at = |p: Pos2| state.view.image_point(p, pane);
        if primary_pressed && !space_down && response.hovered() {
            if let Some(p) = pointer {
                let image_point = at(p);
                state.gesture = match tool {
                    MaskTool::Brush | MaskTool::Eraser => {
                        mask.dab(image_point.x, image_point.y, brush);
                        Gesture::Painting { last: image_point }
                    }
                    MaskTool::Rectangle => Gesture::Rectangle { start: image_point, end: image_point },
                    MaskTool::Lasso => Gesture::Lasso { points: vec![image_point] },
                };
            }
        } else if primary_down && let Some(p) = pointer {
            let image_point = at(p);
            match &mut state.gesture {
                Gesture::Painting { last } => {
                    if *last != image_point {
                        mask.stroke((last.x, last.y), (image_point.x, image_point.y), brush);
                        *last = image_point;
                    }
                }
                Gesture::Rectangle { end, .. } => *end = image_point,
                Gesture::Lasso { points } => {
                    if points.last().is_none_or(|q| q.distance(image_point) * state.view.zoom > 2.0) {
                        points.push(image_point);
                    }
                }
                Gesture::Idle | Gesture::Panning => {}
            }
        }
        if primary_released || (!primary_down && !matches!(state.gesture, Gesture::Idle)) {
            finished = match std::mem::take(&mut state.gesture) {
                Gesture::Painting { .. } => Some(if brush.erase { "Eraser stroke" } else { "Brush stroke" }),
                Gesture::Rectangle { start, end } => {
                    mask.fill_rect((start.x, start.y), (end.x, end.y), brush.erase);
                    Some("Rectangle")
                }
                Gesture::Lasso { points } => {
                    let points: Vec<(f32, f32)> = points.iter().map(|p| (p.x, p.y)).collect();
                    mask.fill_polygon(&points, brush.erase);
                    Some("Lasso")
                }
                Gesture::Idle | Gesture::Panning => None,
            };
        }
    } else if !primary_down {
        state.gesture = Gesture::Idle;
    }

    // Gesture previews and the brush cursor.
    let outline = Stroke::new(1.5, Color32::WHITE);
    match &state.gesture {
        Gesture::Rectangle { start, end } => {
            painter.rect_stroke(
                Rect::from_two_pos(state.view.screen_point(*start, pane), state.view.screen_point(*end, pane)),
                0.0,
                outline,
                egui::StrokeKind::Middle,
            );
        }
        Gesture::Lasso { points } => {
            let screen: Vec<Pos2> = points.iter().map(|p| state.view.screen_point(*p, pane)).collect();
            painter.add(egui::Shape::line(screen, outline));
        }
        _ => {}
    }
    if mask.is_some()
        && matches!(tool, MaskTool::Brush | MaskTool::Eraser)
        && response.hovered()
        && !space_down
        && let Some(p) = hover
    {
        painter.circle_stroke(p, brush.radius * state.view.zoom, Stroke::new(1.0, Color32::from_black_alpha(200)));
        painter.circle_stroke(p, brush.radius * state.view.zoom + 1.0, Stroke::new(1.0, Color32::WHITE));
        ui.ctx().set_cursor_icon(CursorIcon::Crosshair);
    }
    finished
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zooming_keeps_the_point_under_the_cursor() {
        let pane = Rect::from_min_size(pos2(10.0, 20.0), vec2(400.0, 300.0));
        let mut view = View::default();
        view.fit(vec2(800.0, 600.0), pane);
        assert!((view.zoom - 0.48).abs() < 1e-4);
        let anchor = pos2(100.0, 50.0);
        let before = view.image_point(anchor, pane);
        view.zoom_by(3.0, anchor, pane);
        let after = view.image_point(anchor, pane);
        assert!(before.distance(after) < 1e-3);
        assert!(!view.follow_fit);
        let back = view.screen_point(view.image_point(pos2(200.0, 120.0), pane), pane);
        assert!(back.distance(pos2(200.0, 120.0)) < 1e-3);
        view.actual_pixels(2.0);
        assert_eq!(view.zoom, 0.5);
    }
}
