//! What made an edit, in one shape: shown in the editor's history, kept in its autosave, and
//! written into every saved file (PNG text chunks, a JPEG comment, WebP XMP) by the CLI and the
//! editor alike.

use serde::{Deserialize, Serialize};

use crate::backends::{BackendKind, Precision};
use crate::deblur_prepass::SharpenPass;
use crate::job::JobStats;
use crate::mix::Mix;
use crate::model::Model;

/// One edit step's provenance. Fields added after the first version default when an older
/// autosave is read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    /// Tool titles joined, e.g. "Denoise" or "Denoise + Sharpen".
    pub tool: String,
    /// Adapter ids and weights.
    pub adapters: Mix,
    pub strength: f32,
    pub backend: BackendKind,
    pub device: String,
    pub precision: Precision,
    /// Stops the input was brightened by (tools that take an exposure).
    #[serde(default)]
    pub exposure: Option<f32>,
    /// The blur size the input was sharpened at (tools that take one).
    #[serde(default)]
    pub blur_size: Option<f32>,
    /// Whether that was a deconvolution (else an unsharp mask: `SharpenPass`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deconvolved: bool,
    /// The noise level the input was shrunk at, in 8-bit levels (tools that take one).
    #[serde(default)]
    pub noise_level: Option<f32>,
    /// The texture a removal's fill took (models whose fill takes the surroundings' texture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texture: Option<f32>,
    /// Hashes of the base model and the shared quantization profile.
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub profile: String,
    /// The Prism version that made the edit.
    #[serde(default)]
    pub version: String,
    pub switch_ms: f64,
    pub forward_ms: f64,
    pub total_ms: f64,
    /// The typed request that chose the tools, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptRecord>,
}

/// A typed request and what it chose: each tool with the similarity that chose it, and the tools
/// it said not to use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub text: String,
    pub chosen: Vec<(String, f32)>,
    #[serde(default)]
    pub excluded: Vec<String>,
}

impl EditRecord {
    /// The record of a finished job.
    pub fn new(model: &Model, tool: String, mix: &Mix, strength: f32, stats: &JobStats) -> Self {
        Self {
            tool,
            adapters: mix.clone(),
            strength,
            backend: stats.backend,
            device: stats.device.clone(),
            precision: stats.precision,
            exposure: stats.exposure,
            blur_size: stats.sharpen.map(SharpenPass::size),
            deconvolved: matches!(stats.sharpen, Some(SharpenPass::Deconvolve(_))),
            noise_level: stats.noise_level,
            texture: stats.texture,
            model: model.hash.clone(),
            profile: model.profile.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            switch_ms: stats.switch_time.as_secs_f64() * 1e3,
            forward_ms: stats.forward_time.as_secs_f64() * 1e3,
            total_ms: stats.total_time.as_secs_f64() * 1e3,
            prompt: None,
        }
    }

    pub fn with_prompt(self, prompt: Option<PromptRecord>) -> Self {
        Self { prompt, ..self }
    }
}

/// The `prism:*` entries a saved file carries: the last step's record, then the whole history
/// as JSON. Empty when no step was an edit.
pub fn file_entries(history: &[EditRecord]) -> Vec<(String, String)> {
    let Some(last) = history.last() else { return Vec::new() };
    let mut entries = vec![
        ("prism:tool", last.adapters.names().collect::<Vec<_>>().join("+")),
        // A list of strings and numbers always serialises.
        ("prism:adapters", serde_json::to_string(&last.adapters).unwrap_or_default()),
        ("prism:strength", last.strength.to_string()),
        ("prism:backend", last.backend.to_string()),
        ("prism:device", last.device.clone()),
        ("prism:precision", last.precision.to_string()),
        ("prism:model", last.model.clone()),
        ("prism:profile", last.profile.clone()),
        ("prism:version", last.version.clone()),
    ];
    if let Some(stops) = last.exposure {
        entries.push(("prism:exposure", format!("{stops:.2}")));
    }
    if let Some(sigma) = last.blur_size {
        entries.push(("prism:blur_size", format!("{sigma:.2}")));
        entries.push(("prism:sharpened_by", if last.deconvolved { "deconvolution" } else { "unsharp mask" }.to_string()));
    }
    if let Some(level) = last.noise_level {
        entries.push(("prism:noise_level", format!("{level:.1}")));
    }
    if let Some(texture) = last.texture {
        entries.push(("prism:texture", format!("{texture:.2}")));
    }
    if let Some(prompt) = &last.prompt {
        entries.push(("prism:prompt", prompt.text.clone()));
    }
    // Plain data (strings, numbers, enums) always serialises.
    entries.push(("prism:history", serde_json::to_string(history).unwrap_or_default()));
    entries.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(exposure: Option<f32>) -> EditRecord {
        EditRecord {
            tool: "Brighten low light".into(),
            adapters: Mix::single("lowlight"),
            strength: 1.0,
            backend: BackendKind::Reference,
            device: "CPU".into(),
            precision: Precision::Int8,
            exposure,
            blur_size: None,
            deconvolved: false,
            noise_level: None,
            texture: None,
            model: "m".into(),
            profile: "p".into(),
            version: "0".into(),
            switch_ms: 1.0,
            forward_ms: 2.0,
            total_ms: 3.0,
            prompt: None,
        }
    }

    #[test]
    fn entries_carry_the_settings_and_the_history() {
        let prompt = PromptRecord { text: "a bit brighter".into(), chosen: vec![("lowlight".into(), 0.71)], excluded: vec![] };
        let history = [record(None), record(Some(1.5)).with_prompt(Some(prompt))];
        let entries = file_entries(&history);
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("prism:tool"), Some("lowlight"));
        assert_eq!(get("prism:exposure"), Some("1.50"));
        assert_eq!(get("prism:blur_size"), None);
        assert_eq!(get("prism:texture"), None, "no fill took a texture");
        assert_eq!(get("prism:backend"), Some("reference"));
        assert_eq!(get("prism:prompt"), Some("a bit brighter"));
        let saved: Vec<EditRecord> = serde_json::from_str(get("prism:history").unwrap()).unwrap();
        assert_eq!(saved, history);
        assert!(file_entries(&[]).is_empty());
        let textured = EditRecord { texture: Some(0.5), ..record(None) };
        let entries = file_entries(&[textured]);
        assert!(entries.iter().any(|(k, v)| k == "prism:texture" && v == "0.50"), "{entries:?}");
        let deblurred = [EditRecord { blur_size: Some(1.94), deconvolved: true, ..record(None) }];
        let entries = file_entries(&deblurred);
        let has = |key: &str, value: &str| entries.iter().any(|(k, v)| k == key && v == value);
        assert!(has("prism:blur_size", "1.94") && has("prism:sharpened_by", "deconvolution"), "{entries:?}");
        let saved: Vec<EditRecord> = serde_json::from_str(&serde_json::to_string(&deblurred).unwrap()).unwrap();
        assert_eq!(saved, deblurred);
    }

    #[test]
    fn a_record_from_an_earlier_autosave_still_loads() {
        let old = r#"{"tool":"Denoise","adapters":[["denoise",1.0]],"strength":1.0,"backend":"wgpu",
            "device":"lavapipe","precision":"int8","switch_ms":0.1,"forward_ms":5.0,"total_ms":6.0}"#;
        let record: EditRecord = serde_json::from_str(old).unwrap();
        assert_eq!((record.backend, record.precision, record.exposure), (BackendKind::Wgpu, Precision::Int8, None));
    }
}
