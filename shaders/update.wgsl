// Parameter updates, one tensor a dispatch (update_all.wgsl: up to four); one entry point
// per rule, the rules themselves in update_rules.wgsl (compiled in front of this file).
//
// Every update has one shape: binding 1 the parameter (read-write), binding 2 its
// gradient, binding 3 the halt flag the loss kernel sets (see loss.wgsl: once it is set,
// no update runs), bindings 4 and 5 the per-parameter state (a velocity for momentum;
// the two moments for Adam; the squared-gradient sum for AdaGrad; unused by SGD), the
// step's scalars in the uniform.

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

fn scal() -> Scal {
    return Scal(P.lr, P.l2, P.l1, P.beta1, P.beta2, P.eps, P.c1, P.c2);
}

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
    param[i] = sgd_rule(vec4<f32>(param[i], grad[i], 0.0, 0.0), scal()).x;
}

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
    let r = momentum_rule(vec4<f32>(param[i], grad[i], s1[i], 0.0), scal(), P.nesterov != 0u);
    param[i] = r.x;
    s1[i] = r.y;
}

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
    let r = adam_rule(vec4<f32>(param[i], grad[i], s1[i], s2[i]), scal());
    param[i] = r.x;
    s1[i] = r.y;
    s2[i] = r.z;
}

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
    let r = adagrad_rule(vec4<f32>(param[i], grad[i], s1[i], 0.0), scal());
    param[i] = r.x;
    s1[i] = r.y;
}
