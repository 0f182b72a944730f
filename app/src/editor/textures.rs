//! GPU textures of the images on screen and of the mask overlay. Images larger than the GPU's
//! texture limit are shown downscaled (edits always run on the full image).

use std::sync::Arc;

use eframe::egui::{self, ColorImage, TextureHandle, TextureId, TextureOptions};
use prism_engine::imageio::RgbImage;

use super::mask::MaskLayer;

/// Textures kept for images recently shown (current, original, lightbox results...).
const CACHED_IMAGES: usize = 12;

/// Sharp pixels when zoomed in, smooth (mipmapped) when zoomed out.
const IMAGE_OPTIONS: TextureOptions = TextureOptions {
    magnification: egui::TextureFilter::Nearest,
    minification: egui::TextureFilter::Linear,
    wrap_mode: egui::TextureWrapMode::ClampToEdge,
    mipmap_mode: Some(egui::TextureFilter::Linear),
};

pub fn to_color_image(image: &RgbImage, max_side: usize) -> ColorImage {
    let scale = (max_side as f32 / image.width.max(image.height) as f32).min(1.0);
    let shown;
    let source = if scale < 1.0 {
        shown = image.resized(((image.width as f32 * scale) as usize).max(1), ((image.height as f32 * scale) as usize).max(1));
        &shown
    } else {
        image
    };
    let bytes: Vec<u8> = source.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    ColorImage::from_rgb([source.width, source.height], &bytes)
}

#[derive(Default)]
pub struct ImageTextures {
    /// The image is kept alive with its texture, so its address is a stable key.
    entries: Vec<(Arc<RgbImage>, TextureHandle)>,
}

impl ImageTextures {
    pub fn get(&mut self, ctx: &egui::Context, image: &Arc<RgbImage>) -> TextureId {
        if let Some(index) = self.entries.iter().position(|(i, _)| Arc::ptr_eq(i, image)) {
            // Most recently used last.
            let entry = self.entries.remove(index);
            let id = entry.1.id();
            self.entries.push(entry);
            return id;
        }
        let max_side = ctx.input(|i| i.max_texture_side);
        let texture = ctx.load_texture("prism-image", to_color_image(image, max_side), IMAGE_OPTIONS);
        let id = texture.id();
        self.entries.push((image.clone(), texture));
        if self.entries.len() > CACHED_IMAGES {
            drop(self.entries.remove(0));
        }
        id
    }
}

/// The mask drawn over the image: the overlay colour with the mask as alpha. Strokes update only
/// the rectangle they touched.
pub struct OverlayTexture {
    texture: TextureHandle,
    size: [usize; 2],
    color: [u8; 3],
    /// Texture pixels per mask pixel (below 1 for images over the texture limit).
    scale: f32,
}

impl OverlayTexture {
    fn pixels(mask: &MaskLayer, color: [u8; 3], x0: usize, y0: usize, x1: usize, y1: usize) -> ColorImage {
        let mut rgba = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
        for y in y0..y1 {
            for &value in &mask.data[y * mask.width + x0..y * mask.width + x1] {
                rgba.extend_from_slice(&[color[0], color[1], color[2], value]);
            }
        }
        ColorImage::from_rgba_unmultiplied([x1 - x0, y1 - y0], &rgba)
    }

    /// Brings the texture up to date with `mask` and returns it.
    pub fn update(slot: &mut Option<Self>, ctx: &egui::Context, mask: &mut MaskLayer, color: [u8; 3]) -> TextureId {
        let max_side = ctx.input(|i| i.max_texture_side);
        let scale = (max_side as f32 / mask.width.max(mask.height) as f32).min(1.0);
        let dirty = mask.take_dirty();
        let fits = slot.as_ref().is_some_and(|o| o.size == [mask.width, mask.height] && o.color == color);
        match slot {
            Some(overlay) if fits => {
                if let Some(d) = dirty {
                    if overlay.scale < 1.0 {
                        overlay.texture.set(Self::scaled(mask, color, scale), TextureOptions::LINEAR);
                    } else if d.x0 < d.x1 && d.y0 < d.y1 {
                        overlay.texture.set_partial(
                            [d.x0, d.y0],
                            Self::pixels(mask, color, d.x0, d.y0, d.x1, d.y1),
                            TextureOptions::LINEAR,
                        );
                    }
                }
                overlay.texture.id()
            }
            _ => {
                let image = if scale < 1.0 {
                    Self::scaled(mask, color, scale)
                } else {
                    Self::pixels(mask, color, 0, 0, mask.width, mask.height)
                };
                let texture = ctx.load_texture("prism-mask", image, TextureOptions::LINEAR);
                let id = texture.id();
                *slot = Some(Self { texture, size: [mask.width, mask.height], color, scale });
                id
            }
        }
    }

    fn scaled(mask: &MaskLayer, color: [u8; 3], scale: f32) -> ColorImage {
        let (w, h) = (((mask.width as f32 * scale) as usize).max(1), ((mask.height as f32 * scale) as usize).max(1));
        let small = mask.resized(w, h);
        Self::pixels(&small, color, 0, 0, w, h)
    }
}
