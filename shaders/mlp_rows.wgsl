// The first pass of a two-layer MLP's fused step (seed 001): everything of a step that is
// row by row, with the rows in workgroup memory, so that no product waits on another
// dispatch. The twin of the program's forward ops, its softmax + CCE and the backward ops
// up to δ¹ (`Spec::program`'s MLP on `cpu::engine`).
//
// One workgroup takes R = P.rows consecutive rows of the batch (r0 = R · workgroup):
//
// | phase | invocations | computes |
// |---|---|---|
// | 0 | all, over R × p | the rows x (gathered) → xs, and → xb for `mlp_grads.wgsl` |
// | 1 | t for hidden units t, t + WG, … | z¹ = x W¹ + b¹ (sum over i ascending, then the bias), a = f(z¹) → hs, a1 |
// | 2 | `lanes` per logit (r, k) | z² = a W² + b²: each lane sums units g, g + lanes, …; the lanes' sums added in lane order |
// | 3 | t < R, a row each | softmax + CCE: the loss term and δ² = w (softmax − onehot) / m → zs, dz2 |
// | 4 | t for hidden units | δ¹ = (δ² W²ᵀ) ⊙ f′(a) (sum over k ascending) → da1 |
//
// and the workgroup's loss terms, added in row order, into lossp[workgroup]. Every sum
// is in an order fixed by the shape: a step repeats bit for bit. Rows are read through
// the gather index (idx[idx_off + r]) or, with use_idx = 0, in order from idx_off;
// weights (use_w = 1) scale a row's loss and δ² as in `loss.wgsl`.
//
// The host picks R so that R·p ≤ XS, R·h ≤ HS, R·k ≤ LS and R ≤ MAX_ROWS
// (`kernels::mlp_rows_per_group`), and lanes · R · k ≤ WG.

struct Params {
    p: u32,
    h: u32,
    k: u32,
    m: u32,
    rows: u32,
    lanes: u32,
    use_idx: u32,
    idx_off: u32,
    use_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The hidden activation: a pipeline variant, fixed when the pipeline is built.
override ACT: u32 = 0u;

const WG: u32 = 256u;
const MAX_ROWS: u32 = 8u;
const XS: u32 = 1024u;
const HS: u32 = 2048u;
const LS: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> w1: array<f32>;
@group(0) @binding(6) var<storage, read> b1: array<f32>;
@group(0) @binding(7) var<storage, read> w2: array<f32>;
@group(0) @binding(8) var<storage, read> b2: array<f32>;
@group(0) @binding(9) var<storage, read_write> xb: array<f32>;
@group(0) @binding(10) var<storage, read_write> a1: array<f32>;
@group(0) @binding(11) var<storage, read_write> dz2: array<f32>;
@group(0) @binding(12) var<storage, read_write> da1: array<f32>;
@group(0) @binding(13) var<storage, read_write> lossp: array<f32>;

var<workgroup> xs: array<f32, XS>;
var<workgroup> hs: array<f32, HS>;
var<workgroup> zs: array<f32, LS>;
var<workgroup> red: array<f32, WG>;
var<workgroup> row_loss: array<f32, MAX_ROWS>;

// `sigmoid` and `stable_tanh` are `activation.wgsl`'s, character for character (a test
// compares them): the fused step applies the separate kernels' arithmetic.
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

fn activate(z: f32) -> f32 {
    switch ACT {
        case 0u: { return sigmoid(z); }
        case 1u: { return stable_tanh(z); }
        default: { return max(z, 0.0); }
    }
}

// f′ from the forward output a, as `activation.wgsl`'s backward.
fn derivative(y: f32) -> f32 {
    switch ACT {
        case 0u: { return y * (1.0 - y); }
        case 1u: { return 1.0 - y * y; }
        default: { return select(0.0, 1.0, y > 0.0); }
    }
}

// Stored row of the batch's row r.
fn source_row(r: u32) -> u32 {
    if (P.use_idx == 1u) {
        return idx[P.idx_off + r];
    }
    return P.idx_off + r;
}

@compute @workgroup_size(256)
fn mlp_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let p = P.p;
    let h = P.h;
    let k = P.k;
    let r0 = wg.x * P.rows;
    let nr = min(P.rows, P.m - r0);

    // Phase 0: the rows, read once.
    for (var e = t; e < nr * p; e += WG) {
        let r = e / p;
        let i = e - r * p;
        let v = x[source_row(r0 + r) * p + i];
        xs[e] = v;
        xb[r0 * p + e] = v;
    }
    workgroupBarrier();

    // Phase 1: the hidden layer. W¹'s value is read once for all R rows.
    for (var j = t; j < h; j += WG) {
        var acc: array<f32, MAX_ROWS>;
        for (var i = 0u; i < p; i++) {
            let wv = w1[i * h + j];
            for (var r = 0u; r < MAX_ROWS; r++) {
                if (r < nr) {
                    acc[r] += xs[r * p + i] * wv;
                }
            }
        }
        let bj = b1[j];
        for (var r = 0u; r < nr; r++) {
            let a = activate(acc[r] + bj);
            hs[r * h + j] = a;
            a1[(r0 + r) * h + j] = a;
        }
    }
    workgroupBarrier();

    // Phase 2: the logits, `lanes` invocations each.
    let lanes = P.lanes;
    let q = t / lanes;
    let g = t - q * lanes;
    var s = 0.0;
    if (q < nr * k) {
        let r = q / k;
        let c = q - r * k;
        for (var j = g; j < h; j += lanes) {
            s += hs[r * h + j] * w2[j * k + c];
        }
    }
    red[t] = s;
    workgroupBarrier();
    if (g == 0u && q < nr * k) {
        var z = 0.0;
        for (var u = 0u; u < lanes; u++) {
            z += red[t + u];
        }
        zs[q] = z + b2[q % k];
    }
    workgroupBarrier();

    // Phase 3: softmax + CCE, a row per invocation (`loss.wgsl`'s arithmetic).
    if (t < nr) {
        let row = r0 + t;
        let src = source_row(row);
        let label = targets[src];
        var wr = 1.0;
        if (P.use_w == 1u) {
            wr = w[src];
        }
        let base = t * k;
        var mx = zs[base];
        for (var c = 1u; c < k; c++) {
            mx = max(mx, zs[base + c]);
        }
        var denom = 0.0;
        for (var c = 0u; c < k; c++) {
            denom += exp(zs[base + c] - mx);
        }
        let lse = mx + log(denom);
        row_loss[t] = wr * (lse - zs[base + min(label, k - 1u)]);
        let inv_m = 1.0 / f32(P.m);
        for (var c = 0u; c < k; c++) {
            let d = wr * (exp(zs[base + c] - lse) - select(0.0, 1.0, c == label)) * inv_m;
            zs[base + c] = d;
            dz2[row * k + c] = d;
        }
    }
    workgroupBarrier();
    if (t == 0u) {
        var l = 0.0;
        for (var r = 0u; r < nr; r++) {
            l += row_loss[r];
        }
        lossp[wg.x] = l;
    }

    // Phase 4: δ¹ = (δ² W²ᵀ) ⊙ f′(a). W²'s value is read once for all R rows.
    for (var j = t; j < h; j += WG) {
        var acc: array<f32, MAX_ROWS>;
        for (var c = 0u; c < k; c++) {
            let wv = w2[j * k + c];
            for (var r = 0u; r < MAX_ROWS; r++) {
                if (r < nr) {
                    acc[r] += zs[r * k + c] * wv;
                }
            }
        }
        for (var r = 0u; r < nr; r++) {
            da1[(r0 + r) * h + j] = acc[r] * derivative(hs[r * h + j]);
        }
    }
}
