// z[i, j] += bias[j] over a rows × cols matrix; the twin of `cpu::bias::bias_add`.
// One invocation per element; long matrices use a 2-D grid (see `flat`).

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> z: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;

// Linear element index of a 2-D grid of 1-D workgroups.
fn flat(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid.x;
}

@compute @workgroup_size(256)
fn bias_add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let e = flat(wg, nwg, lid);
    if (e < P.rows * P.cols) {
        z[e] = z[e] + bias[e % P.cols];
    }
}
