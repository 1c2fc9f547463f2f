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
// weights (use_w = 1) scale a row's loss and δ² as in `loss.wgsl`. The activation
// (`act`, `act_derivative`, ACT) is `activation_math.wgsl`'s, compiled in front.
//
// The host picks R so that R·p ≤ XS, R·h ≤ HS, R·k ≤ LS and R ≤ MAX_ROWS = 4
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

const WG: u32 = 256u;
const MAX_ROWS: u32 = 4u;
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

// Stored row of the batch's row r.
fn source_row(r: u32) -> u32 {
    if (P.use_idx == 1u) {
        return idx[P.idx_off + r];
    }
    return P.idx_off + r;
}

// Row r's offset in a [row][col] array of `cols` columns, clamped to the workgroup's
// rows: the four accumulators always run, the ones past the last row on its values
// (never stored).
fn row_at(r: u32, nr: u32, cols: u32) -> u32 {
    return min(r, nr - 1u) * cols;
}

// Feature i of the four rows at offsets x0 … x3 of xs.
fn xq(x0: u32, x1: u32, x2: u32, x3: u32, i: u32) -> vec4<f32> {
    return vec4<f32>(xs[x0 + i], xs[x1 + i], xs[x2 + i], xs[x3 + i]);
}

// a[r, j] · W²[j, c], the row's activations from offset hr of hs.
fn logit_term(hr: u32, k: u32, c: u32, j: u32) -> f32 {
    return hs[hr + j] * w2[j * k + c];
}

// Component r of v, by selects (no indexed register).
fn lane(v: vec4<f32>, r: u32) -> f32 {
    return select(select(v.x, v.y, r == 1u), select(v.z, v.w, r == 3u), r >= 2u);
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

    // Phase 1: the hidden layer, four rows in four accumulators; W¹'s values read eight
    // at a time before their multiply-adds, which keep i's order.
    let x0 = row_at(0u, nr, p);
    let x1 = row_at(1u, nr, p);
    let x2 = row_at(2u, nr, p);
    let x3 = row_at(3u, nr, p);
    for (var j = t; j < h; j += WG) {
        var acc = vec4<f32>(0.0);
        var i = 0u;
        for (; i + 8u <= p; i += 8u) {
            let wa = w1[i * h + j];
            let wb = w1[(i + 1u) * h + j];
            let wc = w1[(i + 2u) * h + j];
            let wd = w1[(i + 3u) * h + j];
            let we = w1[(i + 4u) * h + j];
            let wf = w1[(i + 5u) * h + j];
            let wg = w1[(i + 6u) * h + j];
            let wh = w1[(i + 7u) * h + j];
            acc += xq(x0, x1, x2, x3, i) * wa;
            acc += xq(x0, x1, x2, x3, i + 1u) * wb;
            acc += xq(x0, x1, x2, x3, i + 2u) * wc;
            acc += xq(x0, x1, x2, x3, i + 3u) * wd;
            acc += xq(x0, x1, x2, x3, i + 4u) * we;
            acc += xq(x0, x1, x2, x3, i + 5u) * wf;
            acc += xq(x0, x1, x2, x3, i + 6u) * wg;
            acc += xq(x0, x1, x2, x3, i + 7u) * wh;
        }
        for (; i < p; i++) {
            acc += xq(x0, x1, x2, x3, i) * w1[i * h + j];
        }
        let bj = b1[j];
        for (var r = 0u; r < nr; r++) {
            let a = act(lane(acc, r) + bj);
            hs[r * h + j] = a;
            a1[(r0 + r) * h + j] = a;
        }
    }
    workgroupBarrier();

    // Phase 2: the logits, `lanes` invocations each; W²'s values and the activations
    // read eight at a time before their adds, which keep j's order.
    let lanes = P.lanes;
    let q = t / lanes;
    let g = t - q * lanes;
    var s = 0.0;
    if (q < nr * k) {
        let r = q / k;
        let c = q - r * k;
        let hr = r * h;
        var j = g;
        for (; j + 7u * lanes < h; j += 8u * lanes) {
            let pa = logit_term(hr, k, c, j);
            let pb = logit_term(hr, k, c, j + lanes);
            let pc = logit_term(hr, k, c, j + 2u * lanes);
            let pd = logit_term(hr, k, c, j + 3u * lanes);
            let pe = logit_term(hr, k, c, j + 4u * lanes);
            let pf = logit_term(hr, k, c, j + 5u * lanes);
            let pg = logit_term(hr, k, c, j + 6u * lanes);
            let ph = logit_term(hr, k, c, j + 7u * lanes);
            s += pa;
            s += pb;
            s += pc;
            s += pd;
            s += pe;
            s += pf;
            s += pg;
            s += ph;
        }
        for (; j < h; j += lanes) {
            s += logit_term(hr, k, c, j);
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

    // Phase 4: δ¹ = (δ² W²ᵀ) ⊙ f′(a), four rows in four accumulators; W²'s row read
    // once for them, four values at a time before their multiply-adds (k's order).
    let z0 = row_at(0u, nr, k);
    let z1 = row_at(1u, nr, k);
    let z2 = row_at(2u, nr, k);
    let z3 = row_at(3u, nr, k);
    for (var j = t; j < h; j += WG) {
        var acc = vec4<f32>(0.0);
        let wr = j * k;
        var c = 0u;
        for (; c + 4u <= k; c += 4u) {
            let wa = w2[wr + c];
            let wb = w2[wr + c + 1u];
            let wc = w2[wr + c + 2u];
            let wd = w2[wr + c + 3u];
            acc += vec4<f32>(zs[z0 + c], zs[z1 + c], zs[z2 + c], zs[z3 + c]) * wa;
            acc += vec4<f32>(zs[z0 + c + 1u], zs[z1 + c + 1u], zs[z2 + c + 1u], zs[z3 + c + 1u]) * wb;
            acc += vec4<f32>(zs[z0 + c + 2u], zs[z1 + c + 2u], zs[z2 + c + 2u], zs[z3 + c + 2u]) * wc;
            acc += vec4<f32>(zs[z0 + c + 3u], zs[z1 + c + 3u], zs[z2 + c + 3u], zs[z3 + c + 3u]) * wd;
        }
        for (; c < k; c++) {
            acc += vec4<f32>(zs[z0 + c], zs[z1 + c], zs[z2 + c], zs[z3 + c]) * w2[wr + c];
        }
        for (var r = 0u; r < nr; r++) {
            da1[(r0 + r) * h + j] = lane(acc, r) * act_derivative(hs[r * h + j]);
        }
    }
}
