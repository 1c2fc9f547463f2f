// Many SGD steps of linear or logistic regression in ONE dispatch: one workgroup walks
// steps first .. first + n_steps of a list of mini-batches, the weights held in workgroup
// memory, so that a step costs no launch of its own. The per-op path records 7 dispatches
// per step (forward 2, loss 1, backward 2, updates 2). The host gives each dispatch 16
// steps (`kernels::GLM_STEPS_PER_DISPATCH`: llvmpipe goes wrong past a few hundred) and a
// submission an epoch's dispatches. For p ≤ MAX_P, plain SGD, no penalty, unweighted
// rows, resident data.
//
// Per step s (steps[s]: the batch's first position in the epoch order, its rows, the
// learning rate, its loss slot):
//   1. invocation t takes rows t, t + WG, … of the batch (through `order`): z = x·w + b,
//      its loss term and δ = ∂L/∂z (MSE: 2/m (z − y); sigmoid + BCE: (σ(z) − y)/m), the
//      twins of `loss.wgsl`;
//   2. the gradient Xᵀδ: for p ≤ WG, WG / p groups of p invocations each sum a share of
//      the chunk's rows for one feature, and the shares are added in group order; for
//      larger p, invocation t sums all rows for features t, t + WG, …; the loss and 1ᵀδ
//      are tree-reduced;
//   3. the halting rule of `loss.wgsl` (same halt[] layout), then w −= lr g, b −= lr 1ᵀδ.
// Every sum runs in a fixed order and no atomics are used: a fit repeats bit for bit.
// A halted fit (halt[0] = 1, set here or earlier) applies no further step.

struct Params {
    p: u32,
    // Rows per feature chunk (x0 … x3: a resident X beyond one storage binding).
    chunk_rows: u32,
    // Steps first .. first + n_steps of the list.
    first: u32,
    n_steps: u32,
    halt_mode: u32,
    tol: f32,
}

struct Step {
    start: u32,
    len: u32,
    lr: f32,
    slot: u32,
}

const WG: u32 = 256u;
const MAX_P: u32 = 1024u;
// Features per invocation.
const PER: u32 = 4u;

// 0: mean squared error on real targets (f32 bits); 1: sigmoid + BCE on labels {0, 1}.
override LOSS: u32 = 0u;
// Whether X may span several chunk buffers (a pipeline variant; see `matmul.wgsl`).
override CHUNKED: bool = true;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read> x1: array<f32>;
@group(0) @binding(3) var<storage, read> x2: array<f32>;
@group(0) @binding(4) var<storage, read> x3: array<f32>;
@group(0) @binding(5) var<storage, read> targets: array<u32>;
@group(0) @binding(6) var<storage, read> order: array<u32>;
@group(0) @binding(7) var<storage, read> steps: array<Step>;
@group(0) @binding(8) var<storage, read_write> w: array<f32>;
@group(0) @binding(9) var<storage, read_write> b: array<f32>;
@group(0) @binding(10) var<storage, read_write> losses: array<f32>;
@group(0) @binding(11) var<storage, read_write> halt: array<u32>;

var<workgroup> wv: array<f32, MAX_P>;
var<workgroup> bias: f32;
var<workgroup> delta: array<f32, WG>;
var<workgroup> rowid: array<u32, WG>;
var<workgroup> part: array<f32, WG>;
var<workgroup> partb: array<f32, WG>;
var<workgroup> gsum: array<f32, WG>;
// A step's descriptor and the stop decision, shared so that loop bounds are uniform.
var<workgroup> u_start: u32;
var<workgroup> u_len: u32;
var<workgroup> u_stop: u32;

// Feature l of row `row`, from the chunk that holds the row.
fn xat(row: u32, l: u32) -> f32 {
    if (!CHUNKED) {
        return x0[row * P.p + l];
    }
    let c = row / P.chunk_rows;
    let i = (row - c * P.chunk_rows) * P.p + l;
    switch c {
        case 0u: { return x0[i]; }
        case 1u: { return x1[i]; }
        case 2u: { return x2[i]; }
        default: { return x3[i]; }
    }
}

fn sigmoid(v: f32) -> f32 {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

@compute @workgroup_size(256)
fn glm_epoch(@builtin(local_invocation_index) lid: u32) {
    let p = P.p;
    for (var l = lid; l < p; l += WG) {
        wv[l] = w[l];
    }
    if (lid == 0u) {
        bias = b[0];
    }
    workgroupBarrier();
    for (var s = P.first; s < P.first + P.n_steps; s++) {
        if (lid == 0u) {
            u_start = steps[s].start;
            u_len = steps[s].len;
            u_stop = halt[0];
        }
        if (workgroupUniformLoad(&u_stop) != 0u) {
            break;
        }
        let start = workgroupUniformLoad(&u_start);
        let len = workgroupUniformLoad(&u_len);
        let lr = steps[s].lr;
        let m = f32(len);
        let scale = select(1.0 / m, 2.0 / m, LOSS == 0u);
        let b0 = bias;
        var g = array<f32, PER>(0.0, 0.0, 0.0, 0.0);
        var loss_acc = 0.0;
        var db_acc = 0.0;
        for (var c0 = 0u; c0 < len; c0 += WG) {
            let r = c0 + lid;
            var d = 0.0;
            var row = 0u;
            if (r < len) {
                row = order[start + r];
                var z = b0;
                for (var l = 0u; l < p; l++) {
                    z += xat(row, l) * wv[l];
                }
                let t = targets[row];
                if (LOSS == 0u) {
                    let diff = z - bitcast<f32>(t);
                    loss_acc += diff * diff;
                    d = scale * diff;
                } else {
                    let y = f32(t);
                    // softplus(z) − y z, from the logit: finite for any finite z.
                    loss_acc += max(z, 0.0) - y * z + log(1.0 + exp(-abs(z)));
                    d = (sigmoid(z) - y) * scale;
                }
            }
            delta[lid] = d;
            rowid[lid] = row;
            db_acc += d;
            workgroupBarrier();
            let rows = min(WG, len - c0);
            if (p <= WG) {
                // WG / p groups of p invocations: invocation (group k, feature l) sums the
                // chunk's rows k, k + groups, …; the groups' sums are then added in order.
                let groups = WG / p;
                let l = lid % p;
                let k = lid / p;
                var acc = 0.0;
                if (k < groups) {
                    for (var i = k; i < rows; i += groups) {
                        acc += delta[i] * xat(rowid[i], l);
                    }
                }
                gsum[lid] = acc;
                workgroupBarrier();
                if (lid < p) {
                    var total = 0.0;
                    for (var j = 0u; j < groups; j++) {
                        total += gsum[j * p + lid];
                    }
                    g[0] += total;
                }
            } else {
                for (var i = 0u; i < rows; i++) {
                    let di = delta[i];
                    for (var q = 0u; q < PER; q++) {
                        let l = lid + q * WG;
                        if (l < p) {
                            g[q] += di * xat(rowid[i], l);
                        }
                    }
                }
            }
            workgroupBarrier();
        }
        part[lid] = loss_acc;
        partb[lid] = db_acc;
        workgroupBarrier();
        for (var h = WG / 2u; h > 0u; h >>= 1u) {
            if (lid < h) {
                part[lid] += part[lid + h];
                partb[lid] += partb[lid + h];
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            let loss = part[0] / m;
            let slot = steps[s].slot;
            losses[slot] = loss;
            var stop = 0u;
            if (P.halt_mode != 0u) {
                let bits = bitcast<u32>(loss);
                // Exponent all ones: ±inf or NaN (a bit test, immune to NaN folding).
                let non_finite = (bits & 0x7f800000u) == 0x7f800000u;
                let converged = P.halt_mode == 2u && halt[3] == 1u
                    && abs(loss - bitcast<f32>(halt[2])) < P.tol;
                if (non_finite || converged) {
                    halt[0] = 1u;
                    halt[1] = slot;
                    stop = 1u;
                }
                halt[2] = bits;
                halt[3] = 1u;
            }
            u_stop = stop;
        }
        if (workgroupUniformLoad(&u_stop) != 0u) {
            break;
        }
        for (var q = 0u; q < PER; q++) {
            let l = lid + q * WG;
            if (l < p) {
                wv[l] -= lr * g[q];
            }
        }
        if (lid == 0u) {
            bias -= lr * partb[0];
        }
        workgroupBarrier();
    }
    workgroupBarrier();
    for (var l = lid; l < p; l += WG) {
        w[l] = wv[l];
    }
    if (lid == 0u) {
        b[0] = bias;
    }
}
