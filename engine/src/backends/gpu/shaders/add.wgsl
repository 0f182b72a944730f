// Residual add of two activation tensors of the same shape, requantized onto the `<block>.add`
// scale (QuantSim semantics; FLOAT = true adds f32 words).

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
    var packed = 0u;
    for (var lane = 0u; lane < per_word; lane++) {
        let y = signed_lane(input_a[word], lane, ACT_BITS) * params.scale_a + signed_lane(input_b[word], lane, ACT_BITS) * params.scale_b;
        packed |= packed_code(y, params.out_scale, lane);
    }
    output[word] = packed;
}
