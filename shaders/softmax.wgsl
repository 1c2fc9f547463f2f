// Row-wise, numerically stable softmax of a rows × cols matrix; the twin of
// `cpu::softmax::softmax_rows`. One invocation per row: the row maximum is subtracted
// before exponentiating, and the row's sum runs over its columns in order.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn softmax_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let r = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (r >= P.rows) {
        return;
    }
    let base = r * P.cols;
    var mx = z[base];
    for (var j = 1u; j < P.cols; j++) {
        mx = max(mx, z[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < P.cols; j++) {
        let e = exp(z[base + j] - mx);
        out[base + j] = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < P.cols; j++) {
        out[base + j] = out[base + j] * inv;
    }
}
