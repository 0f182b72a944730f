//! Which adapters an edit blends, with their weights: parsed once where it is made (CLI, editor,
//! prompt), then passed as a [`Mix`] that every backend can bind without checking it again.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Largest weight one adapter may carry in a blend: past it the delta swamps the base model and
/// the result is noise, so a larger number is a typo.
pub const MAX_WEIGHT: f32 = 4.0;

/// Adapters (by name) and their weights. Names are non-empty and distinct, weights finite and
/// within ±[`MAX_WEIGHT`]; a mix has at least one adapter unless it is [`Mix::none`] (the base
/// model alone). Saved as `[["name", weight], ...]`, the form earlier versions wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(String, f32)>", into = "Vec<(String, f32)>")]
pub struct Mix {
    parts: Vec<(String, f32)>,
}

impl Mix {
    /// A blend of `parts`; an empty list, an empty or repeated name, or a weight that is not a
    /// number or out of range is an error that says which.
    pub fn new<N: Into<String>>(parts: impl IntoIterator<Item = (N, f32)>) -> Result<Self> {
        let parts: Vec<(String, f32)> = parts.into_iter().map(|(name, weight)| (name.into(), weight)).collect();
        if parts.is_empty() {
            return Err(EngineError::Job("choose at least one tool".into()));
        }
        for (index, (name, weight)) in parts.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(EngineError::Job("a tool in the mix has no name".into()));
            }
            if parts[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(EngineError::Job(format!("'{name}' appears twice in the mix; give it one weight")));
            }
            if !weight.is_finite() {
                return Err(EngineError::Job(format!("the weight of '{name}' is not a number")));
            }
            if weight.abs() > MAX_WEIGHT {
                return Err(EngineError::Job(format!(
                    "the weight of '{name}' is {weight}; weights go from -{MAX_WEIGHT} to {MAX_WEIGHT}"
                )));
            }
        }
        Ok(Self { parts })
    }

    /// One tool at full weight.
    pub fn single(name: impl Into<String>) -> Self {
        Self { parts: vec![(name.into(), 1.0)] }
    }

    /// No adapter: the base model alone (the lightbox's reference).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn parts(&self) -> &[(String, f32)] {
        &self.parts
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|(name, _)| name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// The tools' titles joined, each weight shown unless it is the only tool or 1:
    /// "Denoise ×0.60 + Sharpen ×0.40". `title_of` maps an id to its title.
    pub fn title(&self, title_of: impl Fn(&str) -> String) -> String {
        let single = self.parts.len() == 1;
        let titles: Vec<String> = self
            .parts
            .iter()
            .map(|(name, weight)| {
                if single || (*weight - 1.0).abs() < 1e-6 { title_of(name) } else { format!("{} ×{weight:.2}", title_of(name)) }
            })
            .collect();
        titles.join(" + ")
    }

    /// The same adapters under other names (e.g. the float teachers, `<tool>@float`).
    pub fn renamed(&self, rename: impl Fn(&str) -> String) -> Self {
        Self { parts: self.parts.iter().map(|(name, weight)| (rename(name), *weight)).collect() }
    }
}

/// `NAME=WEIGHT,NAME=WEIGHT` (the command line's `--mix`).
impl std::str::FromStr for Mix {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self> {
        let parts = text
            .split(',')
            .map(|part| {
                let (name, weight) =
                    part.split_once('=').ok_or_else(|| EngineError::Job(format!("mix entry '{part}' is not NAME=WEIGHT")))?;
                let weight: f32 = weight.trim().parse().map_err(|_| {
                    EngineError::Job(format!("the weight '{}' of '{}' is not a number", weight.trim(), name.trim()))
                })?;
                Ok((name.trim().to_string(), weight))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(parts)
    }
}

impl TryFrom<Vec<(String, f32)>> for Mix {
    type Error = EngineError;

    /// A saved mix; an empty list is the base model alone, as it was saved.
    fn try_from(parts: Vec<(String, f32)>) -> Result<Self> {
        if parts.is_empty() { Ok(Self::none()) } else { Self::new(parts) }
    }
}

impl From<Mix> for Vec<(String, f32)> {
    fn from(mix: Mix) -> Self {
        mix.parts
    }
}

/// `denoise`, `denoise 0.60 + sharpen 0.40`, or `base model` for none.
impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts.as_slice() {
            [] => write!(f, "base model"),
            [(name, weight)] if *weight == 1.0 => write!(f, "{name}"),
            parts => {
                let shown: Vec<String> = parts.iter().map(|(name, weight)| format!("{name} {weight:.2}")).collect();
                write!(f, "{}", shown.join(" + "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_mixes_are_refused_with_the_reason() {
        let error = |parts: Vec<(&str, f32)>| Mix::new(parts).unwrap_err().to_string();
        assert!(error(vec![]).contains("at least one tool"));
        assert!(error(vec![(" ", 1.0)]).contains("no name"));
        assert!(error(vec![("denoise", 0.5), ("denoise", 0.5)]).contains("twice"));
        assert!(error(vec![("denoise", f32::NAN)]).contains("not a number"));
        assert!(error(vec![("denoise", 1e9)]).contains("from -4 to 4"));
        let mix = Mix::new([("denoise", 0.6), ("sharpen", -0.4)]).unwrap();
        assert_eq!(mix.names().collect::<Vec<_>>(), ["denoise", "sharpen"]);
        assert_eq!(mix.to_string(), "denoise 0.60 + sharpen -0.40");
        assert_eq!(Mix::single("colorize").to_string(), "colorize");
        assert_eq!(mix.title(|id| id.to_uppercase()), "DENOISE ×0.60 + SHARPEN ×-0.40");
    }

    #[test]
    fn parses_the_command_line_form() {
        let mix: Mix = "denoise=0.7, sharpen=0.3".parse().unwrap();
        assert_eq!(mix.parts(), [("denoise".to_string(), 0.7), ("sharpen".to_string(), 0.3)]);
        assert!("denoise".parse::<Mix>().unwrap_err().to_string().contains("NAME=WEIGHT"));
        assert!("denoise=lots".parse::<Mix>().unwrap_err().to_string().contains("'lots' of 'denoise' is not a number"));
        assert!("denoise=inf".parse::<Mix>().unwrap_err().to_string().contains("not a number"));
    }

    #[test]
    fn saves_in_the_earlier_form_and_rejects_a_bad_saved_weight() {
        let mix = Mix::new([("denoise", 0.5), ("sharpen", 0.5)]).unwrap();
        let json = serde_json::to_string(&mix).unwrap();
        assert_eq!(json, r#"[["denoise",0.5],["sharpen",0.5]]"#);
        assert_eq!(serde_json::from_str::<Mix>(&json).unwrap(), mix);
        assert_eq!(serde_json::from_str::<Mix>("[]").unwrap(), Mix::none());
        assert!(serde_json::from_str::<Mix>(r#"[["denoise",1e30]]"#).is_err());
    }
}
