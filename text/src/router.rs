//! Routing a typed request to tools by meaning: every adapter's title, description and example
//! prompts are embedded once; each part of a request goes to the tool whose texts are nearest,
//! if near enough, and the answer says what it chose, how sure it is, or that nothing fits.

use prism_engine::adapter::AdapterMeta;

use crate::encoder::{Embedding, SentenceEncoder};
use crate::error::{Result, TextError};
use crate::request::{Part, check_prompt, parts};

/// Least similarity at which a part of a request is taken to mean a tool. Set on the
/// development prompts (`text/eval/dev_prompts.json`), never on the held-out ones.
pub const MATCH_THRESHOLD: f32 = 0.45;
/// A choice is "sure" when its similarity is at least this and it leads the next tool by
/// [`SURE_MARGIN`].
pub const SURE_THRESHOLD: f32 = 0.55;
pub const SURE_MARGIN: f32 = 0.05;

/// A tool a request chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub name: String,
    pub title: String,
    /// Its weight in the mix: less for "a little".
    pub weight: f32,
    /// Similarity of the request's part to the nearest of the tool's texts.
    pub similarity: f32,
    /// The part(s) of the request that chose it, and the tool text nearest to the first.
    pub part: String,
    pub nearest: String,
}

/// What a request asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Routing {
    Chosen {
        tools: Vec<Choice>,
        /// Tools the request said not to use ("don't sharpen").
        excluded: Vec<String>,
        /// Every choice clear of the threshold and of the runner-up.
        sure: bool,
    },
    /// No tool is near enough; `reason` says so in words, naming the nearest.
    NothingFits { reason: String },
}

struct ToolTexts {
    name: String,
    title: String,
    texts: Vec<(String, Embedding)>,
}

/// The tools' texts, embedded once.
pub struct Router {
    tools: Vec<ToolTexts>,
}

/// How near one part of a request is to each tool, nearest first.
struct Ranked {
    part: Part,
    /// (tool index, similarity, nearest text index), by similarity descending.
    order: Vec<(usize, f32, usize)>,
}

impl Router {
    pub fn new(encoder: &SentenceEncoder, adapters: &[AdapterMeta]) -> Result<Self> {
        let mut tools = Vec::with_capacity(adapters.len());
        for meta in adapters {
            let mut texts = vec![meta.title.clone(), meta.description.clone()];
            texts.extend(meta.example_prompts.iter().cloned());
            texts.retain(|t| !t.trim().is_empty());
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embedded = encoder.encode_batch(&refs)?;
            tools.push(ToolTexts {
                name: meta.name.clone(),
                title: meta.title.clone(),
                texts: texts.into_iter().zip(embedded).collect(),
            });
        }
        Ok(Self { tools })
    }

    /// Routes `prompt`; an empty, huge or wordless prompt is an error that says why.
    pub fn route(&self, encoder: &SentenceEncoder, prompt: &str) -> Result<Routing> {
        let prompt = check_prompt(prompt).map_err(TextError::Prompt)?;
        if self.tools.is_empty() {
            return Ok(Routing::NothingFits { reason: "no tools are installed".into() });
        }
        let request = parts(prompt);
        let texts: Vec<&str> = request.iter().map(|p| p.text.as_str()).collect();
        let embedded = encoder.encode_batch(&texts)?;
        let ranked: Vec<Ranked> = request.iter().zip(&embedded).map(|(part, e)| self.rank(part.clone(), e)).collect();
        let clear: Vec<&Ranked> = ranked.iter().filter(|r| r.order[0].1 >= MATCH_THRESHOLD).collect();
        // Read part by part when at least two parts are clear requests (or one clearly says what
        // not to do); otherwise the request is one thing said with an "and" in it ("black and
        // white"), read whole.
        let by_parts = clear.len() >= 2 || clear.iter().any(|r| r.part.negated);
        let whole;
        let readings: Vec<&Ranked> = if by_parts || request.len() == 1 {
            clear
        } else {
            let joined = Part {
                text: texts.join(" "),
                negated: request.iter().any(|p| p.negated),
                weight: request.iter().map(|p| p.weight).fold(f32::INFINITY, f32::min),
            };
            let embedding = encoder.encode(&joined.text)?;
            whole = self.rank(joined, &embedding);
            // The whole, or the one clear part when that says it better ("there's a bin in the
            // corner, take it away").
            let best = clear.first().copied().filter(|part| part.order[0].1 > whole.order[0].1).unwrap_or(&whole);
            if best.order[0].1 >= MATCH_THRESHOLD { vec![best] } else { Vec::new() }
        };
        let mut tools: Vec<Choice> = Vec::new();
        let mut excluded: Vec<String> = Vec::new();
        let mut sure = true;
        for reading in &readings {
            let (tool, similarity, text) = reading.order[0];
            let runner_up = reading.order.get(1).map_or(0.0, |o| o.1);
            sure &= similarity >= SURE_THRESHOLD && similarity - runner_up >= SURE_MARGIN;
            let name = &self.tools[tool].name;
            if reading.part.negated {
                if !excluded.contains(name) {
                    excluded.push(name.clone());
                }
                continue;
            }
            match tools.iter_mut().find(|c| &c.name == name) {
                Some(existing) => {
                    // Two parts asking for one tool: both are its request ("warmer, more contrast").
                    existing.weight = existing.weight.max(reading.part.weight);
                    existing.part = format!("{}, {}", existing.part, reading.part.text);
                }
                None => tools.push(Choice {
                    name: name.clone(),
                    title: self.tools[tool].title.clone(),
                    weight: reading.part.weight,
                    similarity,
                    part: reading.part.text.clone(),
                    nearest: self.tools[tool].texts[text].0.clone(),
                }),
            }
        }
        tools.retain(|c| !excluded.contains(&c.name));
        if !tools.is_empty() {
            return Ok(Routing::Chosen { tools, excluded, sure });
        }
        let reason = if !excluded.is_empty() {
            format!("the prompt only says what not to do ({}); say what to do", excluded.join(", "))
        } else {
            let best = ranked.iter().map(|r| r.order[0]).max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((tool, similarity, _)) => format!(
                    "no tool fits \"{prompt}\" (the nearest, {}, scores {similarity:.2}; {MATCH_THRESHOLD:.2} is needed)",
                    self.tools[tool].title
                ),
                None => format!("no tool fits \"{prompt}\""),
            }
        };
        Ok(Routing::NothingFits { reason })
    }

    fn rank(&self, part: Part, embedding: &Embedding) -> Ranked {
        let mut order: Vec<(usize, f32, usize)> = self
            .tools
            .iter()
            .enumerate()
            .map(|(index, tool)| {
                let (text, similarity) = tool
                    .texts
                    .iter()
                    .enumerate()
                    .map(|(i, (_, e))| (i, e.similarity(embedding)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or((0, f32::MIN));
                (index, similarity, text)
            })
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ranked { part, order }
    }
}
