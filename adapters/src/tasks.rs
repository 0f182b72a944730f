//! The seven tools and the degradations that teach them: each makes a (degraded input, mask,
//! clean target) triple from a clean photo crop. Training draws random settings; evaluation uses
//! the fixed settings the quality table names.

use prism_engine::adapter::Region;
use prism_engine::deblur_prepass::SharpenPass;
use prism_engine::denoise_prepass::{dct_denoise, estimate_noise};
use prism_engine::imageio::{Mask, RgbImage};
use prism_engine::photo_fit::PhotoFit;
use prism_engine::settings::{DEFAULT_BLUR_SIZE, ToolSetting, auto_exposure, expose, gaussian_blur, unsharp};
use prism_engine::upscale_prepass::Upsampling;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::train::Penalty;

/// One tool Prism ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    Remove,
    Denoise,
    Sharpen,
    Colorize,
    Lowlight,
    Upscale,
    Dejpeg,
}

pub const ALL_TASKS: [Task; 7] =
    [Task::Remove, Task::Denoise, Task::Sharpen, Task::Colorize, Task::Lowlight, Task::Upscale, Task::Dejpeg];

impl Task {
    pub fn id(self) -> &'static str {
        match self {
            Task::Remove => "remove",
            Task::Denoise => "denoise",
            Task::Sharpen => "sharpen",
            Task::Colorize => "colorize",
            Task::Lowlight => "lowlight",
            Task::Upscale => "upscale",
            Task::Dejpeg => "dejpeg",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        ALL_TASKS.into_iter().find(|t| t.id() == id)
    }

    pub fn title(self) -> &'static str {
        match self {
            Task::Remove => "Remove object",
            Task::Denoise => "Denoise",
            Task::Sharpen => "Sharpen",
            Task::Colorize => "Colorize",
            Task::Lowlight => "Brighten low light",
            Task::Upscale => "Upscale x2",
            Task::Dejpeg => "Remove JPEG artefacts",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Task::Remove => "Fills the painted region from its surroundings: erase objects, people, wires or blemishes.",
            Task::Denoise => "Removes sensor and film grain while keeping edges and texture.",
            Task::Sharpen => "Undoes soft focus and small camera shake (Gaussian and motion blur).",
            Task::Colorize => "Turns a black-and-white photo into a plausible colour one.",
            Task::Lowlight => "Brightens a dark, noisy night shot to normal exposure and cleans its noise.",
            Task::Upscale => "Doubles the width and height, restoring detail instead of smoothing it.",
            Task::Dejpeg => "Cleans blocking and ringing from heavily compressed JPEGs.",
        }
    }

    /// Requests the prompt box routes to this tool by meaning: varied on purpose (plain words, a
    /// photographer's terms, a complaint about the photo), so paraphrases land near one of them.
    pub fn example_prompts(self) -> &'static [&'static str] {
        match self {
            Task::Remove => &[
                "remove the person",
                "erase this object",
                "get rid of the power lines",
                "clean up the spot",
                "delete the thing I painted over",
                "take the stranger out of the picture",
                "retouch away the blemish",
                "cover up the trash can",
                "make the car vanish",
                "fill in where the sign was",
                "cut the tourist out of my holiday photo",
                "content-aware fill",
                "hide the distracting object",
                "paint out what I marked",
                "clear away the clutter",
                "lose the pole",
                "take out the stand",
                "erase the shadow over the table",
                "get rid of the fence",
                "take away the spot on her cheek",
                "remove the photobomber",
                "erase the specks of dust on the lens",
            ],
            Task::Denoise => &[
                "reduce noise",
                "remove grain",
                "make it less grainy",
                "clean up high ISO noise",
                "denoise",
                "the photo is noisy",
                "smooth away the speckles",
                "noise reduction",
                "fix the grainy sky",
                "remove the digital noise from my phone photo",
                "there are colored specks everywhere",
                "clean the static out of the image",
                "the shadows are full of noise",
                "make the skin smooth instead of speckled",
            ],
            Task::Sharpen => &[
                "sharpen",
                "fix the blur",
                "make it crisper",
                "unblur the photo",
                "the picture is out of focus",
                "it came out soft",
                "the camera shook and everything is smeared",
                "bring out the fine detail",
                "make the edges sharp",
                "deblur the shaky shot",
                "improve the focus",
                "it looks fuzzy",
            ],
            Task::Colorize => &[
                "colorize",
                "add color to this black and white photo",
                "make it colour",
                "colour in the old monochrome picture",
                "turn the grayscale image into a color one",
                "give my vintage family photo natural colours",
                "restore the colours of an old black-and-white print",
                "paint realistic colour onto the greyscale photo",
                "it has no colour, add some",
                "recolor the sepia photograph",
                "convert the black and white picture to colour",
            ],
            Task::Lowlight => &[
                "brighten",
                "fix the dark photo",
                "it is too dark",
                "night shot enhance",
                "make it lighter",
                "brighten the underexposed picture",
                "the exposure is too low",
                "lift the shadows",
                "I took it at night and can barely see anything",
                "the indoor photo is too dim",
                "more light please",
                "recover the dark areas",
                "the photo is almost black",
                "you can hardly see anything, it is so dark",
            ],
            Task::Upscale => &[
                "upscale",
                "make it bigger",
                "increase resolution",
                "enlarge 2x",
                "double the size",
                "make a higher resolution version",
                "more pixels for printing",
                "blow it up without losing detail",
                "resize it larger",
                "zoom in and keep it sharp",
                "enlarge the small photo",
                "a larger version of this little picture",
            ],
            Task::Dejpeg => &[
                "remove jpeg artifacts",
                "fix compression blocks",
                "clean up the compression",
                "the image is blocky",
                "remove the 8x8 squares from heavy compression",
                "repair a low quality jpeg",
                "fix the artifacts from saving it too many times",
                "get rid of the pixelated blocks and halos",
                "it was compressed by the messaging app and looks bad",
                "undo the jpeg damage",
            ],
        }
    }

    pub fn region(self) -> Region {
        if self == Task::Remove { Region::Local } else { Region::Global }
    }

    /// How training charges this tool's errors: squared where the input leaves the answer open
    /// (PSNR rewards the mean of the possibilities there), absolute where it pins it down.
    pub fn penalty(self) -> Penalty {
        match self {
            Task::Remove | Task::Colorize | Task::Lowlight | Task::Dejpeg => Penalty::Squared,
            Task::Denoise | Task::Sharpen | Task::Upscale => Penalty::Absolute,
        }
    }

    /// The setting the user gives this tool, which the engine folds into its input: how dark the
    /// whole shot is, how large the blur is and how noisy the file is are in no small window of
    /// the photo.
    pub fn setting(self) -> Option<ToolSetting> {
        match self {
            Task::Lowlight => Some(ToolSetting::Exposure),
            Task::Sharpen => Some(ToolSetting::DeblurSize),
            Task::Denoise | Task::Dejpeg => Some(ToolSetting::NoiseLevel),
            _ => None,
        }
    }

    /// The photos the tool is for: colorize has nothing to do on a photo that has its colours.
    pub fn fits(self) -> PhotoFit {
        if self == Task::Colorize { PhotoFit::Grey } else { PhotoFit::Any }
    }

    /// Output size over input size.
    pub fn scale(self) -> u32 {
        if self == Task::Upscale { 2 } else { 1 }
    }

    /// How the engine enlarges the input of a tool that changes the size (`upscale_input`).
    pub fn upsampling(self) -> Upsampling {
        if self == Task::Upscale { Upsampling::Learned } else { Upsampling::default() }
    }
}

/// One training or evaluation example, all images the same size.
#[derive(Clone, Debug)]
pub struct Example {
    pub input: RgbImage,
    /// 1 = edit (the model's mask channel).
    pub mask: Mask,
    /// Local tools: the masked pixels are hidden from the model.
    pub hide_masked: bool,
    pub target: RgbImage,
    /// Where the loss counts (the mask, or everything).
    pub loss_mask: Mask,
}

/// An object cut-out with alpha, pasted onto photos to make removal examples.
#[derive(Clone, Debug)]
pub struct Stamp {
    pub rgb: RgbImage,
    pub alpha: Mask,
}

/// What the sharpen tool's model is shown in training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SharpenInput {
    /// The file through the pass the engine chooses from it (`SharpenPass`: deconvolved at the
    /// blur size it reads, or unsharp-masked when shaken): what the editor feeds the model.
    #[default]
    Deconvolved,
    /// The blurred file itself: a blind first round, since from nothing a rank-4 adapter on the
    /// pre-passed input stayed within 0.5% of doing nothing. (On v2 the blind round learned, -4.7%,
    /// but the round on the engine's input after it settled at doing nothing again.)
    Blurred,
}

/// Makes a training example of `task` from the clean `target` with random settings.
pub fn degrade(task: Task, target: &RgbImage, stamps: &[Stamp], rng: &mut StdRng) -> Example {
    degrade_with(task, SharpenInput::Deconvolved, target, stamps, rng)
}

/// [`degrade`], with sharpen's input chosen.
pub fn degrade_with(task: Task, sharpen_input: SharpenInput, target: &RgbImage, stamps: &[Stamp], rng: &mut StdRng) -> Example {
    let full = Mask::filled(target.width, target.height, 1.0);
    let global = |input: RgbImage, rng: &mut StdRng| {
        // Now and then a global tool is asked to edit a painted region only.
        if rng.random_bool(0.15) {
            let region = dilate(&stroke_mask(target.width, target.height, rng, 12.0, 40.0), 6);
            Example { input, mask: region.clone(), hide_masked: false, target: target.clone(), loss_mask: region }
        } else {
            Example { input, mask: full.clone(), hide_masked: false, target: target.clone(), loss_mask: full.clone() }
        }
    };
    match task {
        Task::Remove => {
            // Holes shaped like real removals: objects (their cut-out, with the object pasted
            // in), brush strokes thin and wide, and boxes, small to large.
            let kind = rng.random_range(0.0..1.0);
            if !stamps.is_empty() && kind < 0.4 {
                let stamp = &stamps[rng.random_range(0..stamps.len())];
                let (input, mask) = paste_stamp(target, stamp, rng);
                Example { input, mask: mask.clone(), hide_masked: true, target: target.clone(), loss_mask: mask }
            } else {
                let mask = if kind < 0.75 {
                    stroke_mask(target.width, target.height, rng, 4.0, 48.0)
                } else {
                    box_mask(target.width, target.height, rng)
                };
                Example { input: target.clone(), mask: mask.clone(), hide_masked: true, target: target.clone(), loss_mask: mask }
            }
        }
        Task::Denoise => {
            let sigma = rng.random_range(5.0..50.0) / 255.0;
            let shot = if rng.random_bool(0.5) { rng.random_range(0.0..0.02) } else { 0.0 };
            // The engine shrinks the noise first at the level it estimates from the photo.
            global(denoise_prepass(&quantize8(&add_noise(target, sigma, shot, rng))), rng)
        }
        Task::Sharpen => {
            // Soft focus (a Gaussian of sigma 0.6-3 px) or camera shake (a line 3-13 px long), and
            // the pass the engine chooses from the whole photo (a crop has too few edges to read
            // as the photo does): a Gaussian deconvolved at its own size, give or take 15% (on the
            // held-out photos blurred at 2 px it reads 1.94 +- 0.23); a shake unsharp-masked, as
            // the engine does a photo it reads as shaken (`SharpenPass`).
            let (blurred, pass) = if rng.random_bool(0.6) {
                let sigma = rng.random_range(0.6..3.0);
                (gaussian_blur(target, sigma), SharpenPass::Deconvolve(sigma * rng.random_range(0.85..1.18)))
            } else {
                let angle = rng.random_range(0.0..std::f32::consts::PI);
                (motion_blur(target, rng.random_range(3.0..13.0), angle), SharpenPass::Unsharp(DEFAULT_BLUR_SIZE))
            };
            let file = quantize8(&blurred);
            match sharpen_input {
                SharpenInput::Deconvolved => global(pass.apply(&file), rng),
                SharpenInput::Blurred => global(file, rng),
            }
        }
        Task::Colorize => global(quantize8(&grayscale(target)), rng),
        Task::Lowlight => {
            let gain = rng.random_range(0.05..0.35);
            let dark = darken(target, gain, rng.random_range(1.0..1.8));
            let file = quantize8(&add_noise(&dark, rng.random_range(0.5..4.0) / 255.0, rng.random_range(0.0..0.004), rng));
            // The engine brightens the input first, by the user's exposure or its estimate from the
            // whole photo (a crop's own estimate would be far worse): the true one give or take
            // 0.3 stops, about what the estimate misses by on the training photos.
            global(expose(&file, -gain.log2() + rng.random_range(-0.3..0.3)), rng)
        }
        Task::Upscale => global(quantize8(&upscale_input(target)), rng),
        // The engine shrinks a JPEG's noise first at the level its quantization reads.
        Task::Dejpeg => global(denoise_prepass(&jpeg_roundtrip(target, rng.random_range(5..=40))), rng),
    }
}

/// The fixed held-out version of `task` named in the quality table.
pub fn degrade_for_eval(task: Task, target: &RgbImage, rng: &mut StdRng) -> Example {
    let full = Mask::filled(target.width, target.height, 1.0);
    let global = |input: RgbImage| Example {
        input,
        mask: full.clone(),
        hide_masked: false,
        target: target.clone(),
        loss_mask: full.clone(),
    };
    match task {
        Task::Remove => {
            let mask = stroke_mask(target.width, target.height, rng, 10.0, 20.0);
            Example { input: target.clone(), mask: mask.clone(), hide_masked: true, target: target.clone(), loss_mask: mask }
        }
        Task::Denoise => global(quantize8(&add_noise(target, 25.0 / 255.0, 0.0, rng))),
        Task::Sharpen => global(quantize8(&gaussian_blur(target, 2.0))),
        Task::Colorize => global(quantize8(&grayscale(target))),
        Task::Lowlight => global(quantize8(&add_noise(&darken(target, 0.15, 1.4), 2.0 / 255.0, 0.002, rng))),
        Task::Upscale => global(quantize8(&target.box_halved())),
        Task::Dejpeg => global(jpeg_roundtrip(target, 15)),
    }
}

/// A held-out camera shake for sharpen (the tool's description promises it; its own held-out set
/// is blurred at 2 px): `target` moved 4-10 px along a line at any angle during the exposure.
pub fn shaken_for_eval(target: &RgbImage, rng: &mut StdRng) -> Example {
    let (length, angle) = (rng.random_range(4.0..10.0), rng.random_range(0.0..std::f32::consts::PI));
    let full = Mask::filled(target.width, target.height, 1.0);
    let input = quantize8(&motion_blur(target, length, angle));
    Example { input, mask: full.clone(), hide_masked: false, target: target.clone(), loss_mask: full }
}

/// A held-out removal of an object: one of `stamps` (cut-outs, never a held-out photo) pasted into
/// `target` at 15-40% of the crop's side, the mask its outline; the answer is `target` without it.
pub fn object_removal_for_eval(target: &RgbImage, stamps: &[Stamp], rng: &mut StdRng) -> Example {
    let stamp = &stamps[rng.random_range(0..stamps.len())];
    let (input, mask) = paste_stamp_sized(target, stamp, rng.random_range(0.15..0.4), rng);
    Example { input, mask: mask.clone(), hide_masked: true, target: target.clone(), loss_mask: mask }
}

/// The held-out removals of one crop, from one seed: brush strokes (as `degrade_for_eval`) and a
/// pasted object. The eval and the hole-fill comparison both score exactly these.
pub fn removals_for_eval(clean: &RgbImage, stamps: &[Stamp], seed: u64) -> [(RemovalMask, Example); 2] {
    [
        (RemovalMask::Strokes, degrade_for_eval(Task::Remove, clean, &mut StdRng::seed_from_u64(seed))),
        (RemovalMask::Object, object_removal_for_eval(clean, stamps, &mut StdRng::seed_from_u64(seed))),
    ]
}

/// The kinds of held-out removal mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalMask {
    Strokes,
    Object,
}

/// What the model sees of a `degrade_for_eval` example when the engine runs it with the job's
/// defaults: the estimated exposure, blur size and noise level (the default blur size for an
/// unsharp-masking tool).
pub fn as_model_sees(task: Task, mut example: Example) -> Example {
    match task.setting() {
        Some(ToolSetting::Exposure) => example.input = expose(&example.input, auto_exposure(&example.input)),
        Some(ToolSetting::BlurSize) => example.input = unsharp(&example.input, DEFAULT_BLUR_SIZE),
        Some(ToolSetting::DeblurSize) => example.input = SharpenPass::for_photo(&example.input, None).apply(&example.input),
        Some(ToolSetting::NoiseLevel) => example.input = denoise_prepass(&example.input),
        None => {}
    }
    example
}

/// The denoise and JPEG tools' input as the engine prepares it by default: shrunk at the level
/// estimated from the file (its grain, or its JPEG quantization).
fn denoise_prepass(file: &RgbImage) -> RgbImage {
    dct_denoise(file, estimate_noise(file))
}

/// Rounds to 8-bit levels: what a user's file holds.
pub fn quantize8(image: &RgbImage) -> RgbImage {
    map(image, |v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0)
}

fn map(image: &RgbImage, f: impl Fn(f32) -> f32) -> RgbImage {
    RgbImage { width: image.width, height: image.height, data: image.data.iter().map(|&v| f(v)).collect() }
}

/// Gaussian read noise of `sigma` plus shot noise whose variance grows with brightness.
pub fn add_noise(image: &RgbImage, sigma: f32, shot: f32, rng: &mut StdRng) -> RgbImage {
    let normal = Normal::new(0f32, 1.0).unwrap_or_else(|_| unreachable!("unit normal is valid"));
    map_with(image, |v| v + normal.sample(rng) * (sigma * sigma + shot * v.max(0.0)).sqrt())
}

fn map_with(image: &RgbImage, mut f: impl FnMut(f32) -> f32) -> RgbImage {
    RgbImage { width: image.width, height: image.height, data: image.data.iter().map(|&v| f(v)).collect() }
}

/// Exposure `gain` then a crushing gamma.
pub fn darken(image: &RgbImage, gain: f32, gamma: f32) -> RgbImage {
    map(image, |v| (v * gain).powf(gamma) * gain.powf(1.0 - gamma))
}

pub fn grayscale(image: &RgbImage) -> RgbImage {
    let mut out = image.clone();
    for p in out.data.chunks_exact_mut(3) {
        let y = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        p.fill(y);
    }
    out
}

/// What the upscale tool's model sees: the x2 area-downscaled photo doubled again by the engine's
/// first pass (so training and use agree).
pub fn upscale_input(target: &RgbImage) -> RgbImage {
    let doubled = Task::Upscale
        .upsampling()
        .enlarge(&quantize8(&target.box_halved()), 2)
        .expect("the compiled-in doubling filters parse (tested in prism-engine)");
    // An odd last row or column, dropped by the halving, repeats its neighbour.
    doubled.crop_clamped(0, 0, target.width, target.height)
}

/// Linear motion blur of `length` pixels at `angle` radians.
pub fn motion_blur(image: &RgbImage, length: f32, angle: f32) -> RgbImage {
    let steps = (length * 2.0).ceil() as usize;
    let weight = 1.0 / (steps + 1) as f32;
    let taps: Vec<(isize, isize, f32)> = (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32 - 0.5;
            ((t * length * angle.cos()).round() as isize, (t * length * angle.sin()).round() as isize, weight)
        })
        .collect();
    filter(image, &taps)
}

/// `sum of weight x pixel(x + dx, y + dy)` over `taps`, edges clamped.
fn filter(image: &RgbImage, taps: &[(isize, isize, f32)]) -> RgbImage {
    let mut out = RgbImage::new(image.width, image.height);
    for y in 0..image.height as isize {
        for x in 0..image.width as isize {
            let mut acc = [0f32; 3];
            for &(dx, dy, weight) in taps {
                let sx = (x + dx).clamp(0, image.width as isize - 1) as usize;
                let sy = (y + dy).clamp(0, image.height as isize - 1) as usize;
                let p = image.pixel(sx, sy);
                for c in 0..3 {
                    acc[c] += weight * p[c];
                }
            }
            let o = (y as usize * image.width + x as usize) * 3;
            out.data[o..o + 3].copy_from_slice(&acc);
        }
    }
    out
}

/// Encodes as a baseline JPEG at `quality` and decodes it again.
pub fn jpeg_roundtrip(image: &RgbImage, quality: u8) -> RgbImage {
    let bytes: Vec<u8> = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let mut encoded = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, quality);
    let decoded = image::ImageEncoder::write_image(
        encoder,
        &bytes,
        image.width as u32,
        image.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .ok()
    .and_then(|_| image::load_from_memory_with_format(&encoded, image::ImageFormat::Jpeg).ok());
    // Encoding an in-memory RGB buffer cannot fail; if it ever did, the clean image is returned.
    match decoded {
        Some(img) => {
            let rgb = img.to_rgb8();
            RgbImage { width: image.width, height: image.height, data: rgb.as_raw().iter().map(|&v| v as f32 / 255.0).collect() }
        }
        None => image.clone(),
    }
}

/// Free-form brush strokes, like a user painting over something: 1-4 random walks.
pub fn stroke_mask(width: usize, height: usize, rng: &mut StdRng, min_width: f32, max_width: f32) -> Mask {
    let mut mask = Mask::filled(width, height, 0.0);
    let strokes = rng.random_range(1..=4);
    let size = width.min(height) as f32;
    for _ in 0..strokes {
        let brush = rng.random_range(min_width..max_width) / 2.0;
        let mut x = rng.random_range(0.15..0.85) * width as f32;
        let mut y = rng.random_range(0.15..0.85) * height as f32;
        let mut angle = rng.random_range(0.0..std::f32::consts::TAU);
        for _ in 0..rng.random_range(2..6) {
            angle += rng.random_range(-1.2..1.2);
            let length = rng.random_range(0.05..0.25) * size;
            let (nx, ny) = (x + length * angle.cos(), y + length * angle.sin());
            let steps = (length / (brush * 0.5).max(1.0)).ceil() as usize;
            for s in 0..=steps {
                let t = s as f32 / steps.max(1) as f32;
                disc(&mut mask, x + (nx - x) * t, y + (ny - y) * t, brush);
            }
            (x, y) = (nx.clamp(0.0, width as f32 - 1.0), ny.clamp(0.0, height as f32 - 1.0));
        }
    }
    mask
}

/// One or two boxes, each 10-45% of the crop's sides: a sign, a car, a person standing still.
pub fn box_mask(width: usize, height: usize, rng: &mut StdRng) -> Mask {
    let mut mask = Mask::filled(width, height, 0.0);
    for _ in 0..rng.random_range(1..=2) {
        let (w, h) =
            ((rng.random_range(0.1..0.45) * width as f32) as usize, (rng.random_range(0.1..0.45) * height as f32) as usize);
        let x0 = rng.random_range(0..=width.saturating_sub(w.max(1)));
        let y0 = rng.random_range(0..=height.saturating_sub(h.max(1)));
        for y in y0..(y0 + h).min(height) {
            mask.data[y * width + x0..y * width + (x0 + w).min(width)].fill(1.0);
        }
    }
    mask
}

fn disc(mask: &mut Mask, cx: f32, cy: f32, radius: f32) {
    let (x0, x1) = ((cx - radius).floor().max(0.0) as usize, ((cx + radius).ceil() as usize).min(mask.width.saturating_sub(1)));
    let (y0, y1) = ((cy - radius).floor().max(0.0) as usize, ((cy + radius).ceil() as usize).min(mask.height.saturating_sub(1)));
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            if dx * dx + dy * dy <= radius * radius {
                mask.data[y * mask.width + x] = 1.0;
            }
        }
    }
}

/// Grows a binary mask by `radius` pixels (square neighbourhood).
pub fn dilate(mask: &Mask, radius: usize) -> Mask {
    let mut rows = mask.clone();
    for y in 0..mask.height {
        for x in 0..mask.width {
            let lo = x.saturating_sub(radius);
            let hi = (x + radius).min(mask.width - 1);
            rows.data[y * mask.width + x] = (lo..=hi).map(|i| mask.data[y * mask.width + i]).fold(0.0, f32::max);
        }
    }
    let mut out = rows.clone();
    for y in 0..mask.height {
        let lo = y.saturating_sub(radius);
        let hi = (y + radius).min(mask.height - 1);
        for x in 0..mask.width {
            out.data[y * mask.width + x] = (lo..=hi).map(|i| rows.data[i * mask.width + x]).fold(0.0, f32::max);
        }
    }
    out
}

/// Pastes a cut-out at a random place and size; the mask is its alpha, dilated to cover the halo.
fn paste_stamp(target: &RgbImage, stamp: &Stamp, rng: &mut StdRng) -> (RgbImage, Mask) {
    paste_stamp_sized(target, stamp, rng.random_range(0.15..0.6), rng)
}

/// [`paste_stamp`] with the cut-out's longer side at `fraction` of the crop's shorter one.
fn paste_stamp_sized(target: &RgbImage, stamp: &Stamp, fraction: f32, rng: &mut StdRng) -> (RgbImage, Mask) {
    let side = target.width.min(target.height) as f32 * fraction;
    let fit = side / stamp.rgb.width.max(stamp.rgb.height) as f32;
    let (w, h) = (((stamp.rgb.width as f32 * fit) as usize).max(4), ((stamp.rgb.height as f32 * fit) as usize).max(4));
    let rgb = stamp.rgb.resized(w, h);
    let alpha = stamp.alpha.resized(w, h);
    let x0 = rng.random_range(0..=target.width.saturating_sub(w)) as isize;
    let y0 = rng.random_range(0..=target.height.saturating_sub(h)) as isize;
    let mut input = target.clone();
    let mut mask = Mask::filled(target.width, target.height, 0.0);
    for y in 0..h {
        for x in 0..w {
            let (tx, ty) = (x0 as usize + x, y0 as usize + y);
            if tx >= target.width || ty >= target.height {
                continue;
            }
            let a = alpha.data[y * w + x].clamp(0.0, 1.0);
            let o = (ty * target.width + tx) * 3;
            for c in 0..3 {
                input.data[o + c] = input.data[o + c] * (1.0 - a) + rgb.data[(y * w + x) * 3 + c] * a;
            }
            mask.data[ty * target.width + tx] = if a > 0.05 { 1.0 } else { 0.0 };
        }
    }
    (quantize8(&input), dilate(&mask, 3))
}

/// PSNR in dB of `a` against `b` over the pixels where `mask` > 0.5 (all pixels when None).
pub fn psnr(a: &RgbImage, b: &RgbImage, mask: Option<&Mask>) -> f64 {
    let mut sum = 0f64;
    let mut count = 0usize;
    for (i, (pa, pb)) in a.data.chunks_exact(3).zip(b.data.chunks_exact(3)).enumerate() {
        if mask.is_some_and(|m| m.data[i] <= 0.5) {
            continue;
        }
        for c in 0..3 {
            let d = (pa[c].clamp(0.0, 1.0) - pb[c].clamp(0.0, 1.0)) as f64;
            sum += d * d;
        }
        count += 3;
    }
    let mse = sum / count.max(1) as f64;
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::fixtures::synthetic_photo;
    use rand::SeedableRng;

    #[test]
    fn every_task_degrades_and_keeps_size() {
        let clean = synthetic_photo(48, 40, 3);
        let mut rng = StdRng::seed_from_u64(1);
        for task in ALL_TASKS {
            let ex = degrade(task, &clean, &[], &mut rng);
            assert_eq!((ex.input.width, ex.input.height), (48, 40), "{task:?}");
            assert_eq!(ex.mask.data.len(), 48 * 40);
            assert!(ex.loss_mask.data.iter().any(|&m| m > 0.5), "{task:?} has an empty loss mask");
            let changed = psnr(&ex.input, &clean, Some(&ex.loss_mask));
            if task != Task::Remove {
                assert!(changed < 60.0, "{task:?} left the image unchanged ({changed} dB)");
            }
        }
    }

    #[test]
    fn removal_holes_range_from_thin_strokes_to_large_boxes() {
        let clean = synthetic_photo(128, 128, 5);
        let stamp = Stamp { rgb: synthetic_photo(40, 30, 6), alpha: Mask::filled(40, 30, 1.0) };
        let mut rng = StdRng::seed_from_u64(2);
        let covered: Vec<f32> = (0..200)
            .map(|_| {
                let ex = degrade(Task::Remove, &clean, std::slice::from_ref(&stamp), &mut rng);
                assert!(ex.hide_masked && ex.mask.data == ex.loss_mask.data);
                ex.mask.data.iter().filter(|&&m| m > 0.5).count() as f32 / (128.0 * 128.0)
            })
            .collect();
        assert!(covered.iter().all(|&c| c > 0.0), "every example has a hole");
        let share = |f: &dyn Fn(f32) -> bool| covered.iter().filter(|&&c| f(c)).count();
        assert!(share(&|c| c < 0.05) >= 20, "small holes (thin strokes, small objects) are common");
        assert!(share(&|c| c > 0.15) >= 20, "and so are large ones: {:?}", &covered[..20]);
    }

    #[test]
    fn training_inputs_are_prepared_as_the_engine_prepares_them() {
        let clean = synthetic_photo(64, 64, 7);
        let mean = |i: &RgbImage| i.data.iter().sum::<f32>() / i.data.len() as f32;
        for seed in 0..8 {
            let mut rng = StdRng::seed_from_u64(seed);
            // Brightened by the true exposure give or take 0.3 stops: at most the gamma's darkening and
            // 0.3 stops away from the clean photo's brightness, where the dark file is 1.5-4.3 stops under.
            let night = degrade(Task::Lowlight, &clean, &[], &mut rng);
            let ratio = mean(&night.input) / mean(&clean);
            assert!((0.4..1.4).contains(&ratio), "lowlight input at {ratio} of the clean brightness");
        }
        // Sharpen's input is sharpened: not the blurred file, and at least as steep (deconvolved, or
        // unsharp-masked for a shake). Asked for the blurred file, it stays within the step's two
        // levels.
        let step = RgbImage {
            width: 64,
            height: 64,
            data: (0..64 * 64).flat_map(|i| [if i % 64 < 32 { 0.2 } else { 0.8 }; 3]).collect(),
        };
        for seed in 0..4 {
            let ex = degrade(Task::Sharpen, &step, &[], &mut StdRng::seed_from_u64(seed));
            let blurred = degrade_with(Task::Sharpen, SharpenInput::Blurred, &step, &[], &mut StdRng::seed_from_u64(seed));
            // The steepest step between neighbours along a row (red channel).
            let steepest = |i: &RgbImage| {
                i.data
                    .chunks_exact(3 * i.width)
                    .flat_map(|row| row.windows(4).step_by(3).map(|p| (p[3] - p[0]).abs()))
                    .fold(0f32, f32::max)
            };
            assert!(
                ex.input != blurred.input && steepest(&ex.input) >= steepest(&blurred.input),
                "seed {seed}: the sharpen input was not sharpened (steepest step {} against the blurred file's {})",
                steepest(&ex.input),
                steepest(&blurred.input)
            );
            assert!(
                blurred.input.data.iter().all(|&v| (0.199..=0.801).contains(&v)),
                "seed {seed}: the blurred input overshoots"
            );
        }
        // Denoise and JPEG cleanup see the file as the engine's pass leaves it at the estimated
        // level: most of the grain (noise of 5-50 levels) is gone.
        let photo = synthetic_photo(128, 128, 3);
        for seed in 0..4 {
            let noisy = degrade(Task::Denoise, &photo, &[], &mut StdRng::seed_from_u64(seed));
            let error = |i: &RgbImage| i.data.iter().zip(&photo.data).map(|(a, b)| (a - b).abs()).sum::<f32>();
            let mut rng = StdRng::seed_from_u64(seed);
            let sigma = rng.random_range(5.0..50.0) / 255.0;
            let raw = quantize8(&add_noise(&photo, sigma, 0.0, &mut rng));
            assert!(error(&noisy.input) < 0.6 * error(&raw), "seed {seed}: the denoise input was not shrunk");
            let jpeg = degrade(Task::Dejpeg, &photo, &[], &mut StdRng::seed_from_u64(seed));
            let file = jpeg_roundtrip(&photo, StdRng::seed_from_u64(seed).random_range(5..=40));
            assert!(jpeg.input.data != file.data, "seed {seed}: the JPEG input was not shrunk");
            assert!(jpeg.input.data == dct_denoise(&file, estimate_noise(&file)).data, "seed {seed}: not the engine's pass");
        }
    }

    #[test]
    fn held_out_objects_cover_a_pasted_cut_out_and_nothing_else() {
        let clean = synthetic_photo(200, 160, 5);
        // A cut-out the colour of nothing in the photo, so where it landed is plain.
        let stamp = Stamp {
            rgb: RgbImage { width: 40, height: 30, data: [0.0, 1.0, 0.0].repeat(40 * 30) },
            alpha: Mask::filled(40, 30, 1.0),
        };
        for seed in 0..20 {
            let a = object_removal_for_eval(&clean, std::slice::from_ref(&stamp), &mut StdRng::seed_from_u64(seed));
            let b = object_removal_for_eval(&clean, std::slice::from_ref(&stamp), &mut StdRng::seed_from_u64(seed));
            assert!(a.input == b.input && a.mask.data == b.mask.data, "reproducible");
            assert!(a.hide_masked && a.target == clean && a.mask.data == a.loss_mask.data);
            let (x0, y0, x1, y1) = a.mask.bounding_box().expect("a hole");
            // The object's longer side is 15-40% of the shorter side of the crop (160), grown 3 px.
            let side = (x1 - x0).max(y1 - y0);
            assert!((24..=70).contains(&side), "object {side} px across");
            // Outside the cut-out the input is the photo as a file holds it (8-bit).
            let file = quantize8(&clean);
            for (i, &m) in a.mask.data.iter().enumerate() {
                let changed = a.input.data[i * 3..i * 3 + 3] != file.data[i * 3..i * 3 + 3];
                assert!(!changed || m > 0.5, "a pixel outside the mask changed");
            }
        }
    }

    #[test]
    fn eval_degradations_are_reproducible() {
        let clean = synthetic_photo(32, 32, 5);
        for task in ALL_TASKS {
            let a = degrade_for_eval(task, &clean, &mut StdRng::seed_from_u64(9));
            let b = degrade_for_eval(task, &clean, &mut StdRng::seed_from_u64(9));
            assert_eq!(a.input, b.input, "{task:?}");
        }
    }
}
