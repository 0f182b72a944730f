//! Calibration: builds a quantization profile from sample inputs and the adapters it must serve.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::adapter::{Adapter, ResidentAdapter, bind_mix, pooled_lora_quantizers};
use crate::error::{EngineError, Result};
use crate::quant::{Affine, LoraQuant, Profile, RangeObserver};
use crate::unet::Unet;

/// Records activation ranges of the float model on `inputs`, once without adapters and once with
/// each adapter bound at weight 1, and returns static scales for `bits`-bit activations.
pub fn calibrate_activations(model: &Unet, inputs: &[Tensor], adapters: &[&Adapter], bits: u32) -> Result<BTreeMap<String, f32>> {
    if inputs.is_empty() {
        return Err(EngineError::Model("calibration needs at least one sample input".into()));
    }
    let mut observer = RangeObserver::default();
    let device = inputs[0].device();
    let resident: Vec<ResidentAdapter> = adapters.iter().map(|a| ResidentAdapter::new(a, None, device)).collect::<Result<_>>()?;
    for input in inputs {
        model.forward(input, None, &mut observer)?;
        for adapter in &resident {
            let set = bind_mix(&[(adapter, 1.0)], 1.0, false)?;
            model.forward(input, Some(&set), &mut observer)?;
        }
    }
    Ok(observer.scales(bits))
}

/// A complete profile: activation scales from `inputs`, LoRA quantizers pooled over `adapters`
/// (convs no adapter touches get a small symmetric default grid).
pub fn build_profile(model: &Unet, inputs: &[Tensor], adapters: &[&Adapter], bits: u32, method: &str) -> Result<Profile> {
    let activations = calibrate_activations(model, inputs, adapters, bits)?;
    let mut lora = pooled_lora_quantizers(adapters);
    for spec in model.convs() {
        lora.entry(spec.name.clone()).or_insert(LoraQuant { a: Affine::covering(-0.5, 0.5), b: Affine::covering(-0.05, 0.05) });
    }
    Profile::new(&model.content_hash()?, bits, activations, lora, method)
}
