// Column sums out[j] = Σᵢ x[i, j] of a rows × cols matrix; the twin of
// `cpu::reduce::col_sums` (the bias gradients 1ᵀ δ).
//
// One workgroup per column: invocation t sums rows t, t + WG, t + 2·WG, … in order, then
// a tree reduction in workgroup memory halves the partial sums. The order is fixed by
// the shape alone (no atomics), so the result repeats bit for bit.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(64)
fn col_sums(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    // Uniform across the workgroup, so the early return keeps barriers uniform.
    let j = wg.y * nwg.x + wg.x;
    if (j >= P.cols) {
        return;
    }
    var acc = 0.0;
    for (var i = lid.x; i < P.rows; i += WG) {
        acc += x[i * P.cols + j];
    }
    part[lid.x] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            part[lid.x] += part[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[j] = part[0];
    }
}
