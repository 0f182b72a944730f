// Model output: the head's [h, w, 12] activations dequantized and pixel-shuffled x2 into the f32
// RGB residual [2h, 2w, 3] (the inverse of unshuffle.wgsl's channel order).

struct Params {
    in_h: u32,
    in_w: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> head: array<u32>;
@group(0) @binding(2) var<storage, read_write> residual: array<f32>;

// One invocation per residual value.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let index = id.x;
    let width = params.in_w * 2u;
    if index >= params.in_h * 2u * width * 3u {
        return;
    }
    let c = index % 3u;
    let x = (index / 3u) % width;
    let y = index / 3u / width;
    let channel = ((y % 2u) * 2u + x % 2u) * 3u + c;
    // The head has 12 channels: already a multiple of 4, so no padding.
    let element = ((y / 2u) * params.in_w + x / 2u) * 12u + channel;
    if FLOAT {
        residual[index] = bitcast<f32>(head[element]);
        return;
    }
    let per_word = 32u / ACT_BITS;
    residual[index] = signed_lane(head[element / per_word], element % per_word, ACT_BITS) * params.scale;
}
