// Element-wise activations and their derivatives from the forward output a = f(z);
// the twins of `cpu::activation::{activate, activate_backward}`. The arithmetic (`act`,
// `act_derivative`, the override ACT) is `activation_math.wgsl`'s, compiled in front.

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid.x;
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
    dst[e] = act(src[e]);
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
    dst[e] = dst[e] * act_derivative(src[e]);
}
