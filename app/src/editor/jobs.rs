//! Starting edits on the engine: the tool run, the lightbox's runs, the quantized-vs-float pair,
//! and cancelling them.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use prism_engine::adapter::Region;
use prism_engine::backends::Precision;
use prism_engine::engine::{Command, TEACHER_SUFFIX};
use prism_engine::job::{DEFAULT_CONTEXT, EditJob};
use prism_engine::mix::Mix;

use super::PrismApp;
use super::state::{
    DemoView, FillSettings, JobPurpose, Lightbox, LightboxEntry, PromptOutcome, QuantCompare, QuantShow, RunningJob,
};

/// The removal variants the lightbox compares: context around the hole (a fraction of its size).
const CONTEXT_VARIANTS: [(f32, &str); 3] = [(0.25, "tight context"), (DEFAULT_CONTEXT, "context ½"), (1.0, "wide context")];
/// And, on a model whose fill takes its surroundings' texture, none of it or twice the default.
const TEXTURE_VARIANTS: [(f32, &str); 2] = [(0.0, "smooth fill"), (2.0, "texture ×2")];

impl PrismApp {
    pub(super) fn open_lightbox(&mut self) {
        let chosen = if self.tool.mix.len() > 1 {
            self.tool.mix.iter().map(|(n, _)| n.clone()).collect()
        } else {
            self.tools
                .iter()
                .filter(|t| t.meta.region == Region::Global && t.meta.scale == 1)
                .map(|t| t.meta.name.clone())
                .collect()
        };
        self.lightbox = Some(Lightbox { entries: Vec::new(), selected: 0, chosen, prompts: String::new() });
    }

    /// Puts the lightbox result shown now into the history, with the record of the job that made it.
    pub(super) fn keep_lightbox_result(&mut self) {
        let Some(lightbox) = self.lightbox.take() else { return };
        if let Some(entry) = lightbox.entries.get(lightbox.selected)
            && let (Some(image), Some(record)) = (&entry.result, &entry.record)
            && let Some(document) = &mut self.document
        {
            document.commit_edit(image.clone(), record.clone(), false);
        }
    }

    pub(super) fn cancel_jobs(&mut self, which: impl Fn(&JobPurpose) -> bool) {
        let Some(engine) = &self.engine else { return };
        for (id, job) in &self.jobs {
            if which(&job.purpose) {
                let _ = engine.send(Command::Cancel(*id));
            }
        }
    }

    pub(super) fn job(&mut self, mix: Mix, strength: f32, precision: Option<Precision>, purpose: JobPurpose) -> Result<()> {
        let fill = FillSettings { texture: self.tool.texture, ..FillSettings::default() };
        self.job_with_fill(mix, strength, precision, fill, purpose)
    }

    /// A job whose local tools fill the hole as `fill` says (lightbox variants).
    fn job_with_fill(
        &mut self,
        mix: Mix,
        strength: f32,
        precision: Option<Precision>,
        fill: FillSettings,
        purpose: JobPurpose,
    ) -> Result<()> {
        let document = self.document.as_ref().ok_or_else(|| anyhow!("open a photo first"))?;
        let mask = (!document.mask.is_empty()).then(|| Arc::new(document.mask.to_engine()));
        self.job_on(mix, strength, precision, fill, mask, purpose)
    }

    /// A job on the open photo with `mask` (None: the whole image).
    fn job_on(
        &mut self,
        mix: Mix,
        strength: f32,
        precision: Option<Precision>,
        fill: FillSettings,
        mask: Option<Arc<prism_engine::imageio::Mask>>,
        purpose: JobPurpose,
    ) -> Result<()> {
        let engine = self.engine.as_ref().ok_or_else(|| anyhow!("no model is loaded, so no tool can run"))?;
        let document = self.document.as_ref().ok_or_else(|| anyhow!("open a photo first"))?;
        let id = self.next_job;
        self.next_job += 1;
        let (exposure, blur_size, noise_level) = (self.tool.exposure, self.tool.blur_size, self.tool.noise_level);
        let FillSettings { context, texture } = fill;
        let image = document.image().clone();
        let job = EditJob { id, image, mask, mix, strength, precision, exposure, blur_size, noise_level, context, texture };
        engine.send(Command::Edit(job))?;
        self.jobs.insert(id, RunningJob { purpose, done: 0, total: 1 });
        Ok(())
    }

    pub(super) fn run_edit(&mut self) -> Result<()> {
        if self.is_busy() {
            return Ok(());
        }
        let mix = Mix::new(self.tool.mix.clone())?;
        let title = self.mix_title(&mix);
        let strength = self.tool.strength;
        // The request that chose the tools goes into the record (the mix may have been corrected
        // by hand since: the record keeps both).
        let prompt = match &self.tool.prompt_outcome {
            Some(PromptOutcome::Chosen { record, .. }) => Some(record.clone()),
            _ => None,
        };
        self.job(mix.clone(), strength, self.settings.precision, JobPurpose::Edit { mix, strength, title, prompt })
    }

    pub(super) fn run_lightbox(&mut self) -> Result<()> {
        let Some(lightbox) = &self.lightbox else { return Ok(()) };
        let chosen: Vec<String> =
            self.tools.iter().map(|t| t.meta.name.clone()).filter(|n| lightbox.chosen.contains(n)).collect();
        let prompts: Vec<String> =
            lightbox.prompts.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        if chosen.is_empty() && prompts.is_empty() {
            return Err(anyhow!("tick at least one tool or write a request for the lightbox"));
        }
        if !prompts.is_empty() && !self.prompts_ready_for_lightbox() {
            self.info("Reading the tools' descriptions; the lightbox runs when that is done.".to_string());
            return Ok(());
        }
        let strength = self.tool.strength;
        let mut entries = Vec::new();
        for name in &chosen {
            let title = self.tool_title(name);
            let local = self.tools.iter().any(|t| &t.meta.name == name && t.meta.region == Region::Local);
            if local {
                // A removal's variants: how much of the surroundings the model sees around the hole
                // (at the texture the user set), and how much of their texture the fill takes where
                // the model's fill takes any.
                let chosen = FillSettings { texture: self.tool.texture, ..FillSettings::default() };
                let mut variants: Vec<(FillSettings, &str)> =
                    CONTEXT_VARIANTS.iter().map(|&(context, words)| (FillSettings { context, ..chosen }, words)).collect();
                if self.textured_fill() {
                    variants.extend(TEXTURE_VARIANTS.iter().map(|&(texture, words)| (FillSettings { texture, ..chosen }, words)));
                }
                for (fill, words) in variants {
                    let label = format!("{title} · {words}");
                    entries.push(LightboxEntry { fill, ..LightboxEntry::new(label, Mix::single(name.clone()), strength) });
                }
            } else {
                entries.push(LightboxEntry::new(title, Mix::single(name.clone()), strength));
            }
        }
        for (index, prompt) in prompts.iter().enumerate() {
            let (mix, label, record) = self.lightbox_prompt(prompt, index)?;
            entries.push(LightboxEntry { prompt: record, ..LightboxEntry::new(label, mix, strength) });
        }
        // The baseline runs the first entry's tools at strength 0: the base model alone, same region.
        let Some(first) = entries.first().map(|e| e.mix.clone()) else { return Ok(()) };
        entries.insert(0, LightboxEntry::new("No adapter (base)".into(), first, 0.0));
        self.cancel_jobs(|p| matches!(p, JobPurpose::Lightbox { .. }));
        let precision = self.settings.precision;
        let jobs: Vec<_> = entries.iter().map(|e| (e.mix.clone(), e.strength, e.fill)).collect();
        if let Some(lightbox) = &mut self.lightbox {
            lightbox.entries = entries;
            lightbox.selected = lightbox.selected.min(lightbox.entries.len() - 1);
        }
        for (slot, (mix, strength, fill)) in jobs.into_iter().enumerate() {
            self.job_with_fill(mix, strength, precision, fill, JobPurpose::Lightbox { slot })?;
        }
        Ok(())
    }

    /// Every installed tool in turn, twice (the second visit is the hot swap), on the open photo
    /// at the chosen precision; a local tool removes the painted mask, or a disc in the middle.
    /// With no photo open, the model's sample opens first.
    pub(super) fn run_demo(&mut self) -> Result<()> {
        const ROUNDS: usize = 2;
        let Some(document) = &self.document else {
            let model = self.model.as_ref().ok_or_else(|| anyhow!("no model is loaded, so no tool can run"))?;
            self.demo_waiting = true;
            self.open(model.dir.join(crate::demo::DEMO_SAMPLE));
            return Ok(());
        };
        if self.tools.is_empty() {
            return Err(anyhow!("no tools are installed"));
        }
        let image = document.image();
        let size = (image.width, image.height);
        let painted = (!document.mask.is_empty()).then(|| Arc::new(document.mask.to_engine()));
        let mask = painted.unwrap_or_else(|| Arc::new(crate::demo::demo_mask(size.0, size.1)));
        let photo = document.source.clone().unwrap_or_else(|| document.name.clone().into());
        self.cancel_jobs(|p| matches!(p, JobPurpose::Demo { .. }));
        let tools = self.tools.clone();
        let precision = self.settings.precision;
        for _ in 0..ROUNDS {
            for (index, tool) in tools.iter().enumerate() {
                let local = (tool.meta.region == Region::Local).then(|| mask.clone());
                let mix = Mix::single(tool.meta.name.clone());
                self.job_on(mix, 1.0, precision, FillSettings::default(), local, JobPurpose::Demo { tool: index })?;
            }
        }
        self.demo = Some(DemoView { tools, rounds: ROUNDS, runs: Vec::new(), failures: Vec::new(), photo, size, device: None });
        Ok(())
    }

    pub(super) fn run_quantized(&mut self) -> Result<()> {
        let mix = Mix::new(self.tool.mix.clone())?;
        if self.teachers_awaited > 0 {
            // Without this wait a tool whose teacher is still loading would run in int8 twice.
            self.quantized_waiting = true;
            self.info("Loading the float teachers; the comparison runs when they are in.");
            return Ok(());
        }
        let mut notes = Vec::new();
        for name in mix.names().filter(|name| !self.teachers.contains_key(*name)) {
            notes.push(format!("{} has no float teacher: its own tensors run in float.", self.tool_title(name)));
        }
        let float_mix = mix
            .renamed(|name| if self.teachers.contains_key(name) { format!("{name}{TEACHER_SUFFIX}") } else { name.to_string() });
        self.cancel_jobs(|p| matches!(p, JobPurpose::Quantized { .. }));
        self.quantized = Some(QuantCompare {
            title: self.mix_title(&mix),
            int8: None,
            float: None,
            show: QuantShow::Difference,
            agreement: None,
            heatmap: None,
            heat_scale: 8.0,
            heat_scale_used: 0.0,
            notes,
            error: None,
        });
        let strength = self.tool.strength;
        self.job(mix, strength, Some(Precision::Int8), JobPurpose::Quantized { float: false })?;
        self.job(float_mix, strength, Some(Precision::Float), JobPurpose::Quantized { float: true })
    }
}
