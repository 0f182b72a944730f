//! The encoder and the tools' index together: what the editor and the CLI hold to turn a typed
//! request into a mix of tools.

use std::path::Path;

use prism_engine::adapter::{Adapter, AdapterMeta};
use prism_engine::imageio::RgbImage;
use prism_engine::mix::Mix;
use prism_engine::record::PromptRecord;

use crate::encoder::SentenceEncoder;
use crate::error::{Result, TextError};
use crate::look::LookMaker;
use crate::router::{Choice, Router, Routing};

pub struct Prompter {
    encoder: SentenceEncoder,
    router: Router,
    /// The model's prompt-guided tool, when it has one.
    looks: Option<LookMaker>,
}

/// A request turned into tools.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    pub mix: Mix,
    pub tools: Vec<Choice>,
    pub excluded: Vec<String>,
    pub sure: bool,
    pub record: PromptRecord,
    /// An adapter the request made (the look tool): install it before running the mix, which
    /// names it.
    pub made: Option<Adapter>,
    /// The looks the made adapter mixes, likeliest first, with their shares (when the look tool
    /// has a reader): so the user sees what "a monochrome version" was read as.
    pub look_reading: Vec<(String, f32)>,
}

/// Looks with a smaller share than this are not shown.
const SHOWN_SHARE: f32 = 0.1;

impl Chosen {
    /// "Denoise (0.88) + Sharpen at 0.5 (0.61); not Upscale x2 — unsure", for the status line.
    pub fn summary(&self) -> String {
        let tools: Vec<String> = self
            .tools
            .iter()
            .map(|c| {
                let weight = if c.weight < 1.0 { format!(" at {:.1}", c.weight) } else { String::new() };
                format!("{}{weight} ({:.2})", c.title, c.similarity)
            })
            .collect();
        let mut text = tools.join(" + ");
        if !self.excluded.is_empty() {
            text.push_str(&format!("; not {}", self.excluded.join(", ")));
        }
        if !self.look_reading.is_empty() {
            let looks: Vec<String> = self.look_reading.iter().map(|(look, share)| format!("{look} {share:.2}")).collect();
            text.push_str(&format!(" [look read as {}]", looks.join(", ")));
        }
        text.push_str(if self.sure { ", sure" } else { ", unsure: check the choice" });
        text
    }
}

impl Prompter {
    /// The encoder in `<model_dir>/text/` over the tools `adapters` describe, and the model's
    /// look tool (`<model_dir>/looks/`) when it has one.
    pub fn load(model_dir: &Path, adapters: &[AdapterMeta]) -> Result<Self> {
        let encoder = SentenceEncoder::load(model_dir)?;
        let looks = LookMaker::load(model_dir)?;
        let mut tools = adapters.to_vec();
        if let Some(maker) = &looks {
            tools.retain(|meta| meta.name != maker.meta().name);
            tools.push(maker.meta().clone());
        }
        let router = Router::new(&encoder, &tools)?;
        Ok(Self { encoder, router, looks })
    }

    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    pub fn looks(&self) -> Option<&LookMaker> {
        self.looks.as_ref()
    }

    /// How `prompt` routes for `photo` (every tool a candidate when there is none).
    pub fn route(&self, prompt: &str, photo: Option<&RgbImage>) -> Result<Routing> {
        self.router.route(&self.encoder, prompt, photo)
    }

    /// The mix `prompt` asks for on `photo`, or why there is none (as [`TextError::Prompt`]).
    pub fn choose(&self, prompt: &str, photo: Option<&RgbImage>) -> Result<Chosen> {
        match self.route(prompt, photo)? {
            Routing::Chosen { tools, excluded, sure } => {
                let mix = Mix::new(tools.iter().map(|c| (c.name.as_str(), c.weight)))?;
                let record = PromptRecord {
                    text: prompt.trim().to_string(),
                    chosen: tools.iter().map(|c| (c.name.clone(), c.similarity)).collect(),
                    excluded: excluded.clone(),
                };
                // The look tool's adapter is made from the words that asked for it.
                let (made, look_reading) =
                    match (&self.looks, tools.iter().find(|c| self.looks.as_ref().is_some_and(|l| l.meta().name == c.name))) {
                        (Some(maker), Some(choice)) => {
                            let embedding = self.encoder.encode(&choice.part)?;
                            (Some(maker.make(&embedding)?), maker.read_as(&embedding, SHOWN_SHARE)?)
                        }
                        _ => (None, Vec::new()),
                    };
                Ok(Chosen { mix, tools, excluded, sure, record, made, look_reading })
            }
            Routing::NothingFits { reason } => Err(TextError::Prompt(reason)),
        }
    }
}
