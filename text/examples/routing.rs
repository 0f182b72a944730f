//! Routing accuracy on written paraphrases, the sentence encoder against the keyword matcher it
//! replaced, in one run; and how long encoding a prompt takes.
//!
//! `cargo run --release -p prism-text --example routing [-- --set dev|heldout] [--verbose]`
//!
//! The thresholds in `router` are set on the dev set; the held-out set is only ever measured. A
//! prompt's expected tools count only those installed in `assets/` (and the look tool).

use std::path::Path;
use std::time::Instant;

use prism_engine::adapter::{Adapter, AdapterMeta};
use prism_engine::model::adapter_files_in;
use prism_text::keywords::match_prompt;
use prism_text::{Prompter, Routing, SentenceEncoder};

#[derive(serde::Deserialize)]
struct Set {
    prompts: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    prompt: String,
    tools: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let set_name = args.iter().position(|a| a == "--set").and_then(|i| args.get(i + 1)).map_or("heldout", String::as_str);
    let verbose = args.iter().any(|a| a == "--verbose");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let assets = root.join("assets");
    let set: Set = serde_json::from_str(&std::fs::read_to_string(root.join(format!("text/eval/{set_name}_prompts.json")))?)?;
    let metas: Vec<AdapterMeta> =
        adapter_files_in(&assets.join("adapters")).iter().map(|p| Ok(Adapter::read(p)?.meta)).collect::<anyhow::Result<_>>()?;

    let started = Instant::now();
    let encoder = SentenceEncoder::load(&assets)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    // What the CLI and the editor hold: the tools and, when the model has one, the look tool.
    let prompter = Prompter::load(&assets, &metas)?;
    let index_ms = started.elapsed().as_secs_f64() * 1e3 - load_ms;

    let (mut router_right, mut keyword_right) = (0, 0);
    for item in &set.prompts {
        // A request for a tool that is not installed is answered right by choosing nothing for it.
        let mut want: Vec<String> =
            item.tools.iter().filter(|t| *t == "look" || metas.iter().any(|m| &m.name == *t)).cloned().collect();
        want.sort();
        let routed = prompter.route(&item.prompt, None)?;
        let mut got: Vec<String> = match &routed {
            Routing::Chosen { tools, .. } => tools.iter().map(|c| c.name.clone()).collect(),
            Routing::NothingFits { .. } => Vec::new(),
        };
        got.sort();
        let mut keywords: Vec<String> = match_prompt(&item.prompt, &metas).into_iter().map(|m| m.name).collect();
        keywords.sort();
        router_right += usize::from(got == want);
        keyword_right += usize::from(keywords == want);
        if verbose || got != want {
            let detail = match &routed {
                Routing::Chosen { tools, excluded, sure } => format!(
                    "{} excluded {excluded:?} sure {sure}",
                    tools
                        .iter()
                        .map(|c| format!("{}@{:.2} ({:.3} '{}')", c.name, c.weight, c.similarity, c.nearest))
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
                Routing::NothingFits { reason } => reason.clone(),
            };
            println!("{} {:52} want {want:?} got {got:?}: {detail}", if got == want { "  " } else { "XX" }, item.prompt);
        }
    }
    let n = set.prompts.len();
    println!();
    println!("| {set_name} prompts ({n}) | right | accuracy |");
    println!("|---|---:|---:|");
    println!("| sentence encoder (all-MiniLM-L6-v2, int8) | {router_right} | {:.1}% |", 100.0 * router_right as f64 / n as f64);
    println!("| keyword matcher (before) | {keyword_right} | {:.1}% |", 100.0 * keyword_right as f64 / n as f64);

    // Encoding time: every prompt of the set once as a warm-up, then each timed, median reported.
    let mut times: Vec<f64> = Vec::new();
    for item in set.prompts.iter().chain(&set.prompts) {
        let started = Instant::now();
        encoder.encode(&item.prompt)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut timed = times.split_off(n);
    timed.sort_by(f64::total_cmp);
    println!();
    println!(
        "encoder load {load_ms:.0} ms, tool index {index_ms:.0} ms ({} tools{}), one prompt: median {:.2} ms, slowest {:.2} ms",
        metas.len(),
        if prompter.looks().is_some() { " and the look tool" } else { "" },
        timed[timed.len() / 2],
        timed[timed.len() - 1]
    );
    Ok(())
}
