// Element-wise activations and their derivatives from the forward output a = f(z);
// the twins of `cpu::activation::{activate, activate_backward}`.
//
// | ACT | f(z) | f′ from a |
// |---|---|---|
// | 0 sigmoid | 1 / (1 + e^−z), stable | a (1 − a) |
// | 1 tanh | tanh z | 1 − a² |
// | 2 relu | max(z, 0) | 1 if a > 0 else 0 |

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The activation: a pipeline variant, fixed when the pipeline is built.
override ACT: u32 = 0u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

// Never evaluates e^x for large positive x, as `cpu::activation::sigmoid`.
fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// tanh through e^(−2|z|) ≤ 1, so it cannot overflow for large |z|.
fn stable_tanh(z: f32) -> f32 {
    let e = exp(-2.0 * abs(z));
    return sign(z) * (1.0 - e) / (1.0 + e);
}

// dst = f(src).
@compute @workgroup_size(256)
fn activate(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let e = flat(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let v = src[e];
    var out: f32;
    switch ACT {
        case 0u: { out = sigmoid(v); }
        case 1u: { out = stable_tanh(v); }
        default: { out = max(v, 0.0); }
    }
    dst[e] = out;
}

// dst (the gradient) *= f′ evaluated from src (the forward output a).
@compute @workgroup_size(256)
fn activate_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let e = flat(wg, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let y = src[e];
    var d: f32;
    switch ACT {
        case 0u: { d = y * (1.0 - y); }
        case 1u: { d = 1.0 - y * y; }
        default: { d = select(0.0, 1.0, y > 0.0); }
    }
    dst[e] = dst[e] * d;
}
