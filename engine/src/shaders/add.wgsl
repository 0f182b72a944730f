// Residual add of two activation tensors of the same shape, requantized onto the `<block>.add`
// scale (QuantSim semantics; FLOAT = true adds f32 words).

override FLOAT: bool = false;
override ACT_BITS: u32 = 16u;

struct Params {
    elements: u32,
    scale_a: f32,
    scale_b: f32,
    out_scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input_a: array<u32>;
@group(0) @binding(2) var<storage, read> input_b: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;

fn signed_lane(word: u32, lane: u32, bits: u32) -> f32 {
    let shifted = bitcast<i32>(word << (32u - bits * (lane + 1u)));
    return f32(shifted >> (32u - bits));
}

fn round_away(x: f32) -> f32 {
    return sign(x) * floor(abs(x) + 0.5);
}

// One invocation per output word.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let per_word = select(32u / ACT_BITS, 1u, FLOAT);
    let word = id.x + id.y * 65535u * 64u;
    if word * per_word >= params.elements {
        return;
    }
    if FLOAT {
        output[word] = bitcast<u32>(bitcast<f32>(input_a[word]) + bitcast<f32>(input_b[word]));
        return;
    }
    let limit = f32(1u << (ACT_BITS - 1u));
    let mask = (1u << ACT_BITS) - 1u;
    var packed = 0u;
    for (var lane = 0u; lane < per_word; lane++) {
        let y = signed_lane(input_a[word], lane, ACT_BITS) * params.scale_a + signed_lane(input_b[word], lane, ACT_BITS) * params.scale_b;
        let q = i32(clamp(round_away(y / params.out_scale), -limit, limit - 1.0));
        packed |= (bitcast<u32>(q) & mask) << (lane * ACT_BITS);
    }
    output[word] = packed;
}
