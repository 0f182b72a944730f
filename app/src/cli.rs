//! Headless commands: `prism edit`, `prism adapters list|inspect|install`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use prism_engine::adapter::AdapterPrecision;
use prism_engine::backends::{BackendKind, Precision, Provider};
use prism_engine::engine::{Command, EngineHandle, Event};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, OutputFormat, Picture, RgbImage, load_mask, load_picture, save_picture};
use prism_engine::job::EditJob;
use prism_engine::mix::Mix;
use prism_engine::model::{Model, read_any_adapter};
use prism_engine::record::{EditRecord, file_entries};

use crate::library::{all_adapter_files, find_model_dir, install_adapter};

#[derive(Parser, Debug)]
#[command(name = "prism", version, about = "Local image editing with one shared quantized model and LoRA tools")]
pub struct Args {
    #[command(subcommand)]
    command: Option<Commands>,
    /// Image to open in the editor.
    image: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Apply a tool (or a blend of tools) to an image and write the result.
    Edit(EditArgs),
    /// Measure tool switching, memory and forward times on the shipped model (wgpu backend).
    Bench(BenchArgs),
    /// Write the model as ONNX with every adapter tensor as a graph input (for ONNX Runtime).
    ExportOnnx(ExportArgs),
    /// What this machine offers and what Prism will use (GPU adapters, ONNX Runtime, CPU
    /// kernels, the model); exits non-zero when no edit can run.
    Doctor(ModelArgs),
    /// Every shipped tool in turn on a sample photo: switch, forward and memory per tool, live,
    /// then a summary (for showing what runs where).
    Demo(DemoArgs),
    /// Write the man page and shell completions into a folder (for packagers).
    #[command(hide = true)]
    PackageFiles {
        #[arg(long)]
        out: PathBuf,
    },
    /// List, inspect and install adapters.
    Adapters {
        #[command(subcommand)]
        command: AdapterCommand,
    },
}

#[derive(clap::Args, Debug)]
struct ModelArgs {
    /// Model directory (base, profile, adapters). Default: $PRISM_MODEL, else the first that holds
    /// one of assets/ beside the executable, ../share/prism, ../Resources/assets, /usr/share/prism,
    /// the source tree.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct EditArgs {
    input: PathBuf,
    /// Tool (installed adapter) to apply.
    #[arg(long, conflicts_with_all = ["mix", "prompt"])]
    tool: Option<String>,
    /// Blend of tools with weights, e.g. `denoise=0.7,sharpen=0.3`.
    #[arg(long, conflicts_with = "prompt")]
    mix: Option<String>,
    /// Say what you want ("remove the noise", "a little brighter, then sharpen"): the tools are
    /// chosen by meaning (the prompt encoder in the model folder) and recorded in the output.
    #[arg(long)]
    prompt: Option<String>,
    /// Mask image: white (or opaque) = edit. Required by local tools such as object removal.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Adapter strength (scales every LoRA side path).
    #[arg(long, default_value_t = 1.0)]
    strength: f32,
    /// Stops to brighten the input by, for tools that take an exposure (lowlight); estimated from
    /// the photo when not given.
    #[arg(long, allow_negative_numbers = true)]
    exposure: Option<f32>,
    /// The blur's size in pixels, for tools that take one (sharpen); when not given, read from the
    /// photo (model v2's sharpen) or 1.5 (the shipped one, which unsharp-masks first).
    #[arg(long)]
    blur_size: Option<f32>,
    /// The noise's standard deviation in 8-bit levels, for tools that take one (denoise); estimated
    /// from the photo when not given.
    #[arg(long)]
    noise_level: Option<f32>,
    /// For removal on a model that fills from a smooth guess (model v2): how much of the
    /// surroundings' texture the fill takes, 0 (smooth) to 2; the shipped model paints its own.
    #[arg(long, default_value_t = prism_engine::job::DEFAULT_TEXTURE)]
    texture: f32,
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    backend: BackendKind,
    /// The ONNX Runtime execution provider (with --backend ort): an NPU or GPU delegate, or the
    /// CPU. Recorded in the output with the device.
    #[arg(long, value_enum, default_value_t = Provider::Auto)]
    provider: Provider,
    /// int8 or float; when not given, whichever runs faster on the backend.
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Output file (.png, .jpg, .webp).
    #[arg(short, long)]
    output: PathBuf,
    /// Allow writing over an existing file (including the input).
    #[arg(long)]
    overwrite: bool,
    /// Refuse images larger than this many megapixels (checked before decoding).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS as f64 / 1e6)]
    max_megapixels: f64,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Input side in pixels (a multiple of the model's alignment). Software GPUs are slow: try 128.
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Timed runs per forward (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// The photo (default: the model's samples/coffee.jpg). Local tools remove a disc in the middle.
    #[arg(long)]
    image: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    backend: BackendKind,
    /// The ONNX Runtime execution provider (with --backend ort).
    #[arg(long, value_enum, default_value_t = Provider::Auto)]
    provider: Provider,
    /// Times every tool is visited (the switch after the first round is the hot swap).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Print JSON instead of the live lines and the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(clap::Args, Debug)]
struct ExportArgs {
    /// The .onnx file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// int8: QDQ graph on the shared profile, int8 LoRA inputs; float: the float model.
    #[arg(long, value_enum, default_value_t = Precision::Int8)]
    precision: Precision,
    /// Rank of the LoRA inputs (smaller adapters are fed padded). Default: the model's maximum.
    #[arg(long)]
    max_rank: Option<usize>,
    /// Allow writing over an existing file.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Subcommand, Debug)]
enum AdapterCommand {
    /// Installed adapters: shipped with the model and installed by the user.
    List(ModelArgs),
    /// Metadata and tensors of an adapter file, and whether it fits the model.
    Inspect {
        file: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Validate an adapter (.prism-lora, PEFT or kohya) and install it for this model.
    Install {
        file: PathBuf,
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Some(Commands::Edit(edit_args)) => edit(edit_args),
        Some(Commands::Adapters { command }) => adapters(command),
        Some(Commands::ExportOnnx(export)) => {
            let model = load_model(&export.model)?;
            if export.output.exists() && !export.overwrite {
                bail!("{}: already exists; pass --overwrite to replace it", export.output.display());
            }
            let precision = export.precision;
            let rank = export.max_rank.unwrap_or(model.config().max_rank);
            let bytes = prism_engine::onnx::export(&model, precision, rank)?;
            prism_engine::tensorfile::write_atomically(&export.output, &bytes)?;
            eprintln!(
                "wrote {} ({:.2} MB, {} graph, LoRA inputs of rank {rank}, opset {})",
                export.output.display(),
                bytes.len() as f64 / 1e6,
                precision.name(),
                prism_engine::onnx::OPSET
            );
            Ok(())
        }
        Some(Commands::Doctor(model)) => crate::doctor::run_doctor(model.model),
        Some(Commands::Demo(demo)) => {
            let model = load_model(&demo.model)?;
            let json = demo.json;
            let mut live = |row: &crate::demo::DemoRow| {
                if !json {
                    crate::demo::print_run(row);
                }
            };
            let report =
                crate::demo::run_demo(&model, demo.backend, demo.provider, demo.image.as_deref(), demo.rounds, &mut live)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                crate::demo::print_summary(&report);
            }
            Ok(())
        }
        Some(Commands::PackageFiles { out }) => {
            for file in crate::package_files::write_package_files(&out)? {
                println!("wrote {}", file.display());
            }
            Ok(())
        }
        Some(Commands::Bench(bench)) => {
            let model = load_model(&bench.model)?;
            let report = crate::bench::run_bench(&model, bench.size, bench.repeat, &|step| eprintln!("bench: {step}…"))?;
            if bench.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                crate::bench::print_report(&report);
            }
            Ok(())
        }
        None => crate::editor::run_editor(crate::editor::EditorOptions::for_command_line(args.image)),
    }
}

fn model_dir(args: &ModelArgs) -> Result<PathBuf> {
    match &args.model {
        Some(dir) => Ok(dir.clone()),
        None => find_model_dir(),
    }
}

fn load_model(args: &ModelArgs) -> Result<Model> {
    let dir = model_dir(args)?;
    let _span = tracing::info_span!("load_model", dir = %dir.display()).entered();
    Ok(Model::load(&dir)?)
}

fn parse_mix(tool: Option<&str>, mix: Option<&str>) -> Result<Mix> {
    match (tool, mix) {
        (Some(tool), None) => Ok(Mix::new([(tool, 1.0)])?),
        (None, Some(mix)) => Ok(mix.parse::<Mix>().map_err(|e| anyhow!("--mix: {e}"))?),
        _ => bail!("choose a tool with --tool NAME or a blend with --mix a=0.7,b=0.3"),
    }
}

/// Routes `prompt` for `photo` over the adapters in `files` that this model accepts.
fn choose_by_prompt(model: &Model, files: &[PathBuf], prompt: &str, photo: &RgbImage) -> Result<prism_text::Chosen> {
    let metas: Vec<_> = files.iter().filter_map(|f| model.read_adapter(f).ok().map(|a| a.meta)).collect();
    let prompter = prism_text::Prompter::load(&model.dir, &metas)?;
    Ok(prompter.choose(prompt, Some(photo))?)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn edit(args: EditArgs) -> Result<()> {
    if args.prompt.is_none() {
        parse_mix(args.tool.as_deref(), args.mix.as_deref())?;
    }
    OutputFormat::from_path(&args.output)?;
    if !args.input.exists() {
        bail!("{}: no such file", args.input.display());
    }
    if args.output.exists() && !args.overwrite {
        if same_file(&args.input, &args.output) {
            bail!("{}: refusing to write over the input image; choose another -o or pass --overwrite", args.output.display());
        }
        bail!("{}: already exists; pass --overwrite to replace it", args.output.display());
    }
    let (backend, provider, precision) = (args.backend, args.provider, args.precision);
    if provider != Provider::Auto && backend != BackendKind::Ort {
        bail!("--provider {} is an ONNX Runtime provider: add --backend ort", provider.name());
    }
    if args.max_megapixels.is_nan() || args.max_megapixels <= 0.0 {
        bail!("--max-megapixels must be positive");
    }
    let max_pixels = (args.max_megapixels * 1e6) as u64;
    let model = load_model(&args.model)?;
    let picture = load_picture(&args.input, max_pixels)?;
    let mask = args.mask.as_deref().map(|m| load_mask(m, max_pixels)).transpose()?;
    let mut adapters = all_adapter_files(&model)?;
    // An adapter the prompt made (the look tool) is installed from a file like any other.
    let made_dir = tempfile::tempdir()?;
    let (mix, prompt) = match &args.prompt {
        Some(prompt) => {
            let chosen = choose_by_prompt(&model, &adapters, prompt, &picture.rgb)?;
            eprintln!("\"{}\" chose {}", prompt.trim(), chosen.summary());
            if let Some(made) = &chosen.made {
                let path = made_dir.path().join(format!("{}.prism-lora", made.meta.name));
                made.write(&path)?;
                adapters.push(path);
            }
            (chosen.mix, Some(chosen.record))
        }
        None => (parse_mix(args.tool.as_deref(), args.mix.as_deref())?, None),
    };
    let engine = EngineHandle::spawn_kind(model.clone(), backend, provider, adapters, None)?;
    let job = EditJob {
        id: 1,
        image: Arc::new(picture.rgb.clone()),
        mask: mask.map(Arc::new),
        mix: mix.clone(),
        strength: args.strength,
        precision,
        exposure: args.exposure,
        blur_size: args.blur_size,
        noise_level: args.noise_level,
        context: prism_engine::job::DEFAULT_CONTEXT,
        texture: args.texture,
    };
    engine.send(Command::Edit(job))?;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tiles {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{mix} "));
    let mut titles = std::collections::HashMap::new();
    loop {
        let event =
            engine.recv_timeout(Duration::from_secs(3600)).ok_or_else(|| anyhow!("the engine stopped without an answer"))?;
        match event {
            Event::AdapterInstalled(info) => {
                titles.insert(info.meta.name.clone(), info.meta.title.clone());
            }
            Event::AdapterRejected { path, error } => {
                bar.suspend(|| eprintln!("warning: skipped adapter {}: {error}", path.display()));
            }
            Event::Progress { done, total, .. } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Event::Failed { error, .. } => {
                bar.finish_and_clear();
                bail!("{error}");
            }
            Event::Cancelled { .. } => bail!("the edit was cancelled"),
            Event::Done { image, stats, .. } => {
                bar.finish_and_clear();
                let (width, height) = (image.width, image.height);
                // The alpha channel only fits when the tool kept the image size.
                let alpha = picture.alpha.filter(|a| a.len() == width * height);
                let out = Picture { rgb: Arc::unwrap_or_clone(image), alpha, sixteen_bit: picture.sixteen_bit };
                let title = mix.title(|id| titles.get(id).cloned().unwrap_or_else(|| id.to_string()));
                let record = EditRecord::new(&model, title, &mix, args.strength, &stats).with_prompt(prompt);
                save_picture(&args.output, &out, &file_entries(&[record]))?;
                eprintln!(
                    "wrote {} ({width}x{height}) with {mix} on {} [{}]: switch {:.2} ms, forward {:.0} ms, total {:.0} ms",
                    args.output.display(),
                    stats.device,
                    stats.precision.name(),
                    stats.switch_time.as_secs_f64() * 1e3,
                    stats.forward_time.as_secs_f64() * 1e3,
                    stats.total_time.as_secs_f64() * 1e3
                );
                return Ok(());
            }
            _ => {}
        }
    }
}

fn adapters(command: AdapterCommand) -> Result<()> {
    match command {
        AdapterCommand::List(model_args) => {
            let model = load_model(&model_args)?;
            let files = all_adapter_files(&model)?;
            if files.is_empty() {
                println!("no adapters installed for model {}", model.hash);
            }
            for file in files {
                match model.read_adapter(&file) {
                    Ok(a) => println!(
                        "{:<14} {:<22} {:<7} {:<6} rank {:<3} {:>8} bytes  {}",
                        a.meta.name,
                        a.meta.title,
                        format!("{:?}", a.meta.region).to_lowercase(),
                        if a.meta.precision == AdapterPrecision::Int8 { "int8" } else { "float" },
                        a.meta.rank,
                        a.stored_bytes(),
                        a.meta.description
                    ),
                    Err(e) => println!("{:<14} unusable: {e}", file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()),
                }
            }
            Ok(())
        }
        AdapterCommand::Inspect { file, model: model_args } => {
            if !file.exists() {
                bail!("{}: no such file", file.display());
            }
            let model = load_model(&model_args).ok();
            let adapter = match &model {
                Some(m) => read_any_adapter(&file, &m.hash, m.config())?,
                None => prism_engine::adapter::Adapter::read(&file)?,
            };
            let meta = &adapter.meta;
            println!("name:        {} ({})", meta.name, meta.title);
            println!("task:        {} ({:?}, output x{})", meta.task, meta.region, meta.scale);
            if meta.scale > 1 {
                println!("enlarged by: {}", meta.upsampling.describe());
            }
            println!("description: {}", meta.description);
            println!("prompts:     {}", meta.example_prompts.join(" | "));
            println!("precision:   {:?}, rank {}, alpha {}", meta.precision, meta.rank, meta.alpha);
            println!("base model:  {}", meta.base_model);
            println!("profile:     {}", if meta.profile.is_empty() { "-" } else { &meta.profile });
            println!("created by:  {}", meta.created_by);
            println!("metrics:     {}", meta.metrics);
            println!("layers:      {} ({} bytes)", adapter.layers.len(), adapter.stored_bytes());
            match &model {
                Some(m) => match adapter.check_compatible(m.config(), &m.hash, Some(&m.profile)) {
                    Ok(()) => println!("fits model {} / profile {}", m.hash, m.profile.id),
                    Err(e) => println!("does not fit the model: {e}"),
                },
                None => println!("(no model loaded, compatibility not checked)"),
            }
            Ok(())
        }
        AdapterCommand::Install { file, overwrite, model: model_args } => {
            let model = load_model(&model_args)?;
            let (target, adapter) = install_adapter(&model, &file, overwrite)?;
            let note = if adapter.meta.precision == AdapterPrecision::Float {
                " (float: quantized onto the shared profile when loaded, plain PTQ)"
            } else {
                ""
            };
            println!("installed '{}' to {}{note}", adapter.meta.name, target.display());
            Ok(())
        }
    }
}
