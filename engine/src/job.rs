//! One edit: choose the region, cut it into model-sized pieces, run them, paste the result back.
//!
//! Local tools (object removal) crop around the mask's bounding box with context, shrink the crop
//! to the working size if it is larger, hide the masked pixels from the model (showing it the
//! model's [`HoleFill`] there), and paste the fill back into the masked pixels only. Global tools
//! run over the mask's bounding box (or the whole image) in overlapping tiles blended with linear
//! ramps, so no tile is ever larger than `TILE` pixels a side however large the photo. Upscaling
//! tools resize the image first and then refine it tile by tile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use crate::adapter::Region;
use crate::backends::{AdapterBank, Backend, BackendKind, MemoryReport, Precision};
use crate::deblur_prepass::SharpenPass;
use crate::denoise_prepass::{dct_denoise, estimate_noise};
use crate::error::{EngineError, Result};
use crate::fill_detail::{DETAIL_GAIN, add_fill_detail};
use crate::hole_fill::{HoleFill, PLATE_SHARE};
use crate::imageio::{Mask, RgbImage};
use crate::mix::Mix;
use crate::settings::{DEFAULT_BLUR_SIZE, ToolSetting, auto_exposure, expose};
use crate::upscale_prepass::Upsampling;

pub type JobId = u64;

/// Side of the largest square the model sees at once.
pub const TILE: usize = 512;
/// Overlap between neighbouring tiles, blended linearly.
pub const OVERLAP: usize = 32;
/// Feather radius of a global tool's paste-back mask, in pixels.
pub const FEATHER: usize = 3;
/// A mask value above this marks a pixel to edit (and, for local tools, hides it from the model).
pub const HIDDEN: f32 = 0.5;

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct EditJob {
    pub id: JobId,
    pub image: Arc<RgbImage>,
    /// 1 = edit. None: the whole image (global tools only).
    pub mask: Option<Arc<Mask>>,
    /// Installed adapters and their weights; one entry for a single tool.
    pub mix: Mix,
    pub strength: f32,
    /// None: whichever runs faster on the backend ([`Backend::preferred_precision`]).
    pub precision: Option<Precision>,
    /// Stops of exposure added to the input of tools that take it (`ToolSetting::Exposure`);
    /// None: estimated from the image (`auto_exposure`). Other tools ignore it.
    pub exposure: Option<f32>,
    /// The blur size, in pixels, for tools that take it (`ToolSetting::BlurSize`, `DeblurSize`);
    /// None: the default, or the size read from the image for a deblurring tool (`SharpenPass`:
    /// a photo read as shaken is unsharp-masked at the default). Other tools ignore it.
    pub blur_size: Option<f32>,
    /// The noise level, in 8-bit levels, for tools that take it (`ToolSetting::NoiseLevel`); None:
    /// estimated from the image (`estimate_noise`). Other tools ignore it.
    pub noise_level: Option<f32>,
    /// Local tools: how much of the surroundings the model sees on each side of the hole, as a
    /// fraction of the hole's size ([`DEFAULT_CONTEXT`]; the lightbox compares others).
    pub context: f32,
    /// Local tools on a model that refines a smooth guess (model v2): how much of the
    /// surroundings' texture its fill takes, as a multiple of [`DETAIL_GAIN`] (0: the smooth
    /// fill; [`DEFAULT_TEXTURE`]). A model that paints its own fill (blank holes) ignores it.
    pub texture: f32,
}

/// Context on each side of a hole, as a fraction of its size: half.
pub const DEFAULT_CONTEXT: f32 = 0.5;
/// The context a job may ask for.
pub const CONTEXT_RANGE: std::ops::RangeInclusive<f32> = 0.1..=2.0;
/// A fill's texture, as a multiple of the gain chosen on training photos.
pub const DEFAULT_TEXTURE: f32 = 1.0;
/// The texture a job may ask for.
pub const TEXTURE_RANGE: std::ops::RangeInclusive<f32> = 0.0..=2.0;

/// How the job went, for the status bar and the output's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStats {
    pub backend: BackendKind,
    pub device: String,
    pub precision: Precision,
    /// Binding the adapters: the tool switch.
    pub switch_time: Duration,
    pub forward_time: Duration,
    pub total_time: Duration,
    pub tiles: usize,
    pub memory: MemoryReport,
    /// Stops the input was brightened by, for tools that take an exposure.
    pub exposure: Option<f32>,
    /// How the input was sharpened first, and at what blur size, for tools that take one.
    pub sharpen: Option<SharpenPass>,
    /// The noise level (8-bit levels) the input was shrunk at, for tools that take one.
    pub noise_level: Option<f32>,
    /// The texture a removal's fill took (`EditJob::texture`), on a model whose fill takes any.
    pub texture: Option<f32>,
}

/// Runs `job` on `backend`. `progress(done, total)` is called after every tile and returns false
/// to cancel.
pub fn run_edit(
    backend: &mut dyn Backend,
    job: &EditJob,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<(RgbImage, JobStats)> {
    let started = Instant::now();
    let plan = plan_job(backend, job)?;
    let switch_start = Instant::now();
    let precision = job.precision.unwrap_or_else(|| backend.preferred_precision());
    backend.bind(&job.mix, job.strength, precision)?;
    let switch_time = switch_start.elapsed();
    let mut forward_time = Duration::ZERO;
    // The model's view of the photo: the tools' settings folded in (the result is pasted onto the
    // photo itself).
    let exposure = plan.exposure.then(|| job.exposure.unwrap_or_else(|| auto_exposure(&job.image)));
    let sharpen = match plan.blur {
        Some(ToolSetting::DeblurSize) => Some(SharpenPass::for_photo(&job.image, job.blur_size)),
        Some(_) => Some(SharpenPass::Unsharp(job.blur_size.unwrap_or(DEFAULT_BLUR_SIZE))),
        None => None,
    };
    let noise_level = plan.noise_level.then(|| job.noise_level.unwrap_or_else(|| estimate_noise(&job.image) * 255.0));
    let mut view = None;
    if let Some(level) = noise_level {
        view = Some(dct_denoise(&job.image, level / 255.0));
    }
    if let Some(stops) = exposure {
        // Shrunk first when a tool of the mix takes a noise level: brightening scales the grain.
        view = Some(expose(view.as_ref().unwrap_or(&job.image), stops));
    }
    if let Some(pass) = sharpen {
        view = Some(pass.apply(view.as_ref().unwrap_or(&job.image)));
    }
    let hole_fill = backend.config().hole_fill;
    let mut run = |input: &RgbImage, mask: &Mask, hide_masked: bool| -> Result<RgbImage> {
        let tensor = model_input(input, mask, hide_masked.then_some(hole_fill))?;
        let start = Instant::now();
        let residual = backend.forward(&tensor)?;
        forward_time += start.elapsed();
        add_residual(&tensor, &residual)
    };
    let image = &job.image;
    let view = view.as_ref().unwrap_or(image);
    // A model that refines a smooth first guess fills smoothly: it takes the surroundings' texture
    // from the extrapolation's detail. One trained on blank holes paints its own.
    let texture = (plan.region == Region::Local && !hole_fill.is_blank()).then_some(job.texture);
    let (result, tiles) = match plan.region {
        Region::Local => {
            let mask = job.mask.as_deref().ok_or_else(|| EngineError::Job("paint over what to remove first".into()))?;
            let detail_gain = DETAIL_GAIN * texture.unwrap_or(0.0);
            let out = local_edit(image, view, mask, job.context, plan.alignment, hole_fill, detail_gain, &mut run, progress)?;
            (out, 1)
        }
        Region::Global => {
            global_edit(image, view, job.mask.as_deref(), (plan.scale, plan.upsampling), plan.alignment, &mut run, progress)?
        }
    };
    let stats = JobStats {
        backend: backend.kind(),
        device: backend.device(),
        precision,
        switch_time,
        forward_time,
        total_time: started.elapsed(),
        tiles,
        memory: backend.memory(),
        exposure,
        sharpen,
        noise_level,
        texture,
    };
    Ok((result, stats))
}

struct Plan {
    region: Region,
    /// The settings the mix's tools take.
    exposure: bool,
    /// `BlurSize` or `DeblurSize`: how the input is sharpened first.
    blur: Option<ToolSetting>,
    noise_level: bool,
    scale: usize,
    upsampling: Upsampling,
    alignment: usize,
}

/// An error naming `what` unless `value` lies in `range` (NaN lies in none); `unit` follows the range.
fn within(what: &str, value: f32, range: std::ops::RangeInclusive<f32>, unit: &str) -> Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(EngineError::Job(format!("{what} {value} is outside {}..{}{unit}", range.start(), range.end())))
}

fn plan_job(backend: &dyn Backend, job: &EditJob) -> Result<Plan> {
    if job.mix.is_empty() {
        return Err(EngineError::Job("choose a tool first".into()));
    }
    if !job.strength.is_finite() || !(0.0..=4.0).contains(&job.strength) {
        return Err(EngineError::Job(format!("strength {} is outside 0..4", job.strength)));
    }
    within("context", job.context, CONTEXT_RANGE, " of the hole's size")?;
    within("texture", job.texture, TEXTURE_RANGE, "")?;
    for (setting, value) in [
        (ToolSetting::Exposure, job.exposure),
        (ToolSetting::BlurSize, job.blur_size),
        (ToolSetting::NoiseLevel, job.noise_level),
    ] {
        if let Some(value) = value {
            within(setting.describe(), value, setting.range(), "")?;
        }
    }
    let mut installed = AdapterBank::default();
    for info in backend.installed() {
        installed.insert(info);
    }
    let mut region = Region::Global;
    let (mut exposure, mut blur, mut noise_level) = (false, None, false);
    let mut scale = None;
    let mut upsampling = None;
    for (info, _) in installed.resolve(&job.mix)? {
        if info.meta.region == Region::Local {
            region = Region::Local;
        }
        exposure |= info.meta.setting == Some(ToolSetting::Exposure);
        match info.meta.setting {
            // A deblurring tool's pass serves an unsharp-masking tool mixed with it (they do not
            // share a model today: the shipped sharpen unsharp-masks, model v2's deblurs).
            Some(ToolSetting::DeblurSize) => blur = Some(ToolSetting::DeblurSize),
            Some(ToolSetting::BlurSize) => blur = blur.or(Some(ToolSetting::BlurSize)),
            _ => {}
        }
        noise_level |= info.meta.setting == Some(ToolSetting::NoiseLevel);
        match scale {
            Some(s) if s != info.meta.scale => {
                return Err(EngineError::Job("tools that change the image size cannot be mixed with tools that do not".into()));
            }
            _ => scale = Some(info.meta.scale),
        }
        if info.meta.scale != 1 {
            match upsampling {
                Some(u) if u != info.meta.upsampling => {
                    return Err(EngineError::Job("these upscalers were trained on differently enlarged inputs".into()));
                }
                _ => upsampling = Some(info.meta.upsampling),
            }
        }
    }
    let scale = scale.unwrap_or(1) as usize;
    let image = &job.image;
    if let Some(mask) = &job.mask {
        if (mask.width, mask.height) != (image.width, image.height) {
            return Err(EngineError::Job(format!(
                "the mask is {}x{} but the image is {}x{}",
                mask.width, mask.height, image.width, image.height
            )));
        }
        if mask.bounding_box().is_none() {
            return Err(EngineError::Job(
                "the mask is empty: paint the region to edit, or clear the mask to edit everything".into(),
            ));
        }
        if scale != 1 {
            return Err(EngineError::Job("the upscaler works on the whole image; clear the mask".into()));
        }
    } else if region == Region::Local {
        return Err(EngineError::Job("this tool fills a painted region: paint over what to remove first".into()));
    }
    if region == Region::Local && job.mask.as_ref().is_some_and(|m| m.data.iter().all(|&v| v > HIDDEN)) {
        return Err(EngineError::Job(
            "the mask covers the whole photo, so there is nothing left to fill from: paint only what to remove".into(),
        ));
    }
    let upsampling = upsampling.unwrap_or_default();
    Ok(Plan { region, exposure, blur, noise_level, scale, upsampling, alignment: backend.alignment() })
}

/// `[1,H,W,4]`: RGB in [-1,1] and the binary mask. With `hide`, the masked pixels are hidden
/// from the model and shown as that fill instead (local tools); without, they are shown as they are.
pub fn model_input(image: &RgbImage, mask: &Mask, hide: Option<HoleFill>) -> Result<Tensor> {
    let edit: Vec<bool> = mask.data.iter().map(|&m| m > HIDDEN).collect();
    let filled = hide.and_then(|fill| fill.fill(image, &edit));
    let shown = filled.as_ref().unwrap_or(image);
    let blank = hide == Some(HoleFill::Blank);
    let mut data = Vec::with_capacity(image.width * image.height * 4);
    for (pixel, &edit) in shown.data.chunks_exact(3).zip(&edit) {
        let keep = if blank && edit { 0.0 } else { 1.0 };
        data.extend(pixel.iter().map(|v| (v * 2.0 - 1.0) * keep));
        data.push(if edit { 1.0 } else { 0.0 });
    }
    Ok(Tensor::from_vec(data, (1, image.height, image.width, 4), &Device::Cpu)?)
}

/// The model's view of its input plus the residual, back in [0, 1]. Hidden (masked) pixels show
/// the config's hole fill in that view, so there the residual is the rest of the fill.
pub fn add_residual(input: &Tensor, residual: &Tensor) -> Result<RgbImage> {
    let (_, height, width, _) = input.dims4()?;
    let seen = input.narrow(3, 0, 3)?.flatten_all()?.to_vec1::<f32>()?;
    let values = residual.flatten_all()?.to_vec1::<f32>()?;
    if values.len() != seen.len() {
        return Err(EngineError::Model("the model returned a residual of the wrong size".into()));
    }
    let data = seen.iter().zip(&values).map(|(x, r)| ((x + r + 1.0) * 0.5).clamp(0.0, 1.0)).collect();
    Ok(RgbImage { width, height, data })
}

type RunFn<'a> = dyn FnMut(&RgbImage, &Mask, bool) -> Result<RgbImage> + 'a;

/// `view` is what the model sees of `image` (the same size); the result is pasted onto `image`.
/// At the working size, a fill that refines the model's `hole_fill` guess moves a share of the way
/// to the thin plate (`HoleFill::toward_thin_plate`), then takes `detail_gain` of the
/// extrapolation's detail (`fill_detail`).
#[allow(clippy::too_many_arguments)]
fn local_edit(
    image: &RgbImage,
    view: &RgbImage,
    mask: &Mask,
    context: f32,
    alignment: usize,
    hole_fill: HoleFill,
    detail_gain: f32,
    run: &mut RunFn<'_>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<RgbImage> {
    let (x0, y0, x1, y1) = mask.bounding_box().ok_or_else(|| EngineError::Job("the mask is empty".into()))?;
    // Context around the hole: `context` of its size (half by default), at least 32 pixels,
    // clipped to the image.
    let margin = (((x1 - x0).max(y1 - y0) as f32 * context) as usize).max(32);
    let cx0 = x0.saturating_sub(margin);
    let cy0 = y0.saturating_sub(margin);
    let cx1 = (x1 + margin).min(image.width);
    let cy1 = (y1 + margin).min(image.height);
    let (cw, ch) = (cx1 - cx0, cy1 - cy0);
    let crop = view.crop_clamped(cx0 as isize, cy0 as isize, cw, ch);
    let crop_mask = mask.crop_clamped(cx0 as isize, cy0 as isize, cw, ch);
    // Shrink to the working size when larger, then round up to the model's alignment.
    let shrink = (TILE as f32 / cw.max(ch) as f32).min(1.0);
    let round_up = |v: f32| ((v.round() as usize).max(1)).div_ceil(alignment) * alignment;
    let (ww, wh) = (round_up(cw as f32 * shrink), round_up(ch as f32 * shrink));
    let work = crop.resized(ww, wh);
    let work_mask = crop_mask.resized(ww, wh);
    if !progress(0, 1) {
        return Err(EngineError::Cancelled);
    }
    let filled = run(&work, &work_mask, true)?;
    let hidden: Vec<bool> = work_mask.data.iter().map(|&m| m > HIDDEN).collect();
    let filled = hole_fill.toward_thin_plate(&filled, &work, &hidden, PLATE_SHARE);
    let result = add_fill_detail(&filled, &work, &hidden, detail_gain).resized(cw, ch);
    progress(1, 1);
    // The fill goes exactly where the model was asked to fill (the pixels it did not see) and
    // nowhere else: outside the hole the photo stays as it was. A feather reaching outwards
    // blended the model's resampled view of the surroundings into them, a light or dark halo.
    let mut out = image.clone();
    for y in 0..ch {
        for x in 0..cw {
            if crop_mask.at(x, y) <= HIDDEN {
                continue;
            }
            let o = ((cy0 + y) * image.width + cx0 + x) * 3;
            let r = (y * cw + x) * 3;
            out.data[o..o + 3].copy_from_slice(&result.data[r..r + 3]);
        }
    }
    Ok(out)
}

/// Start offsets of tiles of `tile` covering `[0, len)` with at least `OVERLAP` overlap.
fn tile_starts(len: usize, tile: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let step = tile - OVERLAP;
    let count = (len - OVERLAP).div_ceil(step);
    (0..count).map(|i| (i * step).min(len - tile)).collect()
}

/// `view` is what the model sees of `image` (the same size); the result is pasted onto `image`.
fn global_edit(
    image: &RgbImage,
    view: &RgbImage,
    mask: Option<&Mask>,
    (scale, upsampling): (usize, Upsampling),
    alignment: usize,
    run: &mut RunFn<'_>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<(RgbImage, usize)> {
    let resize = |i: &RgbImage| upsampling.enlarge(i, scale);
    let source = resize(image)?;
    let resized_view = if std::ptr::eq(view, image) { None } else { Some(resize(view)?) };
    let view_source = resized_view.as_ref().unwrap_or(&source);
    let (w, h) = (source.width, source.height);
    // Region to process: the mask's box plus room for the feather, or everything.
    let (rx0, ry0, rx1, ry1) = match mask.and_then(Mask::bounding_box) {
        Some((x0, y0, x1, y1)) => {
            let pad = 2 * FEATHER + 8;
            (x0.saturating_sub(pad), y0.saturating_sub(pad), (x1 + pad).min(w), (y1 + pad).min(h))
        }
        None => (0, 0, w, h),
    };
    let (rw, rh) = (rx1 - rx0, ry1 - ry0);
    let tile_w = rw.min(TILE).div_ceil(alignment) * alignment;
    let tile_h = rh.min(TILE).div_ceil(alignment) * alignment;
    let xs = tile_starts(rw, tile_w);
    let ys = tile_starts(rh, tile_h);
    let total = xs.len() * ys.len();
    let full_mask = Mask::filled(w, h, 1.0);
    let mask_for_model = mask.unwrap_or(&full_mask);
    let mut sum = vec![0f32; rw * rh * 3];
    let mut weight = vec![0f32; rw * rh];
    let mut done = 0;
    if !progress(0, total) {
        return Err(EngineError::Cancelled);
    }
    for &ty in &ys {
        for &tx in &xs {
            let (ox, oy) = ((rx0 + tx) as isize, (ry0 + ty) as isize);
            let tile = view_source.crop_clamped(ox, oy, tile_w, tile_h);
            let tile_mask = mask_for_model.crop_clamped(ox, oy, tile_w, tile_h);
            let result = run(&tile, &tile_mask, false)?;
            for y in 0..tile_h.min(rh - ty) {
                for x in 0..tile_w.min(rw - tx) {
                    let ramp = |d: usize, len: usize| ((d + 1).min(len - d) as f32 / OVERLAP as f32).min(1.0);
                    let wgt = ramp(x, tile_w) * ramp(y, tile_h);
                    let dst = (ty + y) * rw + tx + x;
                    let src = (y * tile_w + x) * 3;
                    weight[dst] += wgt;
                    for c in 0..3 {
                        sum[dst * 3 + c] += result.data[src + c] * wgt;
                    }
                }
            }
            done += 1;
            if !progress(done, total) && done < total {
                return Err(EngineError::Cancelled);
            }
        }
    }
    let soft = mask.map(|m| m.feathered(FEATHER));
    let mut out = source;
    for y in 0..rh {
        for x in 0..rw {
            let (gx, gy) = (rx0 + x, ry0 + y);
            let m = soft.as_ref().map_or(1.0, |s| s.at(gx, gy));
            let i = y * rw + x;
            let o = (gy * w + gx) * 3;
            for c in 0..3 {
                let edited = sum[i * 3 + c] / weight[i].max(1e-6);
                out.data[o + c] = out.data[o + c] * (1.0 - m) + edited * m;
            }
        }
    }
    upsampling.finish(&mut out, view, scale);
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_sees_a_hole_blank_or_filled_and_the_rest_as_it_is() {
        let (w, h) = (24, 16);
        let mut image = RgbImage::new(w, h);
        image.data.iter_mut().for_each(|v| *v = 0.75);
        let mut mask = Mask::filled(w, h, 0.0);
        for y in 4..12 {
            for x in 6..18 {
                mask.data[y * w + x] = 1.0;
                image.data[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(0.0);
            }
        }
        let rgb_at = |t: &Tensor, x: usize, y: usize| t.get(0).unwrap().get(y).unwrap().get(x).unwrap().to_vec1::<f32>().unwrap();
        let inside = |t: &Tensor| rgb_at(t, 10, 8);
        let outside = |t: &Tensor| rgb_at(t, 1, 1);
        let shown = model_input(&image, &mask, None).unwrap();
        let blank = model_input(&image, &mask, Some(HoleFill::Blank)).unwrap();
        let smooth = model_input(&image, &mask, Some(HoleFill::Smooth)).unwrap();
        let harmonic = model_input(&image, &mask, Some(HoleFill::Harmonic)).unwrap();
        // In [-1, 1]: the photo's 0.75 is 0.5, its 0 is -1; the mask channel is 1 in the hole.
        assert_eq!(inside(&shown), vec![-1.0, -1.0, -1.0, 1.0]);
        assert_eq!(inside(&blank), vec![0.0, 0.0, 0.0, 1.0]);
        for filled in [&smooth, &harmonic] {
            assert!(inside(filled)[..3].iter().all(|v| (v - 0.5).abs() < 1e-5), "{:?}", inside(filled));
            assert_eq!(inside(filled)[3], 1.0);
        }
        for t in [&shown, &blank, &smooth, &harmonic] {
            assert_eq!(outside(t), vec![0.5, 0.5, 0.5, 0.0]);
        }
    }

    /// Whatever the model returns, a removal changes only the pixels it filled: the band just
    /// outside the mask keeps the photo exactly (no halo), and the hole gets the model's fill (with
    /// the surroundings' detail on it, or without).
    #[test]
    fn a_removal_leaves_the_band_outside_the_mask_untouched() {
        let image = crate::fixtures::synthetic_photo(300, 200, 3);
        let mut mask = Mask::filled(300, 200, 0.0);
        for y in 80..130 {
            for x in 100..190 {
                // A soft brush edge: the outer ring is painted at 0.3.
                let ring = x == 100 || x == 189 || y == 80 || y == 129;
                mask.data[y * 300 + x] = if ring { 0.3 } else { 1.0 };
            }
        }
        // A model that fills everything with mid gray, whatever it sees.
        let mut run = |input: &RgbImage, _: &Mask, hidden: bool| -> Result<RgbImage> {
            assert!(hidden, "removal hides the hole from the model");
            Ok(RgbImage { width: input.width, height: input.height, data: vec![0.5; input.data.len()] })
        };
        for gain in [0.0, DETAIL_GAIN] {
            let out =
                local_edit(&image, &image, &mask, DEFAULT_CONTEXT, 8, HoleFill::Blank, gain, &mut run, &mut |_, _| true).unwrap();
            let mut inside = Vec::new();
            for (pixel, &m) in mask.data.iter().enumerate() {
                let (a, b) = (&image.data[pixel * 3..pixel * 3 + 3], &out.data[pixel * 3..pixel * 3 + 3]);
                if m > HIDDEN {
                    inside.extend_from_slice(b);
                } else {
                    assert_eq!(a, b, "pixel {pixel} outside the hole (mask {m}) is the photo's own");
                }
            }
            // The model's fill, with the surroundings' detail on it when asked (which averages out).
            let mean = inside.iter().sum::<f32>() / inside.len() as f32;
            let spread = inside.iter().map(|v| (v - 0.5).abs()).fold(0.0f32, f32::max);
            assert!((mean - 0.5).abs() < 0.02, "gain {gain}: the hole's mean {mean}");
            assert_eq!(spread == 0.0, gain == 0.0, "gain {gain}: the hole's largest change {spread}");
        }
    }

    /// A big photo with a big hole: the model sees the hole with its context at most `TILE` a
    /// side (aligned), and the fill is pasted back at the photo's full resolution.
    #[test]
    fn a_big_removal_runs_at_the_working_size_and_pastes_back_at_full_size() {
        let (w, h) = (2000, 1500);
        let image = RgbImage { width: w, height: h, data: vec![0.25; w * h * 3] };
        let mut mask = Mask::filled(w, h, 0.0);
        // An object of about 15% of the frame.
        for y in 400..1000 {
            for x in 600..1350 {
                mask.data[y * w + x] = 1.0;
            }
        }
        let mut seen = Vec::new();
        let mut run = |input: &RgbImage, input_mask: &Mask, _: bool| -> Result<RgbImage> {
            seen.push((input.width, input.height, input_mask.bounding_box()));
            Ok(RgbImage { width: input.width, height: input.height, data: vec![0.75; input.data.len()] })
        };
        let out =
            local_edit(&image, &image, &mask, DEFAULT_CONTEXT, 32, HoleFill::Blank, DETAIL_GAIN, &mut run, &mut |_, _| true)
                .unwrap();
        let [(ww, wh, hole)] = seen[..] else { panic!("one model run, got {seen:?}") };
        assert!(ww <= TILE && wh <= TILE && ww % 32 == 0 && wh % 32 == 0, "working size {ww}x{wh}");
        assert!(ww.max(wh) > TILE / 2, "the working size uses the model's resolution: {ww}x{wh}");
        let (x0, y0, x1, y1) = hole.expect("the hole is in the working crop");
        assert!(x0 > 0 && y0 > 0 && x1 < ww && y1 < wh, "context on every side of the hole: {hole:?} in {ww}x{wh}");
        assert_eq!((out.width, out.height), (w, h));
        assert_eq!(out.data[(700 * w + 900) * 3], 0.75, "the hole is filled");
        assert_eq!(out.data[(100 * w + 100) * 3], 0.25, "the rest is the photo's own");
    }

    /// An upscaler trained on block-matched doubling sees that doubling in every tile, and its
    /// output, whatever the model adds, keeps the photo's 2x2 block means.
    #[test]
    fn a_block_matched_upscale_sees_the_first_pass_and_keeps_the_block_means() {
        let mut low = crate::fixtures::synthetic_photo(300, 170, 5);
        // Kept inside [0.2, 0.8], so no block of the output is clamped off its mean.
        low.data.iter_mut().for_each(|v| *v = 0.2 + 0.6 * *v);
        let first_pass = crate::upscale_prepass::first_pass_double(&low);
        let mut tiles = 0;
        // A model that brightens a little and adds a ripple.
        let mut run = |input: &RgbImage, _: &Mask, _: bool| -> Result<RgbImage> {
            tiles += 1;
            let data = input.data.iter().enumerate().map(|(i, v)| v + 0.03 + 0.02 * ((i % 7) as f32 - 3.0)).collect();
            Ok(RgbImage { width: input.width, height: input.height, data })
        };
        let upscale = (2, Upsampling::BlockMatched);
        let (out, _) = global_edit(&low, &low, None, upscale, 8, &mut run, &mut |_, _| true).unwrap();
        assert!(tiles > 1, "a 600x340 output takes several tiles");
        assert_eq!((out.width, out.height), (600, 340));
        let shrunk = out.box_halved();
        let (mut moved, mut kept) = (0, 0);
        for (i, (got, want)) in shrunk.data.iter().zip(&low.data).enumerate() {
            assert!((got - want).abs() < 1e-4, "block {i}: {got} against the photo's {want}");
            let pixel = (2 * (i / 3 / 300) * 600 + 2 * (i / 3 % 300)) * 3 + i % 3;
            if (out.data[pixel] - first_pass.data[pixel]).abs() > 1e-3 { moved += 1 } else { kept += 1 }
        }
        assert!(moved > kept, "the model's ripple stays in the output ({moved} moved, {kept} kept)");
    }

    #[test]
    fn tiles_cover_with_overlap() {
        assert_eq!(tile_starts(100, 512), vec![0]);
        let starts = tile_starts(1200, 512);
        assert_eq!(*starts.last().unwrap(), 1200 - 512);
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] <= 512 - OVERLAP);
        }
    }
}
