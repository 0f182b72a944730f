// Model input: f32 [H, W, 4] (RGB in [-1, 1] with hidden pixels 0, then the mask) quantized at
// the `input` point and pixel-unshuffled x2 into [H/2, W/2, 16], channel order (dy, dx, c).

struct Params {
    out_h: u32,
    out_w: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;

fn value(oy: u32, ox: u32, channel: u32) -> f32 {
    let dy = channel / 8u;
    let dx = (channel / 4u) % 2u;
    let c = channel % 4u;
    return image[((oy * 2u + dy) * params.out_w * 2u + ox * 2u + dx) * 4u + c];
}

// One invocation per output word.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let per_word = select(32u / ACT_BITS, 1u, FLOAT);
    let words_per_pixel = 16u / per_word;
    let word = id.x;
    if word >= params.out_h * params.out_w * words_per_pixel {
        return;
    }
    let pixel = word / words_per_pixel;
    let first = (word % words_per_pixel) * per_word;
    let oy = pixel / params.out_w;
    let ox = pixel % params.out_w;
    if FLOAT {
        output[word] = bitcast<u32>(value(oy, ox, first));
        return;
    }
    var packed = 0u;
    for (var lane = 0u; lane < per_word; lane++) {
        packed |= packed_code(value(oy, ox, first + lane), params.scale, lane);
    }
    output[word] = packed;
}
