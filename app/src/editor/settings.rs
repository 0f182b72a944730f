//! What the editor remembers between runs, in `settings.json` in the OS config folder. Every
//! field has a default, so a file from an older (or newer) Prism still loads.

use std::path::{Path, PathBuf};

use prism_engine::backends::{BackendKind, Precision, Provider};
use serde::{Deserialize, Serialize};

/// Recent files kept in the menu.
const MAX_RECENT: usize = 10;
const FILE_NAME: &str = "settings.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    Dark,
    Light,
    System,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(deserialize_with = "known_or_default")]
    pub backend: BackendKind,
    /// The execution provider ONNX Runtime is asked for (the ort backend only).
    #[serde(deserialize_with = "known_or_default")]
    pub provider: Provider,
    /// The shared quantized model, the float reference, or (None) whichever runs faster here.
    #[serde(deserialize_with = "known_or_default")]
    pub precision: Option<Precision>,
    pub theme: Theme,
    pub recent_files: Vec<PathBuf>,
    pub brush_radius: f32,
    pub brush_hardness: f32,
    pub overlay_color: [u8; 3],
    pub overlay_opacity: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            backend: BackendKind::Auto,
            provider: Provider::Auto,
            precision: None,
            theme: Theme::Dark,
            recent_files: Vec::new(),
            brush_radius: 24.0,
            brush_hardness: 0.8,
            overlay_color: [255, 64, 96],
            overlay_opacity: 0.5,
        }
    }
}

/// A value this version knows, or the default: a backend named by another build ("cuda") must
/// not cost the user every other setting.
fn known_or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

impl Settings {
    /// Reads the settings in `dir`; a missing or unreadable file gives the defaults (and a log line
    /// for the unreadable one: the user's settings are not worth refusing to start over).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|error| {
                tracing::warn!(path = %path.display(), %error, "settings unreadable; using defaults");
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_file_atomically(&dir.join(FILE_NAME), text.as_bytes())
    }

    pub fn add_recent(&mut self, path: &Path) {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.recent_files.retain(|p| p != &path);
        self.recent_files.insert(0, path);
        self.recent_files.truncate(MAX_RECENT);
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

/// The folder for settings and autosave: `$PRISM_CONFIG`, or the OS config folder.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("PRISM_CONFIG")
        .map(PathBuf::from)
        .or_else(|| directories::ProjectDirs::from("org", "Prism", "prism").map(|d| d.config_dir().to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_old_files_and_recent_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::load(dir.path());
        assert_eq!(settings, Settings::default());
        settings.precision = Some(Precision::Float);
        for i in 0..12 {
            settings.add_recent(Path::new(&format!("/photos/{i}.jpg")));
        }
        settings.add_recent(Path::new("/photos/5.jpg"));
        assert_eq!(settings.recent_files.len(), MAX_RECENT);
        assert_eq!(settings.recent_files[0], Path::new("/photos/5.jpg"));
        settings.save(dir.path()).expect("save");
        assert_eq!(Settings::load(dir.path()), settings);
        // A file from another version: unknown fields ignored, missing ones defaulted.
        std::fs::write(dir.path().join(FILE_NAME), r#"{"theme":"light","future_option":3}"#).expect("write");
        let old = Settings::load(dir.path());
        assert_eq!(old.theme, Theme::Light);
        assert_eq!(old.brush_radius, Settings::default().brush_radius);
        // Backend and precision were strings before they were types: the same words load.
        std::fs::write(dir.path().join(FILE_NAME), r#"{"backend":"wgpu","precision":"float"}"#).expect("write");
        let old = Settings::load(dir.path());
        assert_eq!((old.backend, old.precision), (BackendKind::Wgpu, Some(Precision::Float)));
        std::fs::write(dir.path().join(FILE_NAME), r#"{"backend":"cuda","brush_radius":7.0}"#).expect("write");
        let other = Settings::load(dir.path());
        assert_eq!((other.backend, other.brush_radius), (BackendKind::Auto, 7.0));
        std::fs::write(dir.path().join(FILE_NAME), "not json").expect("write");
        assert_eq!(Settings::load(dir.path()), Settings::default());
    }
}
