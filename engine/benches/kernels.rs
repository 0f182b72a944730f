//! Reference-backend kernel speed, measured side by side in one run:
//! the NHWC im2col+gemm convolution against a plain matrix multiply (the machine's practical
//! ceiling) and against candle's own conv2d, then whole prism-unet forwards at 512x512.
//!
//! `cargo bench -p prism-engine --bench kernels`

use std::time::Instant;

use candle_core::{Device, Module, Tensor};
use prism_engine::conv::{ConvGeometry, conv_forward, conv_input_grad, conv_weight_grad, matmul_into};
use prism_engine::fixtures::{photo_input, random_model, synthetic_photo};
use prism_engine::quant::{QuantSim, quantized_weights_model};
use prism_engine::unet::{FloatActivations, UnetConfig};

/// Best wall time of `runs` calls, in seconds (the least disturbed by other load).
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn random(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = rayon::current_num_threads();
    println!("prism reference kernels, {threads} threads\n");

    let n = 1024;
    let (a, b) = (random(n * n, 1), random(n * n, 2));
    let mut c = vec![0f32; n * n];
    let t = best_of(5, || matmul_into(&mut c, &a, &b, (n, n, n), false, threads));
    let ceiling = 2.0 * (n * n * n) as f64 / t / 1e9;
    println!("matmul {n}^3 (gemm, the ceiling): {:.1} ms, {ceiling:.1} GFLOP/s\n", t * 1e3);

    println!("{:<34} {:>9} {:>9} {:>10} {:>12} {:>9}", "conv", "ours ms", "GFLOP/s", "of ceiling", "candle ms", "speedup");
    let cases = [
        ("3x3 [8,64,64,64]->64", 8, 64, 64, 64, 64, 3, 1),
        ("3x3 [1,256,256,32]->32", 1, 256, 256, 32, 32, 3, 1),
        ("3x3 [1,128,128,64]->64", 1, 128, 128, 64, 64, 3, 1),
        ("3x3/s2 [1,256,256,32]->64", 1, 256, 256, 32, 64, 3, 2),
        ("1x1 [1,128,128,192]->64", 1, 128, 128, 192, 64, 1, 1),
    ];
    for (label, batch, h, w, cin, cout, k, stride) in cases {
        let geometry = ConvGeometry { k, stride };
        let x = random(batch * h * w * cin, 3);
        let weight = random(k * k * cin * cout, 4);
        let ours = best_of(5, || {
            std::hint::black_box(conv_forward(&x, (batch, h, w, cin), &weight, cout, geometry));
        });
        let (oh, ow) = geometry.output_size(h, w);
        let flops = 2.0 * (batch * oh * ow * k * k * cin * cout) as f64;
        let x_nchw = Tensor::from_vec(x.clone(), (batch, h, w, cin), &Device::Cpu)?.permute((0, 3, 1, 2))?.contiguous()?;
        let w_oihw = Tensor::from_vec(weight.clone(), (k, k, cin, cout), &Device::Cpu)?.permute((3, 2, 0, 1))?.contiguous()?;
        let conv = candle_nn::Conv2d::new(w_oihw, None, candle_nn::Conv2dConfig { padding: k / 2, stride, ..Default::default() });
        let theirs = best_of(3, || {
            std::hint::black_box(conv.forward(&x_nchw).ok());
        });
        let gflops = flops / ours / 1e9;
        println!(
            "{label:<34} {:>9.2} {gflops:>9.1} {:>9.0}% {:>12.2} {:>8.1}x",
            ours * 1e3,
            100.0 * gflops / ceiling,
            theirs * 1e3,
            theirs / ours
        );
    }

    // Training direction: forward + both gradients on the DESIGN.md reference layer.
    let (batch, h, w, c) = (8, 64, 64, 64);
    let geometry = ConvGeometry { k: 3, stride: 1 };
    let x = random(batch * h * w * c, 5);
    let weight = random(9 * c * c, 6);
    let dy = random(batch * h * w * c, 7);
    let train = best_of(3, || {
        std::hint::black_box(conv_forward(&x, (batch, h, w, c), &weight, c, geometry));
        std::hint::black_box(conv_weight_grad(&x, (batch, h, w, c), &dy, c, geometry));
        std::hint::black_box(conv_input_grad(&dy, (batch, h, w, c), &weight, c, geometry));
    });
    let flops = 3.0 * 2.0 * (batch * h * w * 9 * c * c) as f64;
    println!(
        "\n3x3 [8,64,64,64] forward+backward: {:.1} ms, {:.1} GFLOP/s ({:.0}% of ceiling)",
        train * 1e3,
        flops / train / 1e9,
        100.0 * flops / train / 1e9 / ceiling
    );

    println!("\nprism-unet forward at 512x512 (random weights, size candidates):");
    for (channels, blocks) in [(vec![24, 48, 96], vec![1, 1, 2]), (vec![32, 64, 128], vec![1, 2, 2])] {
        let config = UnetConfig::new(channels.clone(), blocks.clone(), 16)?;
        let model = random_model(&config, 1)?;
        let quantized = quantized_weights_model(&model)?;
        let input = photo_input(&synthetic_photo(512, 512, 1))?;
        let samples = [photo_input(&synthetic_photo(128, 128, 2))?];
        let profile = prism_engine::calibrate::build_profile(&model, &samples, &[], 16, "ptq-pooled")?;
        let float_t = best_of(3, || {
            std::hint::black_box(model.forward(&input, None, &mut FloatActivations).ok());
        });
        let quant_t = best_of(3, || {
            std::hint::black_box(quantized.forward(&input, None, &mut QuantSim { profile: &profile }).ok());
        });
        let gflop = config.flops(512, 512) as f64 / 1e9;
        println!(
            "  channels {channels:?} blocks {blocks:?}: {:.2} M params, {gflop:.1} GFLOP; float {:.0} ms ({:.1} GFLOP/s), QuantSim int8 {:.0} ms",
            config.parameter_count() as f64 / 1e6,
            float_t * 1e3,
            gflop / float_t,
            quant_t * 1e3
        );
    }
    Ok(())
}
