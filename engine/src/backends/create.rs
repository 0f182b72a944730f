//! Starting the backend a user asked for.

use super::{Backend, BackendKind, Provider, ReferenceBackend};
#[cfg(not(feature = "ort"))]
use crate::error::EngineError;
use crate::error::Result;
use crate::model::Model;

/// Builds the backend `kind` names. `Auto` takes wgpu on a hardware GPU and the reference CPU
/// backend otherwise (a software GPU adapter is slower than the CPU backend); an explicit
/// `Wgpu` takes a software adapter too, and fails with what to do when there is none.
/// `provider` is the execution provider the ONNX Runtime backend asks for; others ignore it.
pub fn create_backend(kind: BackendKind, provider: Provider, model: &Model) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Reference => Ok(Box::new(ReferenceBackend::new(model.clone()))),
        BackendKind::Wgpu => Ok(Box::new(super::gpu::WgpuBackend::new(model.clone(), true)?)),
        BackendKind::Auto => match super::gpu::WgpuBackend::new(model.clone(), false) {
            Ok(backend) => Ok(Box::new(backend)),
            Err(error) => {
                tracing::info!(%error, "no hardware GPU; using the reference CPU backend");
                Ok(Box::new(ReferenceBackend::new(model.clone())))
            }
        },
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Box::new(super::ort::OrtBackend::new(model.clone(), provider)?)),
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => Err(EngineError::Backend(format!(
            "this build has no ONNX Runtime backend for --provider {} (build with --features ort); use --backend reference or wgpu",
            provider.name()
        ))),
    }
}
