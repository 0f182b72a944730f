//! `MODEL_CARD.md`: the fixed text lives in `adapters/templates/` as markdown, the numbers are
//! filled in from what `eval` measured and the QUAD report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use prism_engine::adapter::Adapter;
use prism_engine::model::{ADAPTERS_DIR, Model};
use prism_engine::settings::{DEFAULT_BLUR_SIZE, ToolSetting};
use prism_engine::unet::{FloatActivations, Unet};

use crate::data::{Credit, Split};
use crate::eval::{EVAL_CROP, Latency, Score, TaskScores, setting_grid};
use crate::quad::QuadReport;
use crate::tasks::ALL_TASKS;
use crate::train::Batch;

const TEMPLATE: &str = include_str!("../templates/model_card.md");
const SHORTFALL_TEMPLATE: &str = include_str!("../templates/model_card_short.md");

/// The quality target: every tool beats its best classical peer by this much PSNR.
const TARGET_MARGIN_DB: f64 = 1.0;

/// The model this one replaced (channels [32, 64, 128], adapters of rank 8 and 32), scored by this
/// same `eval` on a copy of the folder it shipped in, 2026-12-07 (docs/model-v2.md): tool, int8 PSNR
/// at the eval's setting, and at the tool's default (the same run where the tool took no setting).
const REPLACED_MODEL: &[(&str, f64, f64)] = &[
    ("colorize", 18.36, 18.36),
    ("dejpeg", 29.74, 29.74),
    ("denoise", 28.13, 28.13),
    ("lowlight", 23.74, 21.53),
    ("remove", 19.36, 19.36),
    ("sharpen", 29.57, 29.27),
    ("sharpen-shaken", 27.94, 27.94),
    ("upscale", 32.85, 32.85),
];

/// `template` with every `{{name}}` replaced by its value. A placeholder without a value, or a
/// value without a placeholder, is an error: the card never ships a hole or loses a number.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String> {
    let mut out = template.to_string();
    for (name, value) in values {
        let slot = format!("{{{{{name}}}}}");
        if !out.contains(&slot) {
            bail!("the model card template has no {slot}");
        }
        out = out.replace(&slot, value);
    }
    if let Some(start) = out.find("{{") {
        let name: String = out[start..].chars().take_while(|c| *c != '\n').take(40).collect();
        bail!("the model card template's {name} was not filled");
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub fn model_card(
    data_dir: &Path,
    model: &Model,
    scores: &[TaskScores],
    gaps: &str,
    latency: &Latency,
    credits: &[Credit],
    by_hand: &BTreeMap<String, (ToolSetting, f32)>,
    quad: &QuadReport,
) -> Result<String> {
    let config = model.config();
    let heldout: Vec<&str> = credits.iter().filter(|c| c.split == Split::Heldout).map(|c| c.id.as_str()).collect();
    let ranks = adapter_ranks(&model.dir)?;
    let distinct: std::collections::BTreeSet<usize> = ranks.values().copied().collect();
    let gflop = |flops: u64| format!("{:.2}", flops as f64 / 1e9);
    let model_lines = [
        format!(
            "- Architecture: prism-unet, channels {:?}, blocks {:?}{}, LoRA on every conv (max rank {}); adapter ranks: {}",
            config.channels,
            config.blocks,
            if config.head_sees_input { ", the head reading the unshuffled photo beside the decoder" } else { "" },
            config.max_rank,
            ranks.iter().map(|(task, rank)| format!("{task} {rank}")).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "- Parameters: {} (base); each adapter: {}",
            config.parameter_count(),
            distinct.iter().map(|&r| format!("{} LoRA values at rank {r}", config.lora_values(r))).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "- FLOPs per 512x512 edit (multiply-add = 2): {} GFLOP for the base; with one adapter bound {}",
            gflop(config.flops(512, 512)),
            distinct
                .iter()
                .map(|&r| format!("{} GFLOP at rank {r}", gflop(config.flops(512, 512) + config.lora_flops(512, 512, r))))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "- 512x512 global edit on the reference CPU backend (median of 3, whole pipeline): int8 {:.0} ms, float {:.0} ms; tool switch {:.0} µs",
            latency.int8.as_secs_f64() * 1e3,
            latency.float.as_secs_f64() * 1e3,
            latency.switch.as_secs_f64() * 1e6
        ),
        format!("- Base model hash `{}`, shared profile `{}` ({})", model.hash, model.profile.id, model.profile.method),
    ];
    let mut quad_table = String::from(
        "| adapter | sensitivity (MSE) | (a) own PTQ | (b) shared PTQ | (c) QUAD | (c) - (b) | QUAD W8A8 |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &quad.rows {
        let _ = writeln!(
            quad_table,
            "| {} | {:.2e} | {:.2} dB | {:.2} dB | {:.2} dB | {:+.2} dB | {:.2} dB |",
            r.task,
            r.sensitivity,
            r.own_ptq_db,
            r.shared_ptq_db,
            r.quad_db,
            r.quad_db - r.shared_ptq_db,
            r.quad_w8a8_db
        );
    }
    let mut settings = String::new();
    for (tool, (setting, value)) in by_hand {
        let grid: Vec<String> = setting_grid(*setting).iter().map(|v| v.to_string()).collect();
        let default = match setting {
            ToolSetting::Exposure => "the exposure the editor estimates from each photo".to_string(),
            ToolSetting::BlurSize => format!("the default blur size, {DEFAULT_BLUR_SIZE}"),
            ToolSetting::NoiseLevel => "the noise level the editor estimates from each photo".to_string(),
            ToolSetting::DeblurSize => "the blur size the editor estimates from each photo".to_string(),
        };
        let _ = writeln!(
            settings,
            "{tool} takes a setting, its {}: the `prism` columns ran at {value}, the best of {{{}}} over the held-out set, as the\n\
             peer's parameters are the best of its grid; `prism_default` ran at {default} (what the editor uses\n\
             until the user sets it).\n",
            setting.describe(),
            grid.join(", ")
        );
    }
    let (quality_table, short) = quality_table(scores);
    let shortfall = if short.is_empty() {
        format!("Every tool beats its best peer by at least {TARGET_MARGIN_DB} dB.")
    } else {
        shortfall(data_dir, model, &short, gaps)?
    };
    fill(
        TEMPLATE,
        &[
            ("date", today()),
            ("model", model_lines.join("\n")),
            ("train_count", credits.iter().filter(|c| c.split == Split::Train).count().to_string()),
            ("heldout_count", heldout.len().to_string()),
            ("heldout", heldout.join(", ")),
            ("quad_steps", quad.distill_steps.to_string()),
            ("quad_minutes", format!("{:.1}", quad.seconds / 60.0)),
            ("quad_crop", crate::quad::TABLE_CROP.to_string()),
            ("quad_mode", quad.mode.to_string()),
            ("quad_reason", quad.reason.clone()),
            ("quad_table", quad_table.trim_end().to_string()),
            ("eval_crop", EVAL_CROP.to_string()),
            ("settings", settings),
            ("quality_table", quality_table.trim_end().to_string()),
            ("before_after", before_after(scores).trim_end().to_string()),
            ("shortfall", shortfall.trim_end().to_string()),
        ],
    )
}

/// The held-out quality table, and the tools short of the target with by how much.
fn quality_table(scores: &[TaskScores]) -> (String, Vec<String>) {
    let mut table = String::from(
        "| tool | region | prism int8 | prism float | best peer | margin | all methods |\n|---|---|---|---|---|---|---|\n",
    );
    let mut short = Vec::new();
    for t in scores {
        let find = |m: &str| t.scores.iter().find(|x| x.method == m);
        let peers: Vec<&Score> = t.scores.iter().filter(|x| !x.method.starts_with("prism")).collect();
        let best = peers.iter().max_by(|a, b| a.psnr.total_cmp(&b.psnr));
        let (Some(ours), Some(float), Some(best)) = (find("prism"), find("prism_float"), best) else { continue };
        let all: Vec<String> = t
            .scores
            .iter()
            .map(|x| {
                let note = if x.note.is_empty() { String::new() } else { format!(" ({})", x.note) };
                let removal = match (x.sharpness, x.edge_band) {
                    (Some(sharpness), Some(edge)) => format!(" sharpness {sharpness:.2} edge {edge:.4}"),
                    _ => String::new(),
                };
                format!("{} {:.2}/{:.3}{removal}{note}", x.method, x.psnr, x.ssim)
            })
            .collect();
        let margin = ours.psnr - best.psnr;
        let _ = writeln!(
            table,
            "| {} | {} | {:.2} dB / {:.3} | {:.2} dB / {:.3} | {} {:.2} dB / {:.3} | {margin:+.2} dB | {} |",
            t.task,
            t.metric_region,
            ours.psnr,
            ours.ssim,
            float.psnr,
            float.ssim,
            best.method,
            best.psnr,
            best.ssim,
            all.join("; ")
        );
        if margin < TARGET_MARGIN_DB {
            short.push(format!("{} by {:.2} dB", t.task, TARGET_MARGIN_DB - margin));
        }
    }
    (table, short)
}

/// What the tools short of the target lack, and what would close it, from what was measured.
fn shortfall(data_dir: &Path, model: &Model, short: &[String], gaps: &str) -> Result<String> {
    let alone = base_alone(data_dir, model.float()?)?;
    fill(
        SHORTFALL_TEMPLATE,
        &[
            ("target", TARGET_MARGIN_DB.to_string()),
            ("short", short.join(", ")),
            ("gaps", gaps.trim_end().to_string()),
            ("base_alone", alone.table),
            ("base_improves", if alone.improved.is_empty() { "no tool".to_string() } else { alone.improved.join(", ") }),
        ],
    )
}

/// This model's int8 PSNR beside the replaced model's, tool by tool, at the eval's setting and at
/// the tool's default.
fn before_after(scores: &[TaskScores]) -> String {
    let mut table = String::from(
        "| tool | replaced model: at the eval's setting / default | this model: at the eval's setting / default | change at the default |\n|---|---|---|---|\n",
    );
    for t in scores {
        let Some(&(_, before, before_default)) = REPLACED_MODEL.iter().find(|(task, ..)| *task == t.task) else { continue };
        let find = |m: &str| t.scores.iter().find(|x| x.method == m).map(|x| x.psnr);
        let Some(after) = find("prism") else { continue };
        let after_default = find("prism_default").unwrap_or(after);
        let _ = writeln!(
            table,
            "| {} | {before:.2} / {before_default:.2} dB | {after:.2} / {after_default:.2} dB | {:+.2} dB |",
            t.task,
            after_default - before_default
        );
    }
    table
}

/// The float base with no adapter on every tool's held-out crops.
struct BaseAlone {
    /// "tool: L1 of the base / L1 of doing nothing" for every tool.
    table: String,
    /// The tools where the base beats doing nothing.
    improved: Vec<&'static str>,
}

fn base_alone(data_dir: &Path, base: &Unet) -> Result<BaseAlone> {
    let mut parts = Vec::new();
    let mut improved = Vec::new();
    for task in ALL_TASKS {
        let batch = Batch::new(&crate::quad::heldout_examples(data_dir, task, 128)?, base.config().hole_fill)?;
        let loss = batch.loss(&base.forward(&batch.input, None, &mut FloatActivations)?)?.to_scalar::<f32>()? as f64;
        let identity = batch.identity_loss()?;
        parts.push(format!("{} {loss:.3} / {identity:.3}", task.id()));
        if loss < identity {
            improved.push(task.id());
        }
    }
    Ok(BaseAlone { table: parts.join(", "), improved })
}

/// The rank of each int8 adapter the folder holds, by tool.
fn adapter_ranks(assets: &Path) -> Result<BTreeMap<&'static str, usize>> {
    ALL_TASKS
        .iter()
        .map(|task| (task, assets.join(ADAPTERS_DIR).join(format!("{}.prism-lora", task.id()))))
        .filter(|(_, path)| path.exists())
        .map(|(task, path)| Ok((task.id(), Adapter::read(&path)?.meta.rank)))
        .collect()
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_refuses_holes_and_lost_numbers() {
        assert_eq!(fill("a {{x}} b {{x}}", &[("x", "1".into())]).unwrap(), "a 1 b 1");
        assert!(fill("a {{x}} {{y}}", &[("x", "1".into())]).unwrap_err().to_string().contains("{{y}}"));
        assert!(fill("a {{x}}", &[("x", "1".into()), ("z", "2".into())]).unwrap_err().to_string().contains("{{z}}"));
    }

    /// Every placeholder of both templates is one the card fills (the names the code passes).
    #[test]
    fn the_shipped_templates_have_exactly_the_placeholders_the_card_fills() {
        let names = |template: &str| -> Vec<String> {
            template.split("{{").skip(1).map(|part| part.split("}}").next().unwrap_or_default().to_string()).collect()
        };
        let mut main = names(TEMPLATE);
        main.sort();
        main.dedup();
        assert_eq!(
            main,
            [
                "before_after",
                "date",
                "eval_crop",
                "heldout",
                "heldout_count",
                "model",
                "quad_crop",
                "quad_minutes",
                "quad_mode",
                "quad_reason",
                "quad_steps",
                "quad_table",
                "quality_table",
                "settings",
                "shortfall",
                "train_count"
            ]
        );
        let mut short = names(SHORTFALL_TEMPLATE);
        short.sort();
        short.dedup();
        assert_eq!(short, ["base_alone", "base_improves", "gaps", "short", "target"]);
    }
}
