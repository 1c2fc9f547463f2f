// Parameter updates; the twins of `cpu::update`.
//
// Every update has one shape: binding 1 the parameter (read-write), binding 2 its
// gradient, binding 3 the halt flag the loss kernel sets (see loss.wgsl: once it is set,
// no update runs), bindings 4.. the per-parameter state (none for SGD; a velocity for
// momentum; two moments for Adam), scalars in the uniform. A new optimizer is a new entry
// point (and layout) of this shape.

struct Params {
    len: u32,
    lr: f32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> halt: array<u32>;

// param −= lr · grad.
@compute @workgroup_size(256)
fn sgd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let e = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (e < P.len && halt[0] == 0u) {
        param[e] = param[e] - P.lr * grad[e];
    }
}
