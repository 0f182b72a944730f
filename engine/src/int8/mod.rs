//! Integer kernels for the shared profile's W8A16 semantics on the CPU: int8 per-channel weights
//! times int16 activations, summed in int32, requantized to the next quantization point — the
//! values QuantSim computes in f32, at integer speed.
//!
//! | file | job |
//! |---|---|
//! | `path` | `KernelPath`: which instructions run (detected, or forced by `PRISM_CPU_KERNEL`) |
//! | `panels` | weights packed in pair-interleaved panels; `Kernel`, the one dispatch point; the overflow bound |
//! | `narrow` | LoRA's A of rank 8 or less packed several row pairs to a register, and its portable tile |
//! | `x86` | AVX-512 VNNI, AVX-VNNI and AVX2 tiles |
//! | `neon` | the ARM NEON tile |
//! | `portable` | the tile in plain Rust |
//! | `lowering` | `IntegerUnet`: the model graph on the integer tiles, LoRA side path included |

mod elementwise;
mod lowering;
mod narrow;
#[cfg(target_arch = "aarch64")]
mod neon;
mod panels;
mod path;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use lowering::{IntegerLora, IntegerUnet};
pub use narrow::{MAX_NARROW_RANK, NarrowPanels, READ_PAST};
pub use panels::{CHUNK_PAIRS, Kernel, MAX_WEIGHT, PANEL, Panels};
pub use path::{FORCE_VARIABLE, KernelPath};
