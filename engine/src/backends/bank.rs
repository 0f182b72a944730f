//! Every installed adapter, held once per backend in the form that backend binds, with the
//! lookup (and its error text) written once for all of them.

use std::collections::BTreeMap;

use super::AdapterInfo;
use crate::adapter::ResidentAdapter;
use crate::error::{EngineError, Result};
use crate::mix::Mix;

/// An adapter as a backend keeps it (CPU tensors, GPU buffers, graph inputs).
pub trait Installed {
    fn info(&self) -> AdapterInfo;
}

impl Installed for ResidentAdapter {
    fn info(&self) -> AdapterInfo {
        AdapterInfo { meta: self.meta.clone(), quantized_on_load: self.quantized_on_load, stored_bytes: self.stored_bytes }
    }
}

/// What the engine knows of an installed adapter, looked up like the adapter itself.
impl Installed for AdapterInfo {
    fn info(&self) -> AdapterInfo {
        self.clone()
    }
}

/// Installed adapters by name.
pub struct AdapterBank<T> {
    adapters: BTreeMap<String, T>,
}

impl<T> Default for AdapterBank<T> {
    fn default() -> Self {
        Self { adapters: BTreeMap::new() }
    }
}

impl<T: Installed> AdapterBank<T> {
    /// Installs `adapter` under its name, replacing one of the same name.
    pub fn insert(&mut self, adapter: T) -> AdapterInfo {
        let info = adapter.info();
        self.adapters.insert(info.meta.name.clone(), adapter);
        info
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.adapters.remove(name).is_some()
    }

    pub fn get(&self, name: &str) -> Result<&T> {
        self.adapters.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.adapters.keys().map(String::as_str).collect();
            EngineError::Job(format!(
                "no tool named '{name}' is installed (installed: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    }

    /// Each adapter of `mix` with its weight, in the mix's order.
    pub fn resolve(&self, mix: &Mix) -> Result<Vec<(&T, f32)>> {
        mix.parts().iter().map(|(name, weight)| Ok((self.get(name)?, *weight))).collect()
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.adapters.values()
    }

    pub fn infos(&self) -> Vec<AdapterInfo> {
        self.adapters.values().map(Installed::info).collect()
    }

    pub fn stored_bytes(&self) -> usize {
        self.infos().iter().map(|info| info.stored_bytes).sum()
    }

    pub fn len(&self) -> usize {
        self.adapters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::float_meta;

    struct Named(String);

    impl Installed for Named {
        fn info(&self) -> AdapterInfo {
            AdapterInfo { meta: float_meta(&self.0, "base", 4, 1.0), quantized_on_load: false, stored_bytes: 10 }
        }
    }

    #[test]
    fn resolves_a_mix_in_order_and_names_what_is_installed_when_a_tool_is_missing() {
        let mut bank = AdapterBank::default();
        bank.insert(Named("sharpen".into()));
        bank.insert(Named("denoise".into()));
        let mix = Mix::new([("sharpen", 0.25), ("denoise", 0.75)]).unwrap();
        let resolved: Vec<(&str, f32)> = bank.resolve(&mix).unwrap().iter().map(|(a, w)| (a.0.as_str(), *w)).collect();
        assert_eq!(resolved, [("sharpen", 0.25), ("denoise", 0.75)]);
        let missing = bank.resolve(&Mix::single("colorize")).err().unwrap().to_string();
        assert_eq!(missing, "no tool named 'colorize' is installed (installed: denoise, sharpen)");
        assert_eq!(bank.stored_bytes(), 20);
        assert!(bank.remove("sharpen") && !bank.remove("sharpen"));
    }
}
