//! `prism`: the editor and the headless CLI.

use prism::cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_gpu_probe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRISM_LOG")
                .unwrap_or_else(|_| "warn,wgpu_hal=off,wgpu_core=error,naga=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    quiet_on_closed_stdout();
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the context chain joined, never a debug dump.
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan device-select layer connects to Wayland while wgpu lists adapters; without a
/// session (`XDG_RUNTIME_DIR` unset: SSH, CI) libwayland prints an error line per probe, which
/// would break the CLI's promise of one clear line per error. The layer only reorders devices,
/// so it is switched off there through its documented variable.
#[allow(unsafe_code)]
fn quiet_gpu_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in main, before any thread exists, so nothing can read the
        // environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// `prism adapters list | head` closes stdout early; `println!` then panics. That is the reader
/// leaving, not a failure: end quietly, as other command-line tools do.
fn quiet_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}
