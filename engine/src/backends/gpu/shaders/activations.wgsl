// Shared by the kernels that read or write stored activations (prepended to each at pipeline
// creation; WGSL has no includes). Storage per QuantSim (engine/src/quant.rs): FLOAT = true keeps
// one f32 per u32 word; otherwise ACT_BITS-bit signed codes are packed 32 / ACT_BITS per word.

override FLOAT: bool = false;
override ACT_BITS: u32 = 16u;

// Lane `lane` of `word` as a signed `bits`-bit integer: shift it to the top, then arithmetic-
// shift back (sign extension).
fn signed_lane(word: u32, lane: u32, bits: u32) -> f32 {
    let shifted = bitcast<i32>(word << (32u - bits * (lane + 1u)));
    return f32(shifted >> (32u - bits));
}

// QuantSim's rounding: half away from zero.
fn round_away(x: f32) -> f32 {
    return sign(x) * floor(abs(x) + 0.5);
}

// `value` quantized onto `scale` (saturating) as the bits of lane `lane` of a packed word.
fn packed_code(value: f32, scale: f32, lane: u32) -> u32 {
    let limit = f32(1u << (ACT_BITS - 1u));
    let code = i32(clamp(round_away(value / scale), -limit, limit - 1.0));
    return (bitcast<u32>(code) & ((1u << ACT_BITS) - 1u)) << (lane * ACT_BITS);
}
