//! Growing a trained model into a wider one that computes exactly the same function, so a
//! bigger model starts from everything the smaller one learned instead of from random weights
//! (Net2Net, Chen et al. 2016, in its zero-padding form).
//!
//! Every new channel gets fresh random incoming weights, and every weight that carries a new
//! channel into an old one is zero. The old channels therefore see exactly what they saw before,
//! and the output (whose channel count never changes) is the old output. Training then moves the
//! zero weights first, because their gradient is the new channels' activation times the error.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use prism_engine::adapter::{Adapter, AdapterPrecision, LoraTensors};
use prism_engine::unet::{ConvSpec, Unet, UnetConfig};

/// The model `small` grown to `config`: same levels and blocks, at least as many channels at
/// every level. New channels start with the random weights [`Unet::random_tensors`] gives them
/// (from `seed`).
pub fn grow_model(small: &Unet, config: &UnetConfig, seed: u64) -> Result<Unet> {
    let from = small.config();
    check_growable(from, config)?;
    let old = small.tensors()?;
    let mut grown = Unet::random_tensors(config, seed, &Device::Cpu)?;
    for (old_spec, new_spec) in from.convs().iter().zip(config.convs()) {
        let inputs = input_map(old_spec, from, config);
        let weight = values(&old, &old_spec.weight_name())?;
        let taps = new_spec.k * new_spec.k;
        let mut out = values(&grown, &new_spec.weight_name())?;
        // Old outputs read no new input: zero their whole row first, then put the old taps back.
        for o in 0..old_spec.cout {
            out[o * new_spec.cin * taps..(o + 1) * new_spec.cin * taps].fill(0.0);
            for (i, &to) in inputs.iter().enumerate() {
                let src = (o * old_spec.cin + i) * taps;
                let dst = (o * new_spec.cin + to) * taps;
                out[dst..dst + taps].copy_from_slice(&weight[src..src + taps]);
            }
        }
        grown.insert(new_spec.weight_name(), Tensor::from_vec(out, new_spec.weight_shape(), &Device::Cpu)?);
        let mut bias = values(&grown, &new_spec.bias_name())?;
        bias[..old_spec.cout].copy_from_slice(&values(&old, &old_spec.bias_name())?);
        grown.insert(new_spec.bias_name(), Tensor::from_vec(bias, new_spec.cout, &Device::Cpu)?);
    }
    Ok(Unet::new(config, &grown)?)
}

/// A float adapter of `from`'s model grown to `config`'s: A reads nothing from the new input
/// channels and B writes nothing to the new output channels, so the adapter changes exactly what
/// it changed before.
pub fn grow_adapter(adapter: &Adapter, from: &UnetConfig, config: &UnetConfig) -> Result<Adapter> {
    check_growable(from, config)?;
    if adapter.meta.precision != AdapterPrecision::Float {
        bail!("only float adapters can be grown (this one is int8)");
    }
    let mut layers = BTreeMap::new();
    for (old_spec, new_spec) in from.convs().iter().zip(config.convs()) {
        let t = adapter.layers.get(&old_spec.name).with_context(|| format!("adapter lacks layer '{}'", old_spec.name))?;
        let rank = t.b_shape.get(1).copied().unwrap_or(0);
        if t.a_shape != [rank, old_spec.cin, old_spec.k, old_spec.k] || t.b_shape != [old_spec.cout, rank] {
            bail!("adapter layer '{}' does not fit the model it is grown from", old_spec.name);
        }
        let taps = new_spec.k * new_spec.k;
        let inputs = input_map(old_spec, from, config);
        let mut a = vec![0f32; rank * new_spec.cin * taps];
        for r in 0..rank {
            for (i, &to) in inputs.iter().enumerate() {
                let src = (r * old_spec.cin + i) * taps;
                let dst = (r * new_spec.cin + to) * taps;
                a[dst..dst + taps].copy_from_slice(&t.a[src..src + taps]);
            }
        }
        let mut b = vec![0f32; new_spec.cout * rank];
        b[..t.b.len()].copy_from_slice(&t.b);
        layers.insert(
            new_spec.name.clone(),
            LoraTensors {
                a_shape: vec![rank, new_spec.cin, new_spec.k, new_spec.k],
                b_shape: vec![new_spec.cout, rank],
                a,
                b,
                codes: None,
            },
        );
    }
    Ok(Adapter { meta: adapter.meta.clone(), layers })
}

fn check_growable(from: &UnetConfig, to: &UnetConfig) -> Result<()> {
    let wider = from.channels.len() == to.channels.len()
        && from.blocks == to.blocks
        && from.max_rank == to.max_rank
        && from.channels.iter().zip(&to.channels).all(|(a, b)| a <= b);
    if from.head_sees_input && !to.head_sees_input {
        bail!("a head that sees the input cannot be grown into one that does not");
    }
    if !wider {
        bail!(
            "can only grow channels at the same levels and blocks: {:?} / {:?} -> {:?} / {:?}",
            from.channels,
            from.blocks,
            to.channels,
            to.blocks
        );
    }
    Ok(())
}

/// Where each old input channel of a conv sits in the grown conv's input. The convs that read two
/// tensors move their second part: the decoder's fuse convs (upsampled deeper level, then the
/// skip) and a head that sees the input (top level, then the unshuffled input). A head that starts
/// seeing the input gets the input's channels after its old ones.
fn input_map(old_spec: &ConvSpec, from: &UnetConfig, to: &UnetConfig) -> Vec<usize> {
    let fused_level =
        old_spec.name.strip_prefix("dec").and_then(|rest| rest.strip_suffix(".fuse")).and_then(|l| l.parse::<usize>().ok());
    let first_part = match fused_level {
        Some(level) => Some((from.channels[level + 1], to.channels[level + 1])),
        None if old_spec.name == "head" && from.head_sees_input => Some((from.channels[0], to.channels[0])),
        None => None,
    };
    match first_part {
        Some((old_first, new_first)) => {
            (0..old_spec.cin).map(|i| if i < old_first { i } else { new_first + i - old_first }).collect()
        }
        None => (0..old_spec.cin).collect(),
    }
}

fn values(tensors: &BTreeMap<String, Tensor>, name: &str) -> Result<Vec<f32>> {
    Ok(tensors.get(name).with_context(|| format!("model lacks tensor '{name}'"))?.flatten_all()?.to_vec1()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{adapter_pairs, float_adapter, init_lora, lora_set, task_meta};
    use prism_engine::graph::LoraPlacement;

    const EVERY: LoraPlacement = LoraPlacement::EVERY_CONV;
    use crate::tasks::Task;
    use prism_engine::unet::FloatActivations;

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    /// A grown model and a grown adapter compute what the small ones did, to float rounding,
    /// while the new channels are really there (non-zero) for training to use.
    #[test]
    fn grown_model_and_adapter_compute_the_same_output() {
        let small_config = UnetConfig::new(vec![4, 6, 8], vec![1, 1, 2], 4).unwrap();
        // Every level grows, so both fuse convs move their skip channels.
        let wide_config = UnetConfig::new(vec![6, 9, 11], vec![1, 1, 2], 4).unwrap();
        grows_exactly(&small_config, &wide_config);
    }

    /// Opening the head to the input adds input channels that read zero weights; growing a model
    /// whose head already sees the input moves the input's channels after the wider top level.
    #[test]
    fn a_head_that_starts_seeing_the_input_computes_the_same_output() {
        let plain = UnetConfig::new(vec![4, 6, 8], vec![1, 1, 2], 4).unwrap();
        let seeing = UnetConfig { head_sees_input: true, ..plain.clone() };
        grows_exactly(&plain, &seeing);
        let wide_seeing = UnetConfig { head_sees_input: true, ..UnetConfig::new(vec![6, 9, 11], vec![1, 1, 2], 4).unwrap() };
        grows_exactly(&seeing, &wide_seeing);
        let err = grow_model(&random_model(&seeing), &plain, 1).unwrap_err().to_string();
        assert!(err.contains("cannot be grown"), "{err}");
    }

    fn random_model(config: &UnetConfig) -> Unet {
        Unet::new(config, &Unet::random_tensors(config, 5, &Device::Cpu).unwrap()).unwrap()
    }

    fn grows_exactly(small_config: &UnetConfig, wide_config: &UnetConfig) {
        let small = random_model(small_config);
        let wide = grow_model(&small, wide_config, 9).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 16, 24, 4), &Device::Cpu).unwrap();
        let before = small.forward(&x, None, &mut FloatActivations).unwrap();
        let after = wide.forward(&x, None, &mut FloatActivations).unwrap();
        assert!(max_difference(&before, &after) < 1e-5);

        // A LoRA with non-zero B, so the adapter really changes the output.
        let pairs: Vec<(Tensor, Tensor)> = init_lora(&small, 3, 2, EVERY)
            .unwrap()
            .chunks_exact(2)
            .map(|p| (p[0].clone(), (p[1].ones_like().unwrap() * 0.05).unwrap()))
            .collect();
        let meta = task_meta(Task::Denoise, &small.content_hash().unwrap(), AdapterPrecision::Float, "").unwrap();
        let adapter = float_adapter(&small, &pairs, meta, EVERY).unwrap();
        let grown = grow_adapter(&adapter, small_config, wide_config).unwrap();
        let small_lora = lora_set(&small, &adapter_pairs(&small, &adapter).unwrap(), 1.0, EVERY).unwrap();
        let wide_lora = lora_set(&wide, &adapter_pairs(&wide, &grown).unwrap(), 1.0, EVERY).unwrap();
        let edited = small.forward(&x, Some(&small_lora), &mut FloatActivations).unwrap();
        assert!(max_difference(&edited, &before) > 1e-2, "the adapter must change the output for the test to mean anything");
        let grown_edited = wide.forward(&x, Some(&wide_lora), &mut FloatActivations).unwrap();
        assert!(max_difference(&edited, &grown_edited) < 1e-5);

        // The new channels of a fuse conv are live: random incoming weights, not zeros.
        let new_channels = wide_config.channels[0] - small_config.channels[0];
        if new_channels > 0 {
            let fuse = wide.tensors().unwrap()["dec0.fuse.weight"].clone();
            let new_rows = fuse.narrow(0, small_config.channels[0], new_channels).unwrap();
            assert!(new_rows.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        }
    }

    #[test]
    fn refuses_to_shrink_or_change_depth() {
        let small_config = UnetConfig::new(vec![4, 6], vec![1, 1], 4).unwrap();
        let small = Unet::new(&small_config, &Unet::random_tensors(&small_config, 5, &Device::Cpu).unwrap()).unwrap();
        for to in [UnetConfig::new(vec![3, 6], vec![1, 1], 4), UnetConfig::new(vec![4, 6], vec![1, 2], 4)] {
            let err = grow_model(&small, &to.unwrap(), 1).unwrap_err().to_string();
            assert!(err.contains("can only grow"), "{err}");
        }
    }
}
