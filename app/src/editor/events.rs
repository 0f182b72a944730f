//! Engine events into state: tools installed or removed, progress, finished and failed jobs.

use std::sync::Arc;

use prism_engine::adapter::Region;
use prism_engine::engine::{Event, TEACHER_SUFFIX};
use prism_engine::imageio::RgbImage;
use prism_engine::job::JobStats;
use prism_engine::record::EditRecord;

use super::PrismApp;
use super::metrics;
use super::state::JobPurpose;

impl PrismApp {
    pub(super) fn drain_events(&mut self) {
        let Some(engine) = &self.engine else { return };
        let mut events = Vec::new();
        while let Some(event) = engine.try_recv() {
            events.push(event);
        }
        for event in events {
            self.handle_event(event);
        }
    }

    /// One teacher fewer to wait for; a comparison asked for meanwhile runs once none is left.
    fn teacher_answered(&mut self) {
        self.teachers_awaited = self.teachers_awaited.saturating_sub(1);
        if self.teachers_awaited == 0
            && std::mem::take(&mut self.quantized_waiting)
            && let Err(error) = self.run_quantized()
        {
            self.error(format!("{error:#}"));
        }
    }

    pub(super) fn handle_event(&mut self, event: Event) {
        match event {
            Event::BackendReady { backend, device } => {
                self.status.backend = Some(backend);
                self.status.device = device;
            }
            Event::BackendUnavailable { reason, .. } => self.error(reason),
            Event::AdapterInstalled(info) => {
                if let Some(tool) = info.meta.name.strip_suffix(TEACHER_SUFFIX) {
                    self.teachers.insert(tool.to_string(), info.stored_bytes);
                    self.teacher_answered();
                    return;
                }
                let name = info.meta.name.clone();
                self.tools.retain(|t| t.meta.name != name);
                self.tools.push(info);
                self.tools.sort_by(|a, b| a.meta.title.cmp(&b.meta.title));
                if !self.tool.picked {
                    self.tool.mix = vec![(self.default_tool(), 1.0)];
                }
            }
            Event::AdapterRejected { path, error } => {
                self.error(format!(
                    "Adapter {} was not installed: {error}",
                    path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                ));
                if self.model.as_ref().is_some_and(|m| m.teacher_adapters().contains(&path)) {
                    self.teacher_answered();
                }
            }
            Event::AdapterRemoved { name } => {
                self.tools.retain(|t| t.meta.name != name);
                self.tool.mix.retain(|(n, _)| *n != name);
            }
            Event::Memory(memory) => self.status.memory = memory,
            Event::Progress { job, done, total } => {
                if let Some(running) = self.jobs.get_mut(&job) {
                    running.done = done;
                    running.total = total;
                }
            }
            Event::Done { job, image, stats } => {
                self.status.memory = stats.memory;
                self.status.last_stats = Some(stats.clone());
                if let Some(running) = self.jobs.remove(&job) {
                    self.finish_job(running.purpose, Ok((image, stats)));
                }
            }
            Event::Failed { job, error } => {
                if let Some(running) = self.jobs.remove(&job) {
                    self.finish_job(running.purpose, Err(error));
                }
            }
            Event::Cancelled { job } => {
                if self.jobs.remove(&job).is_some() && self.jobs.is_empty() {
                    self.info("Cancelled.");
                }
            }
        }
    }

    /// The tool picked when none is: the first global one (it works without a mask).
    pub(super) fn default_tool(&self) -> String {
        self.tools
            .iter()
            .find(|t| t.meta.name == "denoise")
            .or_else(|| self.tools.iter().find(|t| t.meta.region == Region::Global))
            .or(self.tools.first())
            .map(|t| t.meta.name.clone())
            .unwrap_or_default()
    }

    pub(super) fn finish_job(&mut self, purpose: JobPurpose, result: std::result::Result<(Arc<RgbImage>, JobStats), String>) {
        match purpose {
            JobPurpose::Edit { mix, strength, title, prompt } => match result {
                Ok((image, stats)) => {
                    let fills_hole =
                        mix.names().any(|name| self.tools.iter().any(|t| t.meta.name == name && t.meta.region == Region::Local));
                    if let (Some(document), Some(model)) = (&mut self.document, &self.model) {
                        let record = EditRecord::new(model, title.clone(), &mix, strength, &stats).with_prompt(prompt);
                        let resized = (image.width, image.height) != (document.image().width, document.image().height);
                        document.commit_edit(image, record, fills_hole);
                        self.overlay = None;
                        if resized {
                            // An upscale: the view's centre is in image pixels, so fit again.
                            self.canvas.view.follow_fit = true;
                        }
                    }
                    self.info(format!("{title} done in {:.0} ms.", stats.total_time.as_secs_f64() * 1e3));
                }
                Err(error) => self.error(format!("{title} failed: {error}")),
            },
            JobPurpose::Lightbox { slot } => {
                if let Some(entry) = self.lightbox.as_mut().and_then(|l| l.entries.get_mut(slot)) {
                    match result {
                        Ok((image, stats)) => {
                            entry.result = Some(image);
                            entry.record = self.model.as_ref().map(|model| {
                                EditRecord::new(model, entry.label.clone(), &entry.mix, entry.strength, &stats)
                                    .with_prompt(entry.prompt.clone())
                            });
                        }
                        Err(error) => entry.error = Some(error),
                    }
                }
            }
            JobPurpose::Demo { tool } => {
                let Some(view) = &mut self.demo else { return };
                let Some(info) = view.tools.get(tool) else { return };
                match result {
                    Ok((_, stats)) => {
                        view.device = Some((stats.backend, stats.device.clone()));
                        let mut row = crate::demo::DemoRow::new(info, &stats);
                        // The float teachers are resident for the quantized-vs-float view only;
                        // the demo shows what the tools cost, as `prism demo` does.
                        row.resident_bytes = row.resident_bytes.saturating_sub(self.teachers.values().sum());
                        view.runs.push(row);
                    }
                    Err(error) => view.failures.push(format!("{}: {error}", info.meta.title)),
                }
            }
            JobPurpose::Quantized { float } => {
                let Some(view) = &mut self.quantized else { return };
                match result {
                    Ok((image, _)) => {
                        if float {
                            view.float = Some(image);
                        } else {
                            view.int8 = Some(image);
                        }
                    }
                    Err(error) => view.error = Some(error),
                }
                if let (Some(a), Some(b)) = (&view.int8, &view.float) {
                    let mask = self.document.as_ref().map(|d| &d.mask);
                    view.agreement = Some(if (a.width, a.height) == (b.width, b.height) {
                        metrics::agreement(a, b, mask)
                    } else {
                        view.error = Some("the two results differ in size".into());
                        return;
                    });
                }
            }
        }
    }

    // ---- actions ---------------------------------------------------------------------------
}
