// The updates of up to four parameter tensors in one dispatch: an MLP's four in one
// instead of four (the rules themselves in update_rules.wgsl, compiled in front of this
// file; update.wgsl is the one-tensor form, for devices that allow fewer storage
// bindings). The grid's x runs over 256-value blocks of the tensors laid end to end, each
// tensor starting on a block of its own, so a workgroup belongs to one tensor and its
// choice of bindings is uniform.
//
// Bindings: 1–4 the parameters (read-write), 5–8 their gradients, 9 the halt flag the
// loss kernel sets (once it is set no update runs), 10–13 and 14–17 the two state
// tensors of each parameter. A tensor past the dispatch's count has length 0 and its
// bindings are stand-ins never read.

struct Params {
    len0: u32,
    len1: u32,
    len2: u32,
    len3: u32,
    // The first block of tensors 1, 2, 3 (tensor 0 starts at block 0).
    start1: u32,
    start2: u32,
    start3: u32,
    // Bit t set: tensor t is a bias (takes the b_ scalars).
    bias: u32,
    nesterov: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    w_lr: f32,
    w_l2: f32,
    w_l1: f32,
    w_beta1: f32,
    w_beta2: f32,
    w_eps: f32,
    w_c1: f32,
    w_c2: f32,
    b_lr: f32,
    b_l2: f32,
    b_l1: f32,
    b_beta1: f32,
    b_beta2: f32,
    b_eps: f32,
    b_c1: f32,
    b_c2: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> p0: array<f32>;
@group(0) @binding(2) var<storage, read_write> p1: array<f32>;
@group(0) @binding(3) var<storage, read_write> p2: array<f32>;
@group(0) @binding(4) var<storage, read_write> p3: array<f32>;
@group(0) @binding(5) var<storage, read> g0: array<f32>;
@group(0) @binding(6) var<storage, read> g1: array<f32>;
@group(0) @binding(7) var<storage, read> g2: array<f32>;
@group(0) @binding(8) var<storage, read> g3: array<f32>;
@group(0) @binding(9) var<storage, read> halt: array<u32>;
@group(0) @binding(10) var<storage, read_write> a0: array<f32>;
@group(0) @binding(11) var<storage, read_write> a1: array<f32>;
@group(0) @binding(12) var<storage, read_write> a2: array<f32>;
@group(0) @binding(13) var<storage, read_write> a3: array<f32>;
@group(0) @binding(14) var<storage, read_write> b0: array<f32>;
@group(0) @binding(15) var<storage, read_write> b1: array<f32>;
@group(0) @binding(16) var<storage, read_write> b2: array<f32>;
@group(0) @binding(17) var<storage, read_write> b3: array<f32>;

// The tensor (x) and the element (y) this invocation updates; y = -1 for none (past
// the tensor's end, or training halted).
fn locate(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> vec2<i32> {
    let block = wg.y * nwg.x + wg.x;
    let t = u32(block >= P.start1) + u32(block >= P.start2) + u32(block >= P.start3);
    let starts = vec4<u32>(0u, P.start1, P.start2, P.start3);
    let lens = vec4<u32>(P.len0, P.len1, P.len2, P.len3);
    let e = (block - starts[t]) * WG + lid.x;
    if (e < lens[t] && halt[0] == 0u) {
        return vec2<i32>(i32(t), i32(e));
    }
    return vec2<i32>(i32(t), -1);
}

fn scal(t: i32) -> Scal {
    if ((P.bias & (1u << u32(t))) != 0u) {
        return Scal(P.b_lr, P.b_l2, P.b_l1, P.b_beta1, P.b_beta2, P.b_eps, P.b_c1, P.b_c2);
    }
    return Scal(P.w_lr, P.w_l2, P.w_l1, P.w_beta1, P.w_beta2, P.w_eps, P.w_c1, P.w_c2);
}

// (θ, gradient, state 1, state 2) of element e of tensor t, the first `n` state values
// read (the rest 0).
fn load(t: i32, e: i32, n: u32) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    switch t {
        case 0: {
            x = vec4<f32>(p0[e], g0[e], 0.0, 0.0);
            if (n > 0u) {
                x.z = a0[e];
            }
            if (n > 1u) {
                x.w = b0[e];
            }
        }
        case 1: {
            x = vec4<f32>(p1[e], g1[e], 0.0, 0.0);
            if (n > 0u) {
                x.z = a1[e];
            }
            if (n > 1u) {
                x.w = b1[e];
            }
        }
        case 2: {
            x = vec4<f32>(p2[e], g2[e], 0.0, 0.0);
            if (n > 0u) {
                x.z = a2[e];
            }
            if (n > 1u) {
                x.w = b2[e];
            }
        }
        default: {
            x = vec4<f32>(p3[e], g3[e], 0.0, 0.0);
            if (n > 0u) {
                x.z = a3[e];
            }
            if (n > 1u) {
                x.w = b3[e];
            }
        }
    }
    return x;
}

// Stores a rule's result r = (θ, state 1, state 2), the first `n` state values of it.
fn store(t: i32, e: i32, r: vec3<f32>, n: u32) {
    switch t {
        case 0: {
            p0[e] = r.x;
            if (n > 0u) {
                a0[e] = r.y;
            }
            if (n > 1u) {
                b0[e] = r.z;
            }
        }
        case 1: {
            p1[e] = r.x;
            if (n > 0u) {
                a1[e] = r.y;
            }
            if (n > 1u) {
                b1[e] = r.z;
            }
        }
        case 2: {
            p2[e] = r.x;
            if (n > 0u) {
                a2[e] = r.y;
            }
            if (n > 1u) {
                b2[e] = r.z;
            }
        }
        default: {
            p3[e] = r.x;
            if (n > 0u) {
                a3[e] = r.y;
            }
            if (n > 1u) {
                b3[e] = r.z;
            }
        }
    }
}

@compute @workgroup_size(256)
fn sgd_all(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let at = locate(wg, nwg, lid);
    if (at.y < 0) {
        return;
    }
    store(at.x, at.y, sgd_rule(load(at.x, at.y, 0u), scal(at.x)), 0u);
}

@compute @workgroup_size(256)
fn momentum_all(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let at = locate(wg, nwg, lid);
    if (at.y < 0) {
        return;
    }
    let x = load(at.x, at.y, 1u);
    store(at.x, at.y, momentum_rule(x, scal(at.x), P.nesterov != 0u), 1u);
}

@compute @workgroup_size(256)
fn adam_all(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let at = locate(wg, nwg, lid);
    if (at.y < 0) {
        return;
    }
    store(at.x, at.y, adam_rule(load(at.x, at.y, 2u), scal(at.x)), 2u);
}

@compute @workgroup_size(256)
fn adagrad_all(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let at = locate(wg, nwg, lid);
    if (at.y < 0) {
        return;
    }
    store(at.x, at.y, adagrad_rule(load(at.x, at.y, 1u), scal(at.x)), 1u);
}
