// Column sums out[j] = Σᵢ x[i, j] of a rows × cols matrix; the twin of
// `cpu::reduce::col_sums` (the bias gradients 1ᵀ δ).
//
// One workgroup per column: invocation t sums rows t, t + WG, t + 2·WG, … in order, then
// a tree reduction in workgroup memory halves the partial sums. The order is fixed by
// the shape alone (no atomics), so the result repeats bit for bit.
//
// Split sums (`seg_len` > 0): the rows are cut into segments of `seg_len`, one per z of
// the grid, and segment s writes its column sums to out[s · cols ..]; a second pass of
// this kernel over those rows adds them in order. A long column (a full batch's bias
// gradient over 10⁶ rows) then spreads over many workgroups instead of one.

struct Params {
    rows: u32,
    cols: u32,
    seg_len: u32,
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
    var first = 0u;
    var end = P.rows;
    var out_row = 0u;
    if (P.seg_len > 0u) {
        first = wg.z * P.seg_len;
        end = min(first + P.seg_len, P.rows);
        out_row = wg.z;
    }
    var acc = 0.0;
    for (var i = first + lid.x; i < end; i += WG) {
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
        out[out_row * P.cols + j] = part[0];
    }
}
