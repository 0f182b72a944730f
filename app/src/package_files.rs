//! `prism package-files --out DIR`: the man page and shell completions, generated from the clap
//! definitions so they never drift from the real options (the Debian package installs them), and
//! the release bundles' metadata: `macos/Info.plist`, `windows/prism.exe.manifest` and
//! `windows/prism.ico` (see `bundle_metadata`).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Args;

/// Writes `prism.1`, completions for bash, zsh and fish, and the bundle metadata into `out`;
/// returns the files.
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
    let bundle_files = [
        ("macos/Info.plist", crate::bundle_metadata::info_plist()?),
        ("windows/prism.exe.manifest", crate::bundle_metadata::windows_manifest().into_bytes()),
        ("windows/prism.ico", crate::bundle_metadata::windows_icon()?),
    ];
    for (name, bytes) in bundle_files {
        let path = out.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
