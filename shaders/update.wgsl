// Parameter updates; the twins of `cpu::update::apply`, one entry point per rule.
//
// Every update has one shape: binding 1 the parameter (read-write), binding 2 its
// gradient, binding 3 the halt flag the loss kernel sets (see loss.wgsl: once it is set,
// no update runs), bindings 4 and 5 the per-parameter state (a velocity for momentum;
// the two moments for Adam; the squared-gradient sum for AdaGrad; unused by SGD), the
// step's scalars in the uniform. The order of operations is the CPU twin's:
//   g = grad + l2·θ;  the rule's step;  with l1 > 0, θ = sign(θ)·max(|θ| − lr·l1, 0).

struct Params {
    len: u32,
    lr: f32,
    l2: f32,
    l1: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    c1: f32,
    c2: f32,
    nesterov: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> halt: array<u32>;
@group(0) @binding(4) var<storage, read_write> s1: array<f32>;
@group(0) @binding(5) var<storage, read_write> s2: array<f32>;

// The element this invocation updates, or none (past the end, or training halted).
fn element(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> i32 {
    let e = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (e < P.len && halt[0] == 0u) {
        return i32(e);
    }
    return -1;
}

// The L1 truncation: a weight that would cross zero stops at zero.
fn truncate(theta: f32) -> f32 {
    let t = P.lr * P.l1;
    if (t <= 0.0) {
        return theta;
    }
    if (theta > t) {
        return theta - t;
    }
    if (theta < -t) {
        return theta + t;
    }
    return 0.0;
}

// θ −= lr·g.
@compute @workgroup_size(256)
fn sgd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = element(wg, nwg, lid);
    if (i < 0) {
        return;
    }
    let theta = param[i];
    let g = grad[i] + P.l2 * theta;
    param[i] = truncate(theta - P.lr * g);
}

// v = μv + g; θ −= lr·v, or lr·(g + μv) with Nesterov.
@compute @workgroup_size(256)
fn momentum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = element(wg, nwg, lid);
    if (i < 0) {
        return;
    }
    let theta = param[i];
    let g = grad[i] + P.l2 * theta;
    let v = P.beta1 * s1[i] + g;
    s1[i] = v;
    var d = v;
    if (P.nesterov != 0u) {
        d = g + P.beta1 * v;
    }
    param[i] = truncate(theta - P.lr * d);
}

// m = β₁m + (1 − β₁)g; v = β₂v + (1 − β₂)g²; θ −= lr·(m·c₁)/(√(v·c₂) + ε).
@compute @workgroup_size(256)
fn adam(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = element(wg, nwg, lid);
    if (i < 0) {
        return;
    }
    let theta = param[i];
    let g = grad[i] + P.l2 * theta;
    let m = P.beta1 * s1[i] + (1.0 - P.beta1) * g;
    let v = P.beta2 * s2[i] + (1.0 - P.beta2) * g * g;
    s1[i] = m;
    s2[i] = v;
    param[i] = truncate(theta - P.lr * (m * P.c1) / (sqrt(v * P.c2) + P.eps));
}

// s = s + g²; θ −= lr·g/(√s + ε).
@compute @workgroup_size(256)
fn adagrad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = element(wg, nwg, lid);
    if (i < 0) {
        return;
    }
    let theta = param[i];
    let g = grad[i] + P.l2 * theta;
    let acc = s1[i] + g * g;
    s1[i] = acc;
    param[i] = truncate(theta - P.lr * g / (sqrt(acc) + P.eps));
}
