//! The tool panel: the prompt box, the tool palette (from the adapters' metadata), the mix,
//! strength, the tool's own setting, precision, backend, and Run.

use eframe::egui::{self, RichText};
use prism_engine::adapter::Region;
use prism_engine::backends::{AdapterInfo, BackendKind, Precision, Provider};
use prism_engine::deblur_prepass::estimate_blur;
use prism_engine::denoise_prepass::estimate_noise;
use prism_engine::imageio::RgbImage;
use prism_engine::job::TEXTURE_RANGE;
use prism_engine::settings::{DEFAULT_BLUR_SIZE, MAX_AUTO_EXPOSURE, ToolSetting, auto_exposure};

use crate::editor::Settings;
use crate::editor::actions::Action;
use crate::editor::state::{PromptOutcome, ToolChoice, tool_title};

/// What the panel reads besides the tool choice it edits.
pub struct ToolPanel<'a> {
    pub tools: &'a [AdapterInfo],
    pub settings: &'a Settings,
    /// The open photo (the exposure estimate starts from it).
    pub image: Option<&'a RgbImage>,
    pub busy: bool,
    /// The model fills a hole smoothly and takes the texture from its surroundings (model v2),
    /// so a removal's texture can be set; a model that paints its own fill has no such setting.
    pub textured_fill: bool,
}

impl ToolPanel<'_> {
    fn title(&self, name: &str) -> String {
        tool_title(self.tools, name)
    }
}

pub fn tool_panel_ui(ui: &mut egui::Ui, tool: &mut ToolChoice, view: &ToolPanel<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.heading("Tools");
    let prompt_label = ui.label("Describe the edit");
    let response = ui
        .add(
            egui::TextEdit::singleline(&mut tool.prompt)
                .hint_text("e.g. remove the noise and sharpen")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(prompt_label.id);
    let submitted = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    if submitted {
        actions.push(Action::ApplyPrompt { run: true });
    }
    if ui.button("Choose tools from the prompt").on_hover_text("Enter in the box chooses and runs").clicked() {
        actions.push(Action::ApplyPrompt { run: false });
    }
    match &tool.prompt_outcome {
        Some(PromptOutcome::Reading) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new("Reading the tools' descriptions…").weak());
            });
        }
        Some(PromptOutcome::Chosen { summary, .. }) => {
            ui.label(format!("Chosen: {summary}"))
                .on_hover_text("Change the tools or weights below if this is not what you meant");
        }
        Some(PromptOutcome::Refused(reason)) => {
            ui.label(RichText::new(format!("{reason}. Pick a tool below.")).weak());
        }
        None => {}
    }
    ui.add_space(4.0);
    if view.tools.is_empty() {
        ui.label(RichText::new("No tools installed.").weak());
    }
    let single = (tool.mix.len() == 1).then(|| tool.mix[0].0.clone());
    for info in view.tools {
        let meta = &info.meta;
        let selected = single.as_deref() == Some(meta.name.as_str());
        let mut hover = meta.description.clone();
        if !meta.example_prompts.is_empty() {
            hover.push_str(&format!("\nTry: \"{}\"", meta.example_prompts.join("\", \"")));
        }
        if meta.region == Region::Local {
            hover.push_str("\nPaint over what to fill first.");
        }
        if ui.selectable_label(selected, &meta.title).on_hover_text(hover).clicked() {
            actions.push(Action::PickTool(meta.name.clone()));
        }
        if selected {
            ui.label(RichText::new(&meta.description).small());
            if let Some(example) = meta.example_prompts.first() {
                ui.label(RichText::new(format!("e.g. \"{example}\"")).small().italics());
            }
        }
    }
    ui.add_space(4.0);
    egui::CollapsingHeader::new("Mix").default_open(tool.mix.len() > 1).show(ui, |ui| mix_ui(ui, tool, view));
    ui.add(egui::Slider::new(&mut tool.strength, 0.0..=2.0).text("Strength"))
        .on_hover_text("Scales every adapter's side path; 0 = the base model alone");
    let takes =
        |setting| view.tools.iter().any(|t| t.meta.setting == Some(setting) && tool.mix.iter().any(|(n, _)| n == &t.meta.name));
    let (exposure, blur_size, deblur_size, noise_level) = (
        takes(ToolSetting::Exposure),
        takes(ToolSetting::BlurSize),
        takes(ToolSetting::DeblurSize),
        takes(ToolSetting::NoiseLevel),
    );
    if exposure {
        exposure_ui(ui, tool, view.image);
    }
    if noise_level {
        noise_level_ui(ui, tool, view.image);
    }
    if deblur_size {
        deblur_size_ui(ui, tool, view.image);
    } else if blur_size {
        let mut sigma = tool.blur_size.unwrap_or(DEFAULT_BLUR_SIZE);
        let slider = egui::Slider::new(&mut sigma, 0.5..=4.0).step_by(0.1).text("Blur size (px)");
        if ui.add(slider).on_hover_text("How far the blur spreads a point; match it to the photo by eye").changed() {
            tool.blur_size = Some(sigma);
        }
    }
    let fills = view.tools.iter().any(|t| t.meta.region == Region::Local && tool.mix.iter().any(|(n, _)| n == &t.meta.name));
    if fills && view.textured_fill {
        ui.add(egui::Slider::new(&mut tool.texture, TEXTURE_RANGE).step_by(0.1).text("Fill texture"))
            .on_hover_text("How much of the surroundings' texture the fill takes: 0 leaves it smooth, 1 is the default");
    }
    let settings = view.settings;
    let choice_name = Precision::choice_name(settings.precision);
    egui::ComboBox::from_label("Precision").selected_text(choice_name).show_ui(ui, |ui| {
        for precision in std::iter::once(None).chain(Precision::ALL.map(Some)) {
            if ui.selectable_label(settings.precision == precision, Precision::describe_choice(precision)).clicked()
                && settings.precision != precision
            {
                actions.push(Action::SetPrecision(precision));
            }
        }
    });
    egui::ComboBox::from_label("Backend").selected_text(settings.backend.name()).show_ui(ui, |ui| {
        for kind in BackendKind::ALL {
            if ui.selectable_label(settings.backend == kind, kind.describe()).clicked() && settings.backend != kind {
                actions.push(Action::SetBackend(kind, settings.provider));
            }
        }
    });
    if settings.backend == BackendKind::Ort {
        egui::ComboBox::from_label("Provider").selected_text(settings.provider.name()).show_ui(ui, |ui| {
            for provider in Provider::ALL {
                if ui.selectable_label(settings.provider == provider, provider.describe()).clicked()
                    && settings.provider != provider
                {
                    actions.push(Action::SetBackend(BackendKind::Ort, provider));
                }
            }
        });
    }
    ui.add_space(6.0);
    let has_document = view.image.is_some();
    ui.horizontal(|ui| {
        let can_run = has_document && !tool.mix.is_empty() && !view.busy;
        if ui
            .add_enabled(can_run, egui::Button::new(RichText::new("Run").strong()))
            .on_hover_text("Apply to the mask, or to the whole image when nothing is painted (Ctrl+Enter)")
            .clicked()
        {
            actions.push(Action::Run);
        }
        if ui.add_enabled(view.busy, egui::Button::new("Cancel")).clicked() {
            actions.push(Action::Cancel);
        }
    });
    ui.horizontal_wrapped(|ui| {
        let ready = has_document && !view.tools.is_empty();
        if ui
            .add_enabled(ready, egui::Button::new("Lightbox"))
            .on_hover_text("Run the image through several adapters and flip between them")
            .clicked()
        {
            actions.push(Action::OpenLightbox);
        }
        if ui
            .add_enabled(ready && !tool.mix.is_empty(), egui::Button::new("Quantized vs float"))
            .on_hover_text("The same edit through the int8 model and the float teachers")
            .clicked()
        {
            actions.push(Action::RunQuantized);
        }
    });
    actions
}

/// The exposure a night-shot tool brightens by before it runs: estimated, or set by eye.
fn exposure_ui(ui: &mut egui::Ui, tool: &mut ToolChoice, image: Option<&RgbImage>) {
    let mut auto = tool.exposure.is_none();
    if ui.checkbox(&mut auto, "Auto exposure").on_hover_text("Estimate the exposure from the photo's highlights").changed() {
        tool.exposure = if auto { None } else { Some(image.map_or(0.0, auto_exposure)) };
    }
    if let Some(stops) = &mut tool.exposure {
        ui.add(egui::Slider::new(stops, 0.0..=MAX_AUTO_EXPOSURE).step_by(0.05).text("Exposure (stops)"))
            .on_hover_text("How much to brighten before the tool cleans up; each stop doubles the light");
    }
}

fn noise_level_ui(ui: &mut egui::Ui, tool: &mut ToolChoice, image: Option<&RgbImage>) {
    let mut auto = tool.noise_level.is_none();
    if ui.checkbox(&mut auto, "Auto noise level").on_hover_text("Estimate the noise from the photo's finest detail").changed() {
        tool.noise_level = if auto { None } else { Some(image.map_or(0.0, |image| estimate_noise(image) * 255.0)) };
    }
    if let Some(level) = &mut tool.noise_level {
        ui.add(egui::Slider::new(level, 0.0..=60.0).step_by(0.5).text("Noise level"))
            .on_hover_text("How grainy the photo is, in levels of 255: higher cleans more and keeps less fine detail");
    }
}

/// Auto, or the blur size the photo is deconvolved at first (starting from the estimate).
fn deblur_size_ui(ui: &mut egui::Ui, tool: &mut ToolChoice, image: Option<&RgbImage>) {
    let mut auto = tool.blur_size.is_none();
    if ui.checkbox(&mut auto, "Auto blur size").on_hover_text("Read the blur from how soft the photo's edges are").changed() {
        tool.blur_size = if auto { None } else { Some(image.map_or(DEFAULT_BLUR_SIZE, estimate_blur)) };
    }
    if let Some(sigma) = &mut tool.blur_size {
        ui.add(egui::Slider::new(sigma, 0.5..=4.0).step_by(0.1).text("Blur size (px)"))
            .on_hover_text("How far the blur spreads a point: too large rings around edges, too small leaves them soft");
    }
}

/// The tools in the blend and their weights, edited in place.
fn mix_ui(ui: &mut egui::Ui, tool: &mut ToolChoice, view: &ToolPanel<'_>) {
    let mut remove = None;
    for (index, (name, weight)) in tool.mix.iter_mut().enumerate() {
        let title = view.title(name);
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(weight, 0.0..=1.5).text(&title));
            if ui.small_button("Remove").on_hover_text(format!("Take {title} out of the mix")).clicked() {
                remove = Some(index);
            }
        });
    }
    if let Some(index) = remove {
        tool.mix.remove(index);
    }
    let available: Vec<&AdapterInfo> = view.tools.iter().filter(|t| !tool.mix.iter().any(|(n, _)| *n == t.meta.name)).collect();
    if !available.is_empty() {
        egui::ComboBox::from_label("Add to mix").selected_text("choose…").show_ui(ui, |ui| {
            for info in available {
                if ui.selectable_label(false, &info.meta.title).clicked() {
                    tool.mix.push((info.meta.name.clone(), 0.5));
                    tool.picked = true;
                }
            }
        });
    }
}
