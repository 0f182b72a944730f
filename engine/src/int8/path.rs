//! Which integer kernel runs on this CPU: chosen once at run time from what the CPU has, or
//! forced with `PRISM_CPU_KERNEL` (tests run every path this way).

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// The environment variable that forces a kernel path (`avx512-vnni`, `avx-vnni`, `avx2`,
/// `neon`, `portable`).
pub const FORCE_VARIABLE: &str = "PRISM_CPU_KERNEL";

/// One implementation of the int16 x int16 -> int32 multiply-accumulate tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelPath {
    /// `vpdpwssd` on 512-bit registers (AVX-512 VNNI).
    Avx512Vnni,
    /// `vpdpwssd` on 256-bit registers (AVX-VNNI, e.g. Alder Lake and later without AVX-512).
    AvxVnni,
    /// `vpmaddwd` + `vpaddd` (AVX2).
    Avx2,
    /// `smlal` widening multiply-accumulate (ARM NEON: Apple silicon, Snapdragon).
    Neon,
    /// Plain Rust: any CPU.
    Portable,
}

impl KernelPath {
    pub const ALL: [Self; 5] = [Self::Avx512Vnni, Self::AvxVnni, Self::Avx2, Self::Neon, Self::Portable];

    /// The name `PRISM_CPU_KERNEL` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "avx512-vnni",
            Self::AvxVnni => "avx-vnni",
            Self::Avx2 => "avx2",
            Self::Neon => "neon",
            Self::Portable => "portable",
        }
    }

    /// What the status bar and `prism bench` show.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "int8 VNNI (AVX-512)",
            Self::AvxVnni => "int8 VNNI (AVX)",
            Self::Avx2 => "int8 AVX2",
            Self::Neon => "int8 NEON",
            Self::Portable => "int8 portable",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => {
                Self::Avx2.supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Self::AvxVnni => Self::Avx2.supported() && std::arch::is_x86_feature_detected!("avxvnni"),
            // Every x86 path also runs the element-wise steps compiled for AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "aarch64")]
            Self::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            Self::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether the path is faster than the float model on this CPU (the portable path is not: it
    /// keeps QuantSim's semantics at scalar speed).
    pub fn beats_float(self) -> bool {
        self != Self::Portable
    }

    /// The fastest path this CPU supports.
    pub fn detect() -> Self {
        Self::ALL.into_iter().find(|path| path.supported()).unwrap_or(Self::Portable)
    }

    /// `PRISM_CPU_KERNEL` when set (an error when it names an unknown path or one this CPU
    /// lacks), the fastest supported path otherwise.
    pub fn chosen() -> Result<Self> {
        match std::env::var(FORCE_VARIABLE) {
            Ok(name) if !name.trim().is_empty() => {
                let path = name.trim().parse::<Self>()?;
                if !path.supported() {
                    return Err(EngineError::Backend(format!(
                        "{FORCE_VARIABLE}={name}: this CPU cannot run the {} kernels",
                        path.describe()
                    )));
                }
                Ok(path)
            }
            _ => Ok(Self::detect()),
        }
    }
}

impl std::str::FromStr for KernelPath {
    type Err = EngineError;

    fn from_str(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|path| path.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
            EngineError::Backend(format!("unknown CPU kernel path '{name}' (known: {})", known.join(", ")))
        })
    }
}

impl std::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_the_portable_path_runs_everywhere() {
        for path in KernelPath::ALL {
            assert_eq!(path.name().parse::<KernelPath>().unwrap(), path);
        }
        assert!(KernelPath::Portable.supported());
        assert!(KernelPath::detect().supported());
        let err = "sse9".parse::<KernelPath>().unwrap_err().to_string();
        assert!(err.contains("avx512-vnni") && err.contains("portable"), "{err}");
    }
}
