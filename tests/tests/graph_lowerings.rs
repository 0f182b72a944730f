//! The model's graph is written once (`prism_engine::graph`) and lowered three times: the
//! reference forward (candle, QuantSim), the wgpu plan (lavapipe here) and the ONNX export (run
//! by ONNX Runtime). One random model whose graph holds every node kind runs through all three
//! with an adapter bound; each pair must agree.
//!
//! CI sets `PRISM_REQUIRE_WGPU` and `PRISM_REQUIRE_ORT`, so a missing runtime fails there.

use std::sync::Arc;

use candle_core::Tensor;
use prism_engine::adapter::Region;
use prism_engine::backends::gpu::{Gpu, WgpuBackend};
use prism_engine::backends::ort::OrtBackend;
use prism_engine::backends::{Backend, Precision, Provider, ReferenceBackend};
use prism_engine::fixtures::{photo_input, random_placed_adapter, synthetic_photo, write_model_dir};
use prism_engine::graph::{Join, LoraPlacement, Node};
use prism_engine::mix::Mix;
use prism_engine::model::Model;
use prism_engine::unet::UnetConfig;

/// Every kind of node the graph has. The match has no wildcard: a new kind does not compile
/// until it is named here, and so until this test covers it.
fn kind(node: &Node) -> &'static str {
    match node {
        Node::Input => "input",
        Node::Unshuffle { .. } => "unshuffle",
        Node::Conv { join: None, .. } => "conv",
        Node::Conv { join: Some(Join::Upsampled(_)), .. } => "upsample + skip + conv",
        Node::Conv { join: Some(Join::Beside(_)), .. } => "conv beside the unshuffled input (head)",
        Node::Add { .. } => "add",
        Node::Shuffle { .. } => "shuffle",
    }
}

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32 tensor")
}

/// PSNR over the residual's [-1, 1] range.
fn psnr(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (4.0 / mse.max(1e-30)).log10()
}

fn wgpu(model: &Model) -> Option<WgpuBackend> {
    match Gpu::open(true) {
        Ok(gpu) => Some(WgpuBackend::on(Arc::new(gpu), model.clone()).expect("compile on wgpu")),
        Err(error) => {
            assert!(std::env::var_os("PRISM_REQUIRE_WGPU").is_none(), "no wgpu adapter on a machine that must have one: {error}");
            eprintln!("skipped: {error}");
            None
        }
    }
}

fn ort(model: &Model) -> Option<OrtBackend> {
    match OrtBackend::new(model.clone(), Provider::Cpu) {
        Ok(ort) => Some(ort),
        Err(error) => {
            assert!(std::env::var_os("PRISM_REQUIRE_ORT").is_none(), "ONNX Runtime is required here: {error}");
            eprintln!("skipped: {error}");
            None
        }
    }
}

#[test]
fn reference_wgpu_and_onnx_runtime_agree_on_every_node_kind() {
    // Three levels; the middle one has no residual block, so a skip and a down conv meet directly.
    // The head reads the unshuffled input too (random weights there, so the path counts).
    let config = UnetConfig { head_sees_input: true, ..UnetConfig::new(vec![8, 12, 16], vec![1, 0, 2], 4).expect("config") };
    let kinds: std::collections::BTreeSet<&str> = config.graph().nodes.iter().map(kind).collect();
    assert_eq!(kinds.len(), 7, "the config exercises every node kind: {kinds:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let model = write_model_dir(dir.path(), &config, 5).expect("model dir");
    // 40 x 24: not square, not a power of two.
    let input = photo_input(&synthetic_photo(40, 24, 9)).expect("input");
    let mix = Mix::single("tone");
    // QuantSim first (the reference), then the CPU's integer kernels, wgpu and ONNX Runtime.
    let mut backends: Vec<Box<dyn Backend>> =
        vec![Box::new(ReferenceBackend::quantsim(model.clone())), Box::new(ReferenceBackend::new(model.clone()))];
    backends.extend(wgpu(&model).map(|b| Box::new(b) as Box<dyn Backend>));
    backends.extend(ort(&model).map(|b| Box::new(b) as Box<dyn Backend>));
    // An adapter on the coarse levels only (a placement): the backends feed nothing elsewhere.
    let coarse = random_placed_adapter(model.float().unwrap(), "coarse", 4, 8, Region::Global, LoraPlacement { min_level: 2 })
        .expect("adapter")
        .quantize(&model.profile)
        .expect("on the shared profile");
    assert!(coarse.layers.len() < model.config().convs().len());
    let mut outputs = Vec::new();
    let mut coarse_outputs = Vec::new();
    for backend in &mut backends {
        for file in model.shipped_adapters() {
            backend.install(&model.read_adapter(&file).expect("read")).expect("install");
        }
        backend.install(&coarse).expect("install the placed adapter");
        backend.bind(&mix, 0.8, Precision::Int8).expect("bind");
        outputs.push((backend.kind(), values(&backend.forward(&input).expect("forward"))));
        backend.bind(&Mix::single("coarse"), 1.0, Precision::Int8).expect("bind the placed adapter");
        coarse_outputs.push((backend.kind(), values(&backend.forward(&input).expect("forward"))));
    }
    for (kind, output) in &coarse_outputs[1..] {
        let agreement = psnr(&coarse_outputs[0].1, output);
        eprintln!("{kind} vs reference with an adapter on levels 2 and coarser: {agreement:.1} dB");
        assert!(agreement >= 60.0, "{kind} vs reference, placed adapter: {agreement:.1} dB");
    }
    let (_, reference) = &outputs[0];
    assert!(reference.iter().any(|v| v.abs() > 1e-3), "the model computes something");
    // The adapter matters: agreeing with the reference means binding it, on every backend.
    backends[0].bind(&Mix::none(), 1.0, Precision::Int8).expect("bind nothing");
    let base_output = values(&backends[0].forward(&input).expect("forward"));
    let base_alone = psnr(reference, &base_output);
    assert!(base_alone < 50.0, "the adapter changes the output: {base_alone:.1} dB from the base alone");
    let coarse_alone = psnr(&coarse_outputs[0].1, &base_output);
    assert!(coarse_alone < 60.0, "the placed adapter changes the output: {coarse_alone:.1} dB from the base alone");
    for (kind, output) in &outputs[1..] {
        // Both run the same int8 weights and int16 activation grids; they differ only where a
        // value lands on a rounding tie or f32 sums in another order, flipping single codes.
        let agreement = psnr(reference, output);
        eprintln!("{kind} vs reference on every node kind: {agreement:.1} dB");
        assert!(agreement >= 60.0, "{kind} vs reference: {agreement:.1} dB");
    }
}

/// Model v2's shape (five levels, the widest at the bottom, at 1/32 of the input) on the three
/// backends, small: the deep levels work on 2x1 and 1x1 grids here, the edge case of padding.
#[test]
fn a_five_level_model_agrees_across_backends() {
    let config = UnetConfig::new(vec![8, 8, 12, 16, 24], vec![1, 1, 0, 2, 3], 4).expect("config");
    let dir = tempfile::tempdir().expect("temp dir");
    let model = write_model_dir(dir.path(), &config, 6).expect("model dir");
    let input = photo_input(&synthetic_photo(64, 32, 4)).expect("input");
    // QuantSim first (the reference), then the CPU's integer kernels, wgpu and ONNX Runtime.
    let mut backends: Vec<Box<dyn Backend>> =
        vec![Box::new(ReferenceBackend::quantsim(model.clone())), Box::new(ReferenceBackend::new(model.clone()))];
    backends.extend(wgpu(&model).map(|b| Box::new(b) as Box<dyn Backend>));
    backends.extend(ort(&model).map(|b| Box::new(b) as Box<dyn Backend>));
    let mut outputs = Vec::new();
    for backend in &mut backends {
        for file in model.shipped_adapters() {
            backend.install(&model.read_adapter(&file).expect("read")).expect("install");
        }
        backend.bind(&Mix::single("tone"), 1.0, Precision::Int8).expect("bind");
        outputs.push((backend.kind(), values(&backend.forward(&input).expect("forward"))));
    }
    for (kind, output) in &outputs[1..] {
        let agreement = psnr(&outputs[0].1, output);
        eprintln!("{kind} vs reference on five levels: {agreement:.1} dB");
        assert!(agreement >= 60.0, "{kind} vs reference on five levels: {agreement:.1} dB");
    }
}
