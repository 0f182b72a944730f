//! The keyword matcher the prompt box used before the sentence encoder: a typed request picks and
//! weights tools by matching word stems against each adapter's name, title, description and
//! example prompts. Kept as the baseline the encoder's routing is measured against
//! (`cargo run --release -p prism-text --example routing`).

use std::collections::BTreeSet;

use prism_engine::adapter::AdapterMeta;

/// Words that say nothing about which tool is meant.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "it", "this", "that", "my", "me", "please", "make", "with", "from",
    "for", "is", "be", "some", "bit", "little", "more", "less", "photo", "image", "picture", "up", "out", "all", "its", "at",
    "by", "can", "you", "i", "so", "too", "very", "get", "rid",
];

/// A tool the prompt chose, with its weight in the blend and the words that matched.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptMatch {
    pub name: String,
    pub weight: f32,
    pub matched: Vec<String>,
}

/// Lower-case word stems: "Removing", "removed" and "remove" all become "remov".
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "es", "er", "en", "s", "e", "y"] {
        if let Some(stripped) = word.strip_suffix(suffix)
            && stripped.chars().count() >= 3
        {
            return stripped.to_string();
        }
    }
    word.to_string()
}

/// Scores every adapter against `prompt` and keeps those within half of the best score. Weights
/// are relative to the best match (1.0); an empty result means nothing matched.
pub fn match_prompt(prompt: &str, adapters: &[AdapterMeta]) -> Vec<PromptMatch> {
    let query: BTreeSet<String> = words(prompt).into_iter().collect();
    if query.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(f32, PromptMatch)> = adapters
        .iter()
        .filter_map(|meta| {
            let name: BTreeSet<String> = words(&format!("{} {}", meta.name, meta.title)).into_iter().collect();
            let prompts: BTreeSet<String> = meta.example_prompts.iter().flat_map(|p| words(p)).collect();
            let description: BTreeSet<String> = words(&meta.description).into_iter().collect();
            let mut score = 0.0;
            let mut matched = Vec::new();
            for word in &query {
                let weight = if name.contains(word) {
                    3.0
                } else if prompts.contains(word) {
                    2.0
                } else if description.contains(word) {
                    1.0
                } else {
                    0.0
                };
                if weight > 0.0 {
                    score += weight;
                    matched.push(word.clone());
                }
            }
            (score > 0.0).then(|| (score, PromptMatch { name: meta.name.clone(), weight: 0.0, matched }))
        })
        .collect();
    let best = scored.iter().map(|(s, _)| *s).fold(0.0, f32::max);
    scored.retain(|(s, _)| *s >= best * 0.5);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    scored
        .into_iter()
        .map(|(score, mut m)| {
            m.weight = ((score / best) * 20.0).round() / 20.0;
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::adapter::{AdapterPrecision, Region};

    fn meta(name: &str, title: &str, description: &str, prompts: &[&str]) -> AdapterMeta {
        AdapterMeta {
            name: name.into(),
            title: title.into(),
            task: name.into(),
            description: description.into(),
            example_prompts: prompts.iter().map(|p| p.to_string()).collect(),
            rank: 8,
            alpha: 8.0,
            base_model: String::new(),
            profile: String::new(),
            created_by: String::new(),
            metrics: serde_json::Value::Null,
            region: Region::Global,
            scale: 1,
            upsampling: Default::default(),
            doubling_filters: None,
            setting: None,
            fits: prism_engine::photo_fit::PhotoFit::Any,
            precision: AdapterPrecision::Int8,
        }
    }

    fn tools() -> Vec<AdapterMeta> {
        vec![
            meta(
                "remove",
                "Remove object",
                "Fills the painted region from its surroundings.",
                &["erase the person", "get rid of the sign"],
            ),
            meta("denoise", "Denoise", "Removes sensor noise and grain.", &["clean up the grain", "reduce noise"]),
            meta("sharpen", "Sharpen", "Restores detail lost to blur.", &["fix the blurry photo", "make it crisp"]),
        ]
    }

    #[test]
    fn picks_the_tool_the_words_name() {
        let chosen = match_prompt("please erase that person", &tools());
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].name, "remove");
        assert_eq!(chosen[0].weight, 1.0);
        assert_eq!(match_prompt("it is too blurry", &tools())[0].name, "sharpen");
        assert_eq!(match_prompt("Denoising", &tools())[0].name, "denoise");
    }

    #[test]
    fn two_requests_blend_two_tools_and_nonsense_matches_nothing() {
        let chosen = match_prompt("reduce the noise and sharpen it", &tools());
        let names: Vec<&str> = chosen.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{chosen:?}");
        assert!(names.contains(&"denoise") && names.contains(&"sharpen"));
        assert!(chosen.iter().all(|m| m.weight > 0.0 && m.weight <= 1.0));
        assert!(match_prompt("qwxz", &tools()).is_empty());
        assert!(match_prompt("the a of", &tools()).is_empty());
    }
}
