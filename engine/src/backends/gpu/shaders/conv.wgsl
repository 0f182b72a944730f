// Convolution of prism-unet (3x3 or 1x1, stride 1 or 2, zero padding k/2) with bias, the LoRA
// side path (B applied to the stored rank-r intermediate), leaky ReLU and the activation
// quantizer of its output. The LoRA A pass runs through this same kernel (A as the weights,
// rank as cout, its affine zero point as weight_zero), once per bound adapter: each writes its
// rank channels at its own offset of the intermediate, so a blend needs no concatenated A.
//
// Storage (QuantSim semantics, engine/src/quant.rs): activations NHWC, channels padded to a
// multiple of 4, packed 2 int16 or 4 int8 per u32 word (FLOAT = true: one f32 per word); weights
// [k*k*cin (order ky, kx, ci)][cout padded to 4], int8 four output channels per word (FLOAT: one
// f32 per word), so one load gives a tap's weights for the four channels an invocation computes.
// Compute is f32 after dequantizing; every output is rounded half away from zero onto its static
// scale.
//
// Input channels [0, cin_a) come from `input_a` (read at (y / up_a, x / up_a): the nearest x2
// upsample of the decoder), channels [cin_a, cin_a + cin_b) from `input_b` (the skip): concat
// and upsample never materialise.

struct Params {
    out_h: u32,
    out_w: u32,
    cout: u32,
    k: u32,
    stride: u32,
    pad: u32,
    in_h: u32,
    in_w: u32,
    cin_a: u32,
    cin_b: u32,
    up_a: u32,
    _pad0: u32,
    scale_a: f32,
    scale_b: f32,
    out_scale: f32,
    weight_zero: f32,
    leaky: u32,
    // 1: a LoRA A pass; its cout is the bound rank (from `lora_scales`), it has no side path.
    lora_a_pass: u32,
    mid_scale: f32,
    lora_b_scale: f32,
    lora_b_zero: f32,
    slope: f32,
    _pad1: u32,
    _pad2: u32,
}

struct LoraScales {
    // Rank of the intermediate this binding reads or writes (0: no adapter on this conv).
    rank: u32,
    // A pass: the first channel it writes, and the intermediate's channel count (a blend's
    // adapters sit side by side, each padded to 4).
    offset: u32,
    stride: u32,
    _pad0: u32,
    // Per rank channel: alpha x mix weight x strength (32 x 4 = up to 128 ranks).
    values: array<vec4<f32>, 32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input_a: array<u32>;
@group(0) @binding(2) var<storage, read> input_b: array<u32>;
@group(0) @binding(3) var<storage, read> mid: array<u32>;
@group(0) @binding(4) var<storage, read_write> output: array<u32>;
@group(1) @binding(0) var<storage, read> weights: array<u32>;
// [cout] weight scales, then [cout] biases (a LoRA A pass: [1] the A grid's scale).
@group(1) @binding(1) var<storage, read> channel: array<f32>;
@group(2) @binding(0) var<storage, read> lora_b: array<u32>;
@group(2) @binding(1) var<uniform> lora_scales: LoraScales;

fn padded(c: u32) -> u32 {
    return (c + 3u) / 4u * 4u;
}

fn per_word() -> u32 {
    if FLOAT {
        return 1u;
    }
    return 32u / ACT_BITS;
}

// Element `index` (in padded NHWC order) of an activation tensor, dequantized.
fn act_a(index: u32) -> f32 {
    if FLOAT {
        return bitcast<f32>(input_a[index]);
    }
    let n = per_word();
    return signed_lane(input_a[index / n], index % n, ACT_BITS) * params.scale_a;
}

fn act_b(index: u32) -> f32 {
    if FLOAT {
        return bitcast<f32>(input_b[index]);
    }
    let n = per_word();
    return signed_lane(input_b[index / n], index % n, ACT_BITS) * params.scale_b;
}

fn act_mid(index: u32) -> f32 {
    if FLOAT {
        return bitcast<f32>(mid[index]);
    }
    let n = per_word();
    return signed_lane(mid[index / n], index % n, ACT_BITS) * params.mid_scale;
}

// Weights of output channels co0..co0+3 at tap `t`.
fn weights4(co0: u32, t: u32, cout: u32) -> vec4<f32> {
    let groups = padded(cout) / 4u;
    if FLOAT {
        let i = (t * groups + co0 / 4u) * 4u;
        return vec4<f32>(bitcast<f32>(weights[i]), bitcast<f32>(weights[i + 1u]), bitcast<f32>(weights[i + 2u]), bitcast<f32>(weights[i + 3u]));
    }
    let word = weights[t * groups + co0 / 4u];
    return vec4<f32>(signed_lane(word, 0u, 8u), signed_lane(word, 1u, 8u), signed_lane(word, 2u, 8u), signed_lane(word, 3u, 8u)) - params.weight_zero;
}

fn out_channels() -> u32 {
    if params.lora_a_pass != 0u {
        return lora_scales.rank;
    }
    return params.cout;
}

fn side_rank() -> u32 {
    if params.lora_a_pass != 0u {
        return 0u;
    }
    return lora_scales.rank;
}

fn lora_b_value(r: u32, co: u32) -> f32 {
    let stride = padded(params.cout);
    if FLOAT {
        return bitcast<f32>(lora_b[r * stride + co]);
    }
    let i = r * stride + co;
    return (signed_lane(lora_b[i / 4u], i % 4u, 8u) - params.lora_b_zero) * params.lora_b_scale;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let pixel = id.x;
    let group = id.y;
    let cout = out_channels();
    if pixel >= params.out_h * params.out_w || group * 4u >= cout {
        return;
    }
    let oy = pixel / params.out_w;
    let ox = pixel % params.out_w;
    let co0 = group * 4u;
    let cin = params.cin_a + params.cin_b;
    let stride_a = padded(params.cin_a);
    let stride_b = padded(params.cin_b);
    let a_h = params.in_h / params.up_a;
    let a_w = params.in_w / params.up_a;
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < params.k; ky++) {
        let iy = i32(oy * params.stride + ky) - i32(params.pad);
        if iy < 0 || iy >= i32(params.in_h) {
            continue;
        }
        for (var kx = 0u; kx < params.k; kx++) {
            let ix = i32(ox * params.stride + kx) - i32(params.pad);
            if ix < 0 || ix >= i32(params.in_w) {
                continue;
            }
            let tap = (ky * params.k + kx) * cin;
            let base_a = ((u32(iy) / params.up_a) * a_w + u32(ix) / params.up_a) * stride_a;
            for (var ci = 0u; ci < params.cin_a; ci++) {
                let x = act_a(base_a + ci);
                let t = tap + ci;
                acc += x * weights4(co0, t, cout);
            }
            let base_b = (u32(iy) * params.in_w + u32(ix)) * stride_b;
            for (var ci = 0u; ci < params.cin_b; ci++) {
                let x = act_b(base_b + ci);
                let t = tap + params.cin_a + ci;
                acc += x * weights4(co0, t, cout);
            }
        }
    }
    var delta = vec4<f32>(0.0);
    let rank = side_rank();
    let mid_stride = padded(rank);
    for (var r = 0u; r < rank; r++) {
        let m = act_mid(pixel * mid_stride + r) * lora_scales.values[r / 4u][r % 4u];
        delta += m * vec4<f32>(lora_b_value(r, co0), lora_b_value(r, min(co0 + 1u, cout - 1u)), lora_b_value(r, min(co0 + 2u, cout - 1u)), lora_b_value(r, min(co0 + 3u, cout - 1u)));
    }
    var out_base = pixel * padded(cout) + co0;
    if params.lora_a_pass != 0u {
        out_base = pixel * padded(lora_scales.stride) + lora_scales.offset + co0;
    }
    var q = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let co = co0 + j;
        if co >= cout {
            break;
        }
        // The weight scale applies once, after the sum (1 in FLOAT mode): per channel with a
        // bias for the base conv, one per-tensor scale (channel[0]) for a LoRA A pass.
        var y: f32;
        if params.lora_a_pass != 0u {
            y = acc[j] * channel[0];
        } else {
            y = acc[j] * channel[co] + channel[cout + co] + delta[j];
        }
        if params.leaky != 0u {
            y = max(y, y * params.slope);
        }
        q[j] = y;
    }
    if FLOAT {
        for (var j = 0u; j < 4u; j++) {
            output[out_base + j] = bitcast<u32>(q[j]);
        }
        return;
    }
    if ACT_BITS == 16u {
        output[out_base / 2u] = packed_code(q[0], params.out_scale, 0u) | packed_code(q[1], params.out_scale, 1u);
        output[out_base / 2u + 1u] = packed_code(q[2], params.out_scale, 0u) | packed_code(q[3], params.out_scale, 1u);
    } else {
        output[out_base / 4u] = packed_code(q[0], params.out_scale, 0u) | packed_code(q[1], params.out_scale, 1u) | packed_code(q[2], params.out_scale, 2u) | packed_code(q[3], params.out_scale, 3u);
    }
}
