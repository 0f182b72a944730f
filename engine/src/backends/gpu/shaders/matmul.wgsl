// The ceiling the conv kernels are measured against: C = A x B in f32 (row-major, M x K times
// K x N). Each invocation computes a 4 x 4 block of outputs from registers, with no
// workgroup memory: on software Vulkan (lavapipe) barriers cost more than tiling saves, and
// this form is also what the conv kernel does, so it is the fair ceiling. `prism bench` only.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let quads = params.n / 4u;
    let row = (id.x / quads) * 4u;
    let quad = id.x % quads;
    if row >= params.m {
        return;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var i = 0u; i < params.k; i++) {
        let bv = b[i * quads + quad];
        acc0 += a[row * params.k + i] * bv;
        acc1 += a[(row + 1u) * params.k + i] * bv;
        acc2 += a[(row + 2u) * params.k + i] * bv;
        acc3 += a[(row + 3u) * params.k + i] * bv;
    }
    c[row * quads + quad] = acc0;
    c[(row + 1u) * quads + quad] = acc1;
    c[(row + 2u) * quads + quad] = acc2;
    c[(row + 3u) * quads + quad] = acc3;
}
