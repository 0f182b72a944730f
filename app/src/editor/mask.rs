//! The painted mask: one byte per image pixel (255 = edit), with the brush, eraser, rectangle,
//! lasso and the whole-mask operations. Everything here is plain data, so it is tested without
//! a window; the canvas turns pointer input into these calls.

use prism_engine::imageio::Mask;

/// Pixels changed since the overlay texture was last updated: `[x0, y0, x1, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyRect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl DirtyRect {
    fn union(self, other: Self) -> Self {
        Self { x0: self.x0.min(other.x0), y0: self.y0.min(other.y0), x1: self.x1.max(other.x1), y1: self.y1.max(other.y1) }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MaskLayer {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
    dirty: Option<DirtyRect>,
}

/// A round brush: radius in image pixels; hardness 1 = hard edge, 0 = soft all the way in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Brush {
    pub radius: f32,
    pub hardness: f32,
    /// Eraser: removes from the mask instead of adding.
    pub erase: bool,
}

impl MaskLayer {
    pub fn new(width: usize, height: usize) -> Self {
        Self { width, height, data: vec![0; width * height], dirty: Some(Self::full(width, height)) }
    }

    fn full(width: usize, height: usize) -> DirtyRect {
        DirtyRect { x0: 0, y0: 0, x1: width, y1: height }
    }

    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v == 0)
    }

    /// Fraction of pixels painted at least half.
    pub fn coverage(&self) -> f32 {
        let painted = self.data.iter().filter(|&&v| v >= 128).count();
        painted as f32 / self.data.len().max(1) as f32
    }

    pub fn at(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// The region changed since the last call, for a partial texture update.
    pub fn take_dirty(&mut self) -> Option<DirtyRect> {
        self.dirty.take()
    }

    pub fn mark_all_dirty(&mut self) {
        self.dirty = Some(Self::full(self.width, self.height));
    }

    fn touch(&mut self, rect: DirtyRect) {
        self.dirty = Some(match self.dirty {
            Some(d) => d.union(rect),
            None => rect,
        });
    }

    fn put(&mut self, index: usize, coverage: f32, erase: bool) {
        let value = (coverage.clamp(0.0, 1.0) * 255.0).round() as u8;
        let old = self.data[index];
        self.data[index] = if erase { old.min(255 - value) } else { old.max(value) };
    }

    /// One round dab of `brush` centred at (cx, cy) in image pixels.
    pub fn dab(&mut self, cx: f32, cy: f32, brush: Brush) {
        let r = brush.radius.max(0.5);
        let inner = r * brush.hardness.clamp(0.0, 1.0);
        let x0 = (cx - r).floor().max(0.0) as usize;
        let y0 = (cy - r).floor().max(0.0) as usize;
        let x1 = ((cx + r).ceil() as isize + 1).clamp(0, self.width as isize) as usize;
        let y1 = ((cy + r).ceil() as isize + 1).clamp(0, self.height as isize) as usize;
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for y in y0..y1 {
            for x in x0..x1 {
                // Pixel centres at +0.5, so a dab at (10, 10) covers pixels 9 and 10 symmetrically.
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                if d > r {
                    continue;
                }
                let coverage = if d <= inner { 1.0 } else { 1.0 - smoothstep((d - inner) / (r - inner).max(1e-3)) };
                self.put(y * self.width + x, coverage, brush.erase);
            }
        }
        self.touch(DirtyRect { x0, y0, x1, y1 });
    }

    /// Dabs along the segment from `a` to `b`, close enough to leave no gaps.
    pub fn stroke(&mut self, a: (f32, f32), b: (f32, f32), brush: Brush) {
        let length = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let spacing = (brush.radius * 0.25).max(0.5);
        let steps = (length / spacing).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            self.dab(a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, brush);
        }
    }

    /// Fills the axis-aligned rectangle between two corners (image pixels, any order).
    pub fn fill_rect(&mut self, a: (f32, f32), b: (f32, f32), erase: bool) {
        let clamp_x = |v: f32| (v.round().max(0.0) as usize).min(self.width);
        let clamp_y = |v: f32| (v.round().max(0.0) as usize).min(self.height);
        let (x0, x1) = (clamp_x(a.0.min(b.0)), clamp_x(a.0.max(b.0)));
        let (y0, y1) = (clamp_y(a.1.min(b.1)), clamp_y(a.1.max(b.1)));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(y * self.width + x, 1.0, erase);
            }
        }
        self.touch(DirtyRect { x0, y0, x1, y1 });
    }

    /// Fills a closed polygon (the lasso) with the even-odd rule, testing pixel centres.
    pub fn fill_polygon(&mut self, points: &[(f32, f32)], erase: bool) {
        if points.len() < 3 {
            return;
        }
        let min_y = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
        let max_y = (points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max).ceil().max(0.0) as usize).min(self.height);
        let mut crossings = Vec::new();
        let (mut x_lo, mut x_hi) = (self.width, 0);
        for y in min_y..max_y {
            let cy = y as f32 + 0.5;
            crossings.clear();
            for i in 0..points.len() {
                let (p, q) = (points[i], points[(i + 1) % points.len()]);
                if (p.1 <= cy) != (q.1 <= cy) {
                    crossings.push(p.0 + (cy - p.1) / (q.1 - p.1) * (q.0 - p.0));
                }
            }
            crossings.sort_by(f32::total_cmp);
            for pair in crossings.chunks_exact(2) {
                // Pixel x is inside when its centre x + 0.5 lies in [pair0, pair1).
                let start = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let end = ((pair[1] - 0.5).ceil().max(0.0) as usize).min(self.width);
                for x in start..end {
                    self.put(y * self.width + x, 1.0, erase);
                }
                if start < end {
                    x_lo = x_lo.min(start);
                    x_hi = x_hi.max(end);
                }
            }
        }
        if x_lo < x_hi {
            self.touch(DirtyRect { x0: x_lo, y0: min_y, x1: x_hi, y1: max_y });
        }
    }

    pub fn clear(&mut self) {
        self.data.fill(0);
        self.mark_all_dirty();
    }

    pub fn invert(&mut self) {
        self.data.iter_mut().for_each(|v| *v = 255 - *v);
        self.mark_all_dirty();
    }

    /// Grows (positive) or shrinks (negative) the mask by `pixels`, with a square window.
    pub fn grow(&mut self, pixels: i32) {
        if pixels == 0 {
            return;
        }
        let radius = pixels.unsigned_abs() as usize;
        let pick = if pixels > 0 { u8::max } else { u8::min };
        let (w, h) = (self.width, self.height);
        // Separable: rows, then columns. O(pixels x radius), fine for the few-pixel radii used.
        let mut rows = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let (a, b) = (x.saturating_sub(radius), (x + radius + 1).min(w));
                rows[y * w + x] = self.data[y * w + a..y * w + b].iter().copied().reduce(pick).unwrap_or(0);
            }
        }
        for y in 0..h {
            let (a, b) = (y.saturating_sub(radius), (y + radius + 1).min(h));
            for x in 0..w {
                self.data[y * w + x] = (a..b).map(|yy| rows[yy * w + x]).reduce(pick).unwrap_or(0);
            }
        }
        self.mark_all_dirty();
    }

    /// Softens the mask's edge by `radius` pixels (what hardness does for one dab, for all of it).
    pub fn feather(&mut self, radius: usize) {
        let soft = self.to_engine().feathered(radius);
        *self = Self::from_engine(&soft);
    }

    /// The engine's float mask (1 = edit).
    pub fn to_engine(&self) -> Mask {
        Mask { width: self.width, height: self.height, data: self.data.iter().map(|&v| f32::from(v) / 255.0).collect() }
    }

    pub fn from_engine(mask: &Mask) -> Self {
        let data = mask.data.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        Self { width: mask.width, height: mask.height, data, dirty: Some(Self::full(mask.width, mask.height)) }
    }

    /// The same mask at another size (after an upscale, or for an imported mask image).
    pub fn resized(&self, width: usize, height: usize) -> Self {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        Self::from_engine(&self.to_engine().resized(width, height))
    }
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARD: Brush = Brush { radius: 4.0, hardness: 1.0, erase: false };

    #[test]
    fn a_hard_dab_covers_its_disc_and_nothing_else() {
        let mut mask = MaskLayer::new(32, 32);
        mask.take_dirty();
        mask.dab(16.0, 16.0, HARD);
        let painted = mask.data.iter().filter(|&&v| v == 255).count();
        // Area of a radius-4 disc is ~50 pixels.
        assert!((44..=56).contains(&painted), "{painted}");
        assert_eq!(mask.at(16, 16), 255);
        assert_eq!(mask.at(16, 21), 0);
        assert_eq!(mask.at(0, 0), 0);
        let dirty = mask.take_dirty().expect("a dab marks its pixels");
        assert!(dirty.x0 <= 12 && dirty.x1 >= 20 && dirty.x1 <= 22);
    }

    #[test]
    fn a_soft_brush_ramps_and_the_eraser_removes() {
        let mut mask = MaskLayer::new(32, 32);
        mask.dab(16.0, 16.0, Brush { radius: 8.0, hardness: 0.0, erase: false });
        let (centre, edge) = (mask.at(16, 16), mask.at(16, 22));
        assert!(centre > 240 && edge > 0 && edge < 128, "{centre} {edge}");
        mask.dab(16.0, 16.0, Brush { radius: 3.0, hardness: 1.0, erase: true });
        assert_eq!(mask.at(16, 16), 0);
        assert!(mask.at(16, 22) > 0);
    }

    #[test]
    fn a_stroke_leaves_no_gaps_and_stays_inside_the_image() {
        let mut mask = MaskLayer::new(40, 10);
        mask.stroke((-5.0, 5.0), (50.0, 5.0), Brush { radius: 2.0, hardness: 1.0, erase: false });
        assert!((0..40).all(|x| mask.at(x, 5) == 255));
        assert_eq!(mask.at(20, 0), 0);
    }

    #[test]
    fn rectangle_lasso_invert_clear() {
        let mut mask = MaskLayer::new(20, 20);
        mask.fill_rect((15.0, 15.0), (5.0, 5.0), false);
        assert_eq!(mask.data.iter().filter(|&&v| v == 255).count(), 100);
        mask.clear();
        assert!(mask.is_empty());
        // A right triangle with legs of 10: about 50 pixels.
        mask.fill_polygon(&[(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)], false);
        let inside = mask.data.iter().filter(|&&v| v == 255).count();
        assert!((45..=55).contains(&inside), "{inside}");
        assert_eq!(mask.at(1, 1), 255);
        assert_eq!(mask.at(9, 9), 0);
        mask.invert();
        assert_eq!(mask.at(1, 1), 0);
        assert_eq!(mask.at(9, 9), 255);
    }

    #[test]
    fn grow_and_shrink_move_the_edge_by_the_radius() {
        let mut mask = MaskLayer::new(30, 30);
        mask.fill_rect((10.0, 10.0), (20.0, 20.0), false);
        mask.grow(2);
        assert_eq!(mask.data.iter().filter(|&&v| v == 255).count(), 14 * 14);
        mask.grow(-4);
        assert_eq!(mask.data.iter().filter(|&&v| v == 255).count(), 6 * 6);
    }

    #[test]
    fn engine_round_trip_and_resize() {
        let mut mask = MaskLayer::new(8, 6);
        mask.fill_rect((0.0, 0.0), (4.0, 6.0), false);
        let engine = mask.to_engine();
        assert_eq!(engine.data[0], 1.0);
        assert_eq!(engine.data[7], 0.0);
        assert_eq!(MaskLayer::from_engine(&engine).data, mask.data);
        let big = mask.resized(16, 12);
        assert_eq!((big.width, big.height), (16, 12));
        assert_eq!(big.at(1, 1), 255);
        assert_eq!(big.at(15, 11), 0);
    }
}
