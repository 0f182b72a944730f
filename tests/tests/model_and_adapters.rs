//! Model, quantization and adapter behaviour on small random models built here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use prism_engine::adapter::{Adapter, Region, ResidentAdapter, bind_mix, import_kohya, import_peft};
use prism_engine::calibrate::build_profile;
use prism_engine::fixtures::{photo_input, random_adapter, random_model, synthetic_photo, tiny_config, write_tiny_model_dir};
use prism_engine::learned_doubling::DoublingFilters;
use prism_engine::model::Model;
use prism_engine::quant::{QuantSim, quantized_weights_model};
use prism_engine::tensorfile::{RawTensor, TensorFile};
use prism_engine::unet::{FloatActivations, Unet, UnetConfig};
use prism_engine::upscale_prepass::Upsampling;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// PSNR of two residuals on the model's [-1, 1] pixel scale (peak-to-peak 2).
fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse: f32 = (a - b).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar().unwrap();
    10.0 * (4.0 / mse.max(1e-20) as f64).log10()
}

fn forward(model: &Unet, input: &Tensor, adapters: &[(&ResidentAdapter, f32)]) -> Tensor {
    let set = bind_mix(adapters, 1.0, false).unwrap();
    model.forward(input, Some(&set), &mut FloatActivations).unwrap()
}

#[test]
fn the_float_base_is_read_when_it_is_needed_and_checked_then() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tiny_model_dir(dir.path(), 7).unwrap();
    write_tiny_model_dir(other.path(), 8).unwrap();
    let base = dir.path().join("base.safetensors");
    let original = std::fs::read(&base).unwrap();

    // Another model's base beside this int8 model: refused at load, from the header alone.
    std::fs::copy(other.path().join("base.safetensors"), &base).unwrap();
    let err = Model::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("re-export the int8 model"), "{err}");

    // A weight damaged on disk: the int8 model loads and runs, the float base is refused when asked for.
    let mut damaged = original.clone();
    let last = damaged.len() - 2;
    damaged[last] ^= 0x40;
    std::fs::write(&base, &damaged).unwrap();
    let model = Model::load(dir.path()).unwrap();
    let input = photo_input(&synthetic_photo(16, 16, 1)).unwrap();
    model.quantized().unwrap().forward(&input, None, &mut FloatActivations).unwrap();
    let err = model.float().unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");

    // Swapped after loading: asking for the float base says so.
    std::fs::write(&base, &original).unwrap();
    let model = Model::load(dir.path()).unwrap();
    std::fs::copy(other.path().join("base.safetensors"), &base).unwrap();
    let err = model.float().unwrap_err().to_string();
    assert!(err.contains("changed since the model was loaded"), "{err}");
}

#[test]
fn save_load_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let saved = write_tiny_model_dir(dir.path(), 7).unwrap();
    let loaded = Model::load(dir.path()).unwrap();
    assert_eq!(saved.hash, loaded.hash);
    assert_eq!(saved.profile, loaded.profile);
    let (a, b) = (saved.float().unwrap().tensors().unwrap(), loaded.float().unwrap().tensors().unwrap());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, tensor) in &a {
        let x = tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = b[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{name} changed");
    }
    // The int8 file holds exactly what QuantSim uses.
    let input = photo_input(&synthetic_photo(16, 16, 1)).unwrap();
    let from_float =
        quantized_weights_model(saved.float().unwrap()).unwrap().forward(&input, None, &mut FloatActivations).unwrap();
    let from_int8 = loaded.quantized().unwrap().forward(&input, None, &mut FloatActivations).unwrap();
    assert_eq!(max_abs_diff(&from_float, &from_int8), 0.0);
    // Adapter files too.
    let adapter_path = dir.path().join("adapters/fill.prism-lora");
    let adapter = Adapter::read(&adapter_path).unwrap();
    let again = dir.path().join("again.prism-lora");
    adapter.write(&again).unwrap();
    // safetensors orders metadata by hash map iteration, so compare contents, not bytes.
    assert_eq!(TensorFile::read(&adapter_path).unwrap(), TensorFile::read(&again).unwrap());
}

#[test]
fn lora_with_zero_b_equals_the_base() {
    let model = random_model(&tiny_config(), 3).unwrap();
    let mut adapter = random_adapter(&model, "zero", 4, 4, Region::Global).unwrap();
    for t in adapter.layers.values_mut() {
        t.b.iter_mut().for_each(|v| *v = 0.0);
    }
    let resident = ResidentAdapter::new(&adapter, None, &Device::Cpu).unwrap();
    let input = photo_input(&synthetic_photo(24, 20, 2)).unwrap();
    let base = model.forward(&input, None, &mut FloatActivations).unwrap();
    assert_eq!(max_abs_diff(&base, &forward(&model, &input, &[(&resident, 1.0)])), 0.0);
}

#[test]
fn blending_two_adapters_equals_the_sum_of_their_deltas() {
    let config = tiny_config();
    let model = random_model(&config, 5).unwrap();
    let a = random_adapter(&model, "a", 4, 6, Region::Global).unwrap();
    let b = random_adapter(&model, "b", 2, 7, Region::Global).unwrap();
    let (ra, rb) = (ResidentAdapter::new(&a, None, &Device::Cpu).unwrap(), ResidentAdapter::new(&b, None, &Device::Cpu).unwrap());
    let input = photo_input(&synthetic_photo(16, 24, 3)).unwrap();
    let blended = forward(&model, &input, &[(&ra, 0.7), (&rb, 0.3)]);

    // The same edit as one merged model: W + 0.7 dA + 0.3 dB.
    let mut merged: BTreeMap<String, Tensor> = model.tensors().unwrap();
    for spec in model.convs() {
        let (da, db) = (a.delta(&spec.name).unwrap(), b.delta(&spec.name).unwrap());
        let delta: Vec<f32> = da.iter().zip(&db).map(|(x, y)| 0.7 * x + 0.3 * y).collect();
        let delta = Tensor::from_vec(delta, spec.weight_shape(), &Device::Cpu).unwrap();
        let w = merged.get_mut(&spec.weight_name()).unwrap();
        *w = (&*w + delta).unwrap();
    }
    let merged = Unet::new(&config, &merged).unwrap().forward(&input, None, &mut FloatActivations).unwrap();
    let diff = max_abs_diff(&blended, &merged);
    assert!(diff < 1e-4, "blend differs from merged deltas by {diff}");
    // And it is not trivially the base.
    let base = model.forward(&input, None, &mut FloatActivations).unwrap();
    assert!(max_abs_diff(&blended, &base) > 1e-3);
}

#[test]
fn quantized_forward_agrees_with_float() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model_dir(dir.path(), 11).unwrap();
    let model = Model::load(dir.path()).unwrap();
    let adapter = model.read_adapter(&dir.path().join("adapters/tone.prism-lora")).unwrap();
    let resident = ResidentAdapter::new(&adapter, Some(&model.profile), &Device::Cpu).unwrap();
    // A held-out synthetic photo (calibration used other seeds).
    let input = photo_input(&synthetic_photo(64, 48, 99)).unwrap();
    let float = model
        .float()
        .unwrap()
        .forward(&input, Some(&bind_mix(&[(&resident, 1.0)], 1.0, false).unwrap()), &mut FloatActivations)
        .unwrap();
    let quant = model
        .quantized()
        .unwrap()
        .forward(&input, Some(&bind_mix(&[(&resident, 1.0)], 1.0, true).unwrap()), &mut QuantSim { profile: &model.profile })
        .unwrap();
    let db = psnr(&float, &quant);

    println!("W8A16 quantized vs float forward: PSNR {db:.1} dB");
    assert!(db >= 40.0, "quantized output drifted: {db:.1} dB");

    // W8A8 on the same model is measurably worse than W8A16 (and still reported).
    let samples = vec![photo_input(&synthetic_photo(32, 32, 21)).unwrap()];
    let float_adapter = adapter.dequantized(&model.profile).unwrap();
    let w8a8 = build_profile(model.float().unwrap(), &samples, &[&float_adapter], 8, "ptq-pooled").unwrap();
    let quant8 = model.quantized().unwrap().forward(&input, None, &mut QuantSim { profile: &w8a8 }).unwrap();
    let float_base = model.float().unwrap().forward(&input, None, &mut FloatActivations).unwrap();
    let db8 = psnr(&float_base, &quant8);
    println!("W8A8 quantized vs float forward: PSNR {db8:.1} dB");
    assert!(db8 < db);
}

#[test]
fn adapters_for_another_profile_or_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny_model_dir(dir.path(), 13).unwrap();
    let mut adapter = Adapter::read(&dir.path().join("adapters/fill.prism-lora")).unwrap();
    adapter.meta.profile = "0123456789abcdef".into();
    let err = adapter.check_compatible(model.config(), &model.hash, Some(&model.profile)).unwrap_err().to_string();
    assert!(err.contains("profile 0123456789abcdef") && err.contains(&model.profile.id) && err.contains("quad"), "{err}");

    let other = random_model(&tiny_config(), 99).unwrap();
    let foreign = random_adapter(&other, "foreign", 2, 1, Region::Global).unwrap();
    let err = foreign.check_compatible(model.config(), &model.hash, Some(&model.profile)).unwrap_err().to_string();
    assert!(err.contains("base model") && err.contains(&model.hash), "{err}");

    let bigger = UnetConfig { channels: vec![8, 16], ..tiny_config() };
    let other_shape = random_adapter(&random_model(&bigger, 1).unwrap(), "shape", 2, 1, Region::Global).unwrap();
    let mut other_shape = other_shape;
    other_shape.meta.base_model = model.hash.clone();
    let err = other_shape.check_compatible(model.config(), &model.hash, Some(&model.profile)).unwrap_err().to_string();
    assert!(err.contains("shapes"), "{err}");
}

#[test]
fn peft_and_kohya_files_import_to_the_same_deltas() {
    let model = random_model(&tiny_config(), 17).unwrap();
    let hash = model.content_hash().unwrap();
    let source = random_adapter(&model, "src", 4, 18, Region::Global).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (rank, alpha) = (4usize, 8.0f32);

    let mut peft = TensorFile::default();
    let mut kohya = TensorFile::default();
    for (layer, t) in &source.layers {
        let a = RawTensor::from_f32(t.a_shape.clone(), &t.a);
        let b = RawTensor::from_f32(vec![t.b_shape[0], t.b_shape[1], 1, 1], &t.b);
        peft.tensors.insert(format!("base_model.model.{layer}.lora_A.weight"), a.clone());
        peft.tensors.insert(format!("base_model.model.{layer}.lora_B.weight"), b.clone());
        let key = format!("lora_unet_{}", layer.replace('.', "_"));
        kohya.tensors.insert(format!("{key}.lora_down.weight"), a);
        kohya.tensors.insert(format!("{key}.lora_up.weight"), b);
        kohya.tensors.insert(format!("{key}.alpha"), RawTensor::from_f32(vec![], &[alpha]));
    }
    let peft_dir = dir.path().join("peft");
    std::fs::create_dir(&peft_dir).unwrap();
    peft.write(&peft_dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        peft_dir.join("adapter_config.json"),
        format!(r#"{{"r": {rank}, "lora_alpha": {alpha}, "peft_type": "LORA"}}"#),
    )
    .unwrap();
    let kohya_path = dir.path().join("kohya.safetensors");
    kohya.write(&kohya_path).unwrap();

    let layers: Vec<String> = model.convs().map(|s| s.name.clone()).collect();
    let from_peft = import_peft(&peft_dir, "p", &hash).unwrap();
    let from_kohya = import_kohya(&kohya_path, "k", &hash, &layers).unwrap();
    from_peft.check_compatible(model.config(), &hash, None).unwrap();
    for layer in &layers {
        let (p, k, s) = (from_peft.delta(layer).unwrap(), from_kohya.delta(layer).unwrap(), source.delta(layer).unwrap());
        for ((p, k), s) in p.iter().zip(&k).zip(&s) {
            assert!((p - k).abs() < 1e-6, "{layer}: PEFT and kohya deltas differ");
            assert!((p - s * alpha / rank as f32).abs() < 1e-5, "{layer}: delta is not alpha/r x B A");
        }
    }

    // A tensor that is not LoRA is reported, not ignored.
    peft.tensors.insert("base_model.model.head.weight".into(), RawTensor::from_f32(vec![1], &[0.0]));
    peft.write(&peft_dir.join("adapter_model.safetensors")).unwrap();
    let err = import_peft(&peft_dir, "p", &hash).unwrap_err().to_string();
    assert!(err.contains("base_model.model.head.weight"), "{err}");
}

#[test]
fn an_upscalers_upsampling_is_kept_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model_dir(dir.path(), 23).unwrap();
    let mut adapter = Adapter::read(&dir.path().join("adapters/fill.prism-lora")).unwrap();
    assert_eq!(adapter.meta.upsampling, Upsampling::CatmullRom, "a file without the key is Catmull-Rom");
    adapter.meta.scale = 2;
    adapter.meta.upsampling = Upsampling::BlockMatched;
    let path = dir.path().join("double.prism-lora");
    adapter.write(&path).unwrap();
    assert_eq!(Adapter::read(&path).unwrap().meta.upsampling, Upsampling::BlockMatched);
    // A learned doubling says which fit of the filters it was trained on, and runs only on it.
    adapter.meta.upsampling = Upsampling::Learned;
    adapter.write(&path).unwrap();
    let err = Adapter::read(&path).unwrap_err().to_string();
    assert!(err.contains("doubling_filters"), "{err}");
    let model = Model::load(dir.path()).unwrap();
    let compiled_in = DoublingFilters::shipped().unwrap().id();
    adapter.meta.doubling_filters = Some(compiled_in.clone());
    adapter.write(&path).unwrap();
    let read = Adapter::read(&path).unwrap();
    assert_eq!((read.meta.upsampling, read.meta.doubling_filters.as_deref()), (Upsampling::Learned, Some(compiled_in.as_str())));
    read.check_compatible(model.config(), &model.hash, Some(&model.profile)).unwrap();
    adapter.meta.doubling_filters = Some("0123456789abcdef".into());
    adapter.write(&path).unwrap();
    let err = Adapter::read(&path)
        .unwrap()
        .check_compatible(model.config(), &model.hash, Some(&model.profile))
        .unwrap_err()
        .to_string();
    assert!(err.contains("0123456789abcdef") && err.contains(&compiled_in) && err.contains("retrain"), "{err}");
    // Block matching only doubles: a file that claims it at scale 3 is refused, not misread.
    adapter.meta.scale = 3;
    adapter.write(&path).unwrap();
    let err = Adapter::read(&path).unwrap_err().to_string();
    assert!(err.contains("scale 3") && err.contains("only doubles"), "{err}");
}
