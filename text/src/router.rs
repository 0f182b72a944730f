//! Routing a typed request to tools by meaning: every adapter's title, description and example
//! prompts are embedded once; each part of a request goes to the tool whose texts are nearest,
//! if near enough, and the answer says what it chose, how sure it is, or that nothing fits. A
//! tool that is not for the photo at hand (Colorize on a photo with colours) is not a candidate.

use prism_engine::adapter::AdapterMeta;
use prism_engine::imageio::RgbImage;
use prism_engine::photo_fit::PhotoFit;

use crate::encoder::{Embedding, SentenceEncoder};
use crate::error::{Result, TextError};
use crate::request::{Part, check_prompt, parts};

/// Least similarity at which a part of a request is taken to mean a tool. Set on the
/// development prompts (`text/eval/dev_prompts.json`), never on the held-out ones.
pub const MATCH_THRESHOLD: f32 = 0.40;
/// A choice is "sure" when its similarity is at least this and it leads the next tool by
/// [`SURE_MARGIN`].
pub const SURE_THRESHOLD: f32 = 0.55;
pub const SURE_MARGIN: f32 = 0.05;

/// Requests people make of an image editor that no Prism tool does. A part nearer to one of
/// these than to every tool is not routed (the tools' texts alone cannot say what they are not:
/// "blur the background" is near "fix the blur").
const ELSEWHERE: &[&str] = &[
    "crop the picture",
    "rotate the image",
    "flip it horizontally",
    "resize it smaller",
    "add text or a caption",
    "draw something on it",
    "add a sticker or an object",
    "put a frame or border around it",
    "undo the last step",
    "save or export the file",
    "print or share the photo",
    "blur the background",
    "add bokeh",
    "replace the background",
    "change someone's face or expression",
    "answer a question",
    "what is in this picture",
    "hello, how are you",
    "what time is it",
    "how big is the file",
    "convert or save it as a png or jpeg file",
    "change the colour of one object",
    "write a story or an email",
    "search the internet",
];

/// Tools Prism has trained but does not ship, by task, with requests for them (some of the
/// recipe's own example prompts for the tool, `adapters/src/tasks.rs`; colorize: it does not beat
/// the grey photo by 1 dB, `assets/MODEL_CARD.md`). Unless a tool of that task is
/// installed, these join what no tool does: otherwise "make it colour" lands on the nearest tool,
/// the look tool's black and white.
const NOT_SHIPPED: &[(&str, &[&str])] = &[(
    "colorize",
    &[
        "colorize",
        "add color to this black and white photo",
        "colour in the old monochrome picture",
        "turn the grayscale image into a color one",
        "give my vintage family photo natural colours",
        "restore the colours of an old black-and-white print",
    ],
)];

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
    fits: PhotoFit,
    texts: Vec<(String, Embedding)>,
}

/// The tools' texts, embedded once, and what no tool does.
pub struct Router {
    tools: Vec<ToolTexts>,
    elsewhere: Vec<(&'static str, Embedding)>,
}

/// How near one part of a request is to each tool, nearest first.
struct Ranked {
    part: Part,
    /// (tool index, similarity, nearest text index), by similarity descending.
    order: Vec<(usize, f32, usize)>,
    /// The nearest request no tool does, and its similarity.
    elsewhere: (&'static str, f32),
}

impl Ranked {
    /// Near enough to its best tool, and nearer to it than to anything no tool does.
    fn is_clear(&self) -> bool {
        self.order[0].1 >= MATCH_THRESHOLD && self.order[0].1 > self.elsewhere.1
    }
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
                fits: meta.fits,
                texts: texts.into_iter().zip(embedded).collect(),
            });
        }
        let mut nowhere: Vec<&'static str> = ELSEWHERE.to_vec();
        for (task, requests) in NOT_SHIPPED {
            if !adapters.iter().any(|meta| meta.task == *task) {
                nowhere.extend_from_slice(requests);
            }
        }
        let elsewhere = nowhere.iter().copied().zip(encoder.encode_batch(&nowhere)?).collect();
        Ok(Self { tools, elsewhere })
    }

    /// Routes `prompt` for `photo` (every tool is a candidate when there is none); an empty,
    /// huge or wordless prompt is an error that says why.
    pub fn route(&self, encoder: &SentenceEncoder, prompt: &str, photo: Option<&RgbImage>) -> Result<Routing> {
        let prompt = check_prompt(prompt).map_err(TextError::Prompt)?;
        if self.tools.is_empty() {
            return Ok(Routing::NothingFits { reason: "no tools are installed".into() });
        }
        let candidates: Vec<usize> =
            (0..self.tools.len()).filter(|&i| photo.is_none_or(|photo| self.tools[i].fits.admits(photo))).collect();
        if candidates.is_empty() {
            return Ok(Routing::NothingFits { reason: "none of the installed tools is for this photo".into() });
        }
        let request = parts(prompt);
        let texts: Vec<&str> = request.iter().map(|p| p.text.as_str()).collect();
        let embedded = encoder.encode_batch(&texts)?;
        let ranked: Vec<Ranked> =
            request.iter().zip(&embedded).map(|(part, e)| self.rank(part.clone(), e, &candidates)).collect();
        let clear: Vec<&Ranked> = ranked.iter().filter(|r| r.is_clear()).collect();
        // A request of several parts is read part by part when a clear part says what not to do,
        // or when two or more parts are clear requests that together match better than the
        // whole does ("denoise, then sharpen"); otherwise it is one thing said with an "and" in
        // it ("convert from black and white to colour"), read whole, or its one clear part.
        let whole = if request.len() > 1 {
            let joined = Part {
                text: texts.join(" "),
                negated: request.iter().any(|p| p.negated),
                weight: request.iter().map(|p| p.weight).fold(f32::INFINITY, f32::min),
            };
            let embedding = encoder.encode(&joined.text)?;
            Some(self.rank(joined, &embedding, &candidates))
        } else {
            None
        };
        let parts_mean = clear.iter().map(|r| r.order[0].1).sum::<f32>() / clear.len().max(1) as f32;
        let readings: Vec<&Ranked> = match &whole {
            None => clear,
            Some(_) if clear.iter().any(|r| r.part.negated) => clear,
            Some(whole) if clear.len() >= 2 && !(whole.is_clear() && whole.order[0].1 >= parts_mean) => clear,
            Some(whole) => {
                let best = clear.first().copied().filter(|part| part.order[0].1 > whole.order[0].1).unwrap_or(whole);
                if best.is_clear() { vec![best] } else { Vec::new() }
            }
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
            let best = ranked.iter().max_by(|a, b| a.order[0].1.total_cmp(&b.order[0].1));
            match best.map(|r| (r.order[0], r.elsewhere)) {
                Some(((_, similarity, _), (elsewhere, beyond))) if beyond >= similarity => {
                    format!("no tool fits \"{prompt}\": it sounds like \"{elsewhere}\", which Prism's tools do not do")
                }
                Some(((tool, similarity, _), _)) => format!(
                    "no tool fits \"{prompt}\" (the nearest, {}, scores {similarity:.2}; {MATCH_THRESHOLD:.2} is needed)",
                    self.tools[tool].title
                ),
                None => format!("no tool fits \"{prompt}\""),
            }
        };
        Ok(Routing::NothingFits { reason })
    }

    /// How near `embedding` is to each of the `candidates` (indices into the tools, not empty).
    fn rank(&self, part: Part, embedding: &Embedding, candidates: &[usize]) -> Ranked {
        let mut order: Vec<(usize, f32, usize)> = candidates
            .iter()
            .map(|&index| {
                let tool = &self.tools[index];
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
        let elsewhere = self
            .elsewhere
            .iter()
            .map(|(text, e)| (*text, e.similarity(embedding)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("", f32::MIN));
        Ranked { part, order, elsewhere }
    }
}
