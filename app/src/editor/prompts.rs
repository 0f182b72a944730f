//! The prompt box's side of the editor: the prompt encoder and the installed tools' index, built
//! off the UI thread (about a second: the encoder loads and every tool's texts are embedded) and
//! built again when the installed tools change; a typed request becomes a mix, or a plain reason
//! why not, shown under the box.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, unbounded};
use prism_engine::adapter::AdapterMeta;
use prism_engine::engine::Command;
use prism_engine::mix::Mix;
use prism_engine::record::PromptRecord;
use prism_text::{Prompter, TextError};

use super::PrismApp;
use super::actions::Action;
use super::state::PromptOutcome;

/// Which tools an index was built over: their names and words.
type ToolsKey = Vec<(String, String, String, Vec<String>)>;
type Built = (ToolsKey, Result<Prompter, String>);

pub(super) struct PromptIndex {
    ready: Option<(ToolsKey, Arc<Prompter>)>,
    building: Option<ToolsKey>,
    channel: (Sender<Built>, Receiver<Built>),
    /// A request typed before the index was ready, and whether Enter asked to run it.
    pending: Option<(String, bool)>,
    /// The lightbox asked to run requests before the index was ready.
    pending_lightbox: bool,
}

impl Default for PromptIndex {
    fn default() -> Self {
        Self { ready: None, building: None, channel: unbounded(), pending: None, pending_lightbox: false }
    }
}

fn tools_key(metas: &[AdapterMeta]) -> ToolsKey {
    metas.iter().map(|m| (m.name.clone(), m.title.clone(), m.description.clone(), m.example_prompts.clone())).collect()
}

impl PrismApp {
    /// The installed tools a request can be routed to: adapters a prompt made are left out (the
    /// prompter knows the look tool itself), so making one does not rebuild the index.
    fn routable_tools(&self) -> Vec<AdapterMeta> {
        self.tools.iter().map(|t| t.meta.clone()).filter(|m| m.task != prism_text::look::LOOK_TASK).collect()
    }

    /// Chooses tools from the typed request; with `run`, runs them once chosen.
    pub(super) fn apply_prompt(&mut self, run: bool) {
        let prompt = self.tool.prompt.clone();
        if let Err(reason) = prism_text::request::check_prompt(&prompt) {
            self.tool.prompt_outcome = Some(PromptOutcome::Refused(reason));
            return;
        }
        match self.ready_prompter() {
            Some(prompter) => self.choose(&prompter, &prompt, run),
            None => {
                self.prompts.pending = Some((prompt, run));
                self.tool.prompt_outcome = Some(PromptOutcome::Reading);
            }
        }
    }

    /// The index over the installed tools when it is built; otherwise None, and it is being built.
    fn ready_prompter(&mut self) -> Option<Arc<Prompter>> {
        let metas = self.routable_tools();
        let key = tools_key(&metas);
        match &self.prompts.ready {
            Some((built_for, prompter)) if *built_for == key => Some(Arc::clone(prompter)),
            _ => {
                if self.prompts.building.as_ref() != Some(&key) {
                    self.build_prompt_index(metas, key);
                }
                None
            }
        }
    }

    fn build_prompt_index(&mut self, metas: Vec<AdapterMeta>, key: ToolsKey) {
        self.prompts.building = Some(key.clone());
        let sender = self.prompts.channel.0.clone();
        let ctx = self.ctx.clone();
        let model_dir = self.options.model_dir.clone();
        let spawned = std::thread::Builder::new().name("prism-prompts".into()).spawn(move || {
            let built = Prompter::load(&model_dir, &metas).map_err(|e| e.to_string());
            let _ = sender.send((key, built));
            ctx.request_repaint();
        });
        if let Err(error) = spawned {
            self.prompts.building = None;
            self.tool.prompt_outcome = Some(PromptOutcome::Refused(format!("cannot start the prompt encoder: {error}")));
        }
    }

    /// Takes a finished index and answers the request that waited for it.
    pub(super) fn receive_prompt_index(&mut self) {
        while let Ok((key, built)) = self.prompts.channel.1.try_recv() {
            if self.prompts.building.as_ref() == Some(&key) {
                self.prompts.building = None;
            }
            match built {
                Ok(prompter) => self.prompts.ready = Some((key, Arc::new(prompter))),
                Err(error) => {
                    // Nothing waits for an index that cannot be built (no retry loop).
                    self.prompts.pending = None;
                    if std::mem::take(&mut self.prompts.pending_lightbox) {
                        self.error(format!("the lightbox's requests cannot be read: {error}"));
                    }
                    self.tool.prompt_outcome = Some(PromptOutcome::Refused(error));
                }
            }
        }
        if self.prompts.building.is_none() && std::mem::take(&mut self.prompts.pending_lightbox) {
            self.actions.push(Action::RunLightbox);
        }
        if self.prompts.building.is_none()
            && let Some((prompt, run)) = self.prompts.pending.take()
        {
            // Answer what the box says now; run only what was asked to run.
            let unchanged = prompt == self.tool.prompt;
            self.apply_prompt(run && unchanged);
        }
    }

    pub(super) fn is_reading_prompt(&self) -> bool {
        self.prompts.building.is_some()
    }

    /// Whether the index is ready for the installed tools; if not, it starts building and the
    /// lightbox runs again when it is.
    pub(super) fn prompts_ready_for_lightbox(&mut self) -> bool {
        let ready = self.ready_prompter().is_some();
        self.prompts.pending_lightbox = !ready;
        ready
    }

    /// One lightbox request: its mix (a look it makes is installed under a name of its own, so
    /// several can be compared), its label and its record. The index must be ready
    /// ([`Self::prompts_ready_for_lightbox`]).
    pub(super) fn lightbox_prompt(&mut self, prompt: &str, index: usize) -> anyhow::Result<(Mix, String, Option<PromptRecord>)> {
        let prompter = self
            .ready_prompter()
            .ok_or_else(|| anyhow::anyhow!("the prompt encoder is still reading the tools' descriptions"))?;
        let photo = self.document.as_ref().map(|d| d.image().clone());
        let chosen = prompter.choose(prompt, photo.as_deref()).map_err(|e| anyhow::anyhow!("\"{prompt}\": {e}"))?;
        let mut mix = chosen.mix.clone();
        if let Some(mut made) = chosen.made.clone() {
            let original = made.meta.name.clone();
            made.meta.name = format!("{original}-{}", index + 1);
            made.meta.title = format!("{} {}", made.meta.title, index + 1);
            self.install_made(&made)?;
            mix = mix.renamed(|name| if name == original { made.meta.name.clone() } else { name.to_string() });
        }
        Ok((mix, format!("\"{prompt}\": {}", chosen.summary()), Some(chosen.record)))
    }

    /// An adapter a prompt made (the look tool) goes to the engine as a file, like any other,
    /// replacing the one made before; the engine takes commands in order, so a run sent next
    /// finds it installed.
    fn install_made(&mut self, made: &prism_engine::adapter::Adapter) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("prism-made-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.prism-lora", made.meta.name));
        made.write(&path)?;
        let engine = self.engine.as_ref().ok_or_else(|| anyhow::anyhow!("the engine is not running"))?;
        engine.send(Command::RemoveAdapter(made.meta.name.clone()))?;
        engine.send(Command::InstallAdapter(path))?;
        Ok(())
    }

    fn choose(&mut self, prompter: &Prompter, prompt: &str, run: bool) {
        // The photo the run will edit: a tool that is not for it is not a candidate.
        let photo = self.document.as_ref().map(|d| d.image().clone());
        match prompter.choose(prompt, photo.as_deref()) {
            Ok(chosen) => {
                if let Some(made) = &chosen.made
                    && let Err(error) = self.install_made(made)
                {
                    self.tool.prompt_outcome = Some(PromptOutcome::Refused(format!("cannot use the look it made: {error:#}")));
                    return;
                }
                self.tool.mix = chosen.mix.parts().iter().map(|(n, w)| (n.clone(), *w)).collect();
                self.tool.picked = true;
                self.tool.prompt_outcome = Some(PromptOutcome::Chosen { summary: chosen.summary(), record: chosen.record });
                if run {
                    self.actions.push(Action::Run);
                }
            }
            Err(TextError::Prompt(reason)) => self.tool.prompt_outcome = Some(PromptOutcome::Refused(reason)),
            Err(error) => self.tool.prompt_outcome = Some(PromptOutcome::Refused(error.to_string())),
        }
    }
}
