//! What the packages are made of, checked where the packages cannot be built: the files
//! `prism package-files` writes (man page, completions, the macOS Info.plist, the Windows manifest
//! and icon), the desktop entry against the formats Prism opens, and the release workflow.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use prism::bundle_metadata::{APP_ID, OPENED_FORMATS, windows_version};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn package_files(out: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_prism")).args(["package-files", "--out"]).arg(out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn package_files_writes_the_man_page_completions_and_bundle_metadata() {
    let dir = tempfile::tempdir().unwrap();
    package_files(dir.path());
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));

    let man = String::from_utf8(read("prism.1")).unwrap();
    for subcommand in ["edit", "demo", "doctor", "bench", "adapters"] {
        assert!(man.contains(subcommand), "the man page names {subcommand}");
    }
    assert!(String::from_utf8(read("prism.bash")).unwrap().contains("--provider"), "completions know the options");
    assert!(!read("_prism").is_empty() && !read("prism.fish").is_empty());

    let info = plist::Value::from_reader_xml(&read("macos/Info.plist")[..]).unwrap();
    let info = info.as_dictionary().unwrap();
    let get = |key: &str| info.get(key).and_then(plist::Value::as_string).unwrap_or_else(|| panic!("{key}"));
    assert_eq!(get("CFBundleIdentifier"), APP_ID);
    assert_eq!(get("CFBundleExecutable"), "prism", "the binary's name in Contents/MacOS");
    assert_eq!(get("CFBundleShortVersionString"), env!("CARGO_PKG_VERSION"));
    assert_eq!(get("CFBundlePackageType"), "APPL");
    assert_eq!(info.get("NSHighResolutionCapable").and_then(plist::Value::as_boolean), Some(true));
    let documents = info.get("CFBundleDocumentTypes").and_then(plist::Value::as_array).unwrap();
    let types: Vec<&str> = documents[0]
        .as_dictionary()
        .and_then(|d| d.get("LSItemContentTypes"))
        .and_then(plist::Value::as_array)
        .unwrap()
        .iter()
        .filter_map(plist::Value::as_string)
        .collect();
    assert_eq!(types, OPENED_FORMATS.map(|(_, uti)| uti));

    let manifest = String::from_utf8(read("windows/prism.exe.manifest")).unwrap();
    assert_eq!(windows_version().split('.').count(), 4, "Windows wants four parts");
    assert!(manifest.contains(&format!(r#"name="{APP_ID}" version="{}""#, windows_version())), "{manifest}");
    assert!(manifest.contains("PerMonitorV2") && manifest.contains("longPathAware"));

    let icon = image::load_from_memory_with_format(&read("windows/prism.ico"), image::ImageFormat::Ico).unwrap();
    assert_eq!((icon.width(), icon.height()), (256, 256), "the largest frame is shown");
}

#[test]
fn the_desktop_entry_opens_the_formats_prism_reads() {
    let entry = std::fs::read_to_string(repo().join("packaging/linux").join(format!("{APP_ID}.desktop"))).unwrap();
    let mime = entry.lines().find_map(|l| l.strip_prefix("MimeType=")).unwrap();
    let listed: Vec<&str> = mime.split(';').filter(|m| !m.is_empty()).collect();
    assert_eq!(listed, OPENED_FORMATS.map(|(mime, _)| mime));
    assert!(entry.contains(&format!("Icon={APP_ID}")));
}

/// The workflow for the hosted runners parses, builds for the three platforms, and uses only
/// bundle files `package-files` writes.
#[test]
fn the_release_workflow_parses_and_uses_the_generated_metadata() {
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let jobs = &docs[0]["jobs"];
    let dir = tempfile::tempdir().unwrap();
    package_files(dir.path());
    for (job, runner) in [("linux-x86_64", "ubuntu"), ("windows-arm64", "windows-11-arm"), ("macos-arm64", "macos")] {
        assert!(jobs[job]["runs-on"].as_str().is_some_and(|r| r.starts_with(runner)), "{job} runs on {runner}");
        let steps = jobs[job]["steps"].as_vec().unwrap_or_else(|| panic!("{job} has steps"));
        let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
        assert!(!runs.is_empty(), "{job} runs something");
        for run in &runs {
            for word in run.split_whitespace() {
                let word = word.trim_matches(|c| c == '"' || c == '\'');
                if let Some(file) = word.strip_prefix("target/package-files/") {
                    assert!(dir.path().join(file).is_file(), "{job} uses {file}, which package-files does not write");
                }
            }
        }
        let uploads = steps.iter().filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact")));
        assert_eq!(uploads.count(), 1, "{job} uploads its package");
    }
    assert!(matches!(docs[0]["on"]["push"]["tags"], Yaml::Array(_)), "release builds run on version tags");
}
