//! `prism package-files --out DIR`: the man page and shell completions, generated from the clap
//! definitions so they never drift from the real options (the Debian package installs them).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Args;

/// Writes `prism.1` and completions for bash, zsh and fish into `out`; returns the files.
pub fn write_package_files(out: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command()).render(&mut page)?;
    let man = out.join("prism.1");
    std::fs::write(&man, page).with_context(|| format!("writing {}", man.display()))?;
    written.push(man);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut Args::command(), "prism", out)
            .with_context(|| format!("writing the {shell} completions into {}", out.display()))?;
        written.push(path);
    }
    Ok(written)
}
