//! The shipped sentence encoder and routing by meaning, on the shipped adapters' metadata.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prism_engine::adapter::{Adapter, AdapterMeta};
use prism_engine::model::adapter_files_in;
use prism_text::router::Routing;
use prism_text::{Embedding, Router, SentenceEncoder, TextError};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

fn encoder() -> &'static SentenceEncoder {
    static ENCODER: OnceLock<SentenceEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| SentenceEncoder::load(&assets()).expect("the shipped encoder loads"))
}

fn metas() -> Vec<AdapterMeta> {
    adapter_files_in(&assets().join("adapters")).iter().map(|p| Adapter::read(p).expect("adapter").meta).collect()
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| Router::new(encoder(), &metas()).expect("router"))
}

fn chosen(prompt: &str) -> Vec<(String, f32)> {
    match router().route(encoder(), prompt, None).expect("routes") {
        Routing::Chosen { tools, .. } => tools.into_iter().map(|c| (c.name, c.weight)).collect(),
        Routing::NothingFits { reason } => panic!("nothing fits {prompt:?}: {reason}"),
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    prompts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
fn the_int8_encoder_agrees_with_the_f32_model() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/f32_reference.json");
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("json");
    assert!(reference.prompts.len() >= 8);
    let texts: Vec<&str> = reference.prompts.iter().map(String::as_str).collect();
    let got = encoder().encode_batch(&texts).expect("encode");
    for ((prompt, want), got) in reference.prompts.iter().zip(reference.embeddings).zip(got) {
        let cosine = Embedding(want).similarity(&got);
        assert!(cosine >= 0.99, "{prompt:?}: cosine {cosine} against the f32 model");
    }
}

#[test]
fn meaning_not_words_a_paraphrase_sharing_no_word_with_the_tool_is_routed_to_it() {
    let prompt = "a grainless version please";
    let words = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    let denoise = metas().into_iter().find(|m| m.name == "denoise").expect("denoise is shipped");
    let mut vocabulary = words(&denoise.title);
    vocabulary.extend(words(&denoise.description));
    denoise.example_prompts.iter().for_each(|p| vocabulary.extend(words(p)));
    assert!(words(prompt).is_disjoint(&vocabulary), "the test prompt must share no word with the metadata");
    assert_eq!(chosen(prompt), vec![("denoise".to_string(), 1.0)]);
    // The keyword matcher it replaced finds nothing there.
    assert!(prism_text::keywords::match_prompt(prompt, &metas()).iter().all(|m| m.name != "denoise"));
}

#[test]
fn two_requests_negation_and_intensity() {
    let mut both = chosen("get rid of the grain and then make it crisper");
    both.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(both, vec![("denoise".to_string(), 1.0), ("sharpen".to_string(), 1.0)]);
    match router().route(encoder(), "remove noise but don't sharpen", None).expect("routes") {
        Routing::Chosen { tools, excluded, .. } => {
            assert_eq!(tools.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["denoise"]);
            assert_eq!(excluded, vec!["sharpen".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(chosen("make it slightly brighter"), vec![("lowlight".to_string(), 0.5)]);
}

#[test]
fn off_topic_empty_huge_and_foreign_prompts_get_a_clear_answer() {
    for prompt in ["write me a poem about cats", "what's the weather tomorrow"] {
        match router().route(encoder(), prompt, None).expect("routes") {
            Routing::NothingFits { reason } => assert!(reason.contains("no tool fits"), "{reason}"),
            other => panic!("{prompt:?} chose {other:?}"),
        }
    }
    for prompt in ["", "   ", &"a".repeat(100_000), "?!"] {
        match router().route(encoder(), prompt, None) {
            Err(TextError::Prompt(message)) => assert!(!message.is_empty()),
            other => panic!("{:?}... gave {other:?}", &prompt[..prompt.len().min(20)]),
        }
    }
    // An English-only encoder on other languages: an answer either way, never a panic.
    for prompt in ["entferne das Rauschen", "画像を明るくして", "убери шум"] {
        let routed = router().route(encoder(), prompt, None).expect("an answer");
        assert!(matches!(routed, Routing::Chosen { .. } | Routing::NothingFits { .. }));
    }
}

/// A colorize tool as a user would install one (the shipped set leaves colorize out): its
/// description and examples as the recipe writes them, for grey photos only.
fn installed_colorize() -> AdapterMeta {
    let mut meta = metas().into_iter().next().expect("a shipped tool");
    meta.name = "colorize".into();
    meta.task = "colorize".into();
    meta.title = "Colorize".into();
    meta.description = "Turns a black-and-white photo into a plausible colour one.".into();
    meta.example_prompts =
        ["colorize", "add color to this black and white photo", "make it colour", "colour in the old monochrome picture"]
            .map(String::from)
            .to_vec();
    meta.fits = prism_engine::photo_fit::PhotoFit::Grey;
    meta
}

#[test]
fn colorize_is_a_candidate_for_a_grey_photo_and_not_for_one_with_colours() {
    use prism_engine::fixtures::synthetic_photo;
    let colorize = installed_colorize();
    let with_colorize = Router::new(encoder(), &[metas(), vec![colorize.clone()]].concat()).expect("router");
    let colour = synthetic_photo(96, 64, 4);
    let mut grey = colour.clone();
    for p in grey.data.chunks_exact_mut(3) {
        let y = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        p.fill(y);
    }
    let names =
        |photo| match with_colorize.route(encoder(), "bring the colours back to this old photo", Some(photo)).expect("routes") {
            Routing::Chosen { tools, .. } => tools.into_iter().map(|c| c.name).collect::<Vec<_>>(),
            Routing::NothingFits { .. } => Vec::new(),
        };
    assert_eq!(names(&grey), vec![colorize.name.clone()]);
    assert!(!names(&colour).contains(&colorize.name), "Colorize chosen for a photo with colours");
    // Without it (the shipped set), a request for colour is one no tool does, not the nearest tool.
    match router().route(encoder(), "bring the colours back to this old photo", Some(&grey)).expect("routes") {
        Routing::NothingFits { reason } => assert!(reason.contains("do not do"), "{reason}"),
        other => panic!("a colour request went to {other:?}"),
    }
}
