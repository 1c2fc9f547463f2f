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
//   3. the halting rule (`halting.wgsl`, compiled in front of this file), then w −= lr g, b −= lr 1ᵀδ.
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
var<workgroup> u_first: u32;
var<workgroup> u_last: u32;

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

// Row `row`'s loss term and δ = ∂L/∂z at output z (δ scaled by `scale`: 2/m for the mean
// squared error, 1/m for the cross-entropy).
fn loss_term(row: u32, z: f32, scale: f32) -> vec2<f32> {
    return loss_term_of(targets[row], z, scale);
}

// `loss_term` for a row whose target `t` was read earlier.
fn loss_term_of(t: u32, z: f32, scale: f32) -> vec2<f32> {
    if (LOSS == 0u) {
        let diff = z - bitcast<f32>(t);
        return vec2<f32>(diff * diff, scale * diff);
    }
    let y = f32(t);
    // softplus(z) − y z, from the logit: finite for any finite z.
    return vec2<f32>(max(z, 0.0) - y * z + log(1.0 + exp(-abs(z))), (sigmoid(z) - y) * scale);
}

@compute @workgroup_size(256)
fn glm_epoch(@builtin(local_invocation_index) lid: u32) {
    let p = P.p;
    for (var l = lid; l < p; l += WG) {
        wv[l] = w[l];
    }
    let range = epoch_begin(lid);
    for (var s = range.x; s < range.y; s++) {
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
                let term = loss_term(row, z, scale);
                loss_acc += term.x;
                d = term.y;
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
            u_stop = record_loss(part[0] / m, steps[s].slot, P.halt_mode, P.tol);
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

// Lanes of `glm_epoch_rows` and `glm_epoch_rows4`.
const WG_R: u32 = 64u;
// Features `glm_epoch_rows` holds per invocation.
const MAX_P_R: u32 = 64u;
// Features reduced across the lanes at a time (`red_r`: WG_R × STRIDE_R values).
const STRIDE_R: u32 = 16u;
// Quads of features `glm_epoch_rows4` holds per invocation.
const MAX_Q_R: u32 = 16u;

var<workgroup> red_r: array<f32, 1024>;
var<workgroup> red_q: array<vec4<f32>, 256>;
var<workgroup> red_loss: array<f32, WG_R>;
var<workgroup> red_db: array<f32, WG_R>;
// The weights as quads (`glm_epoch_rows4`: up to 16; `glm_epoch_lanes`: up to 64).
var<workgroup> wq: array<vec4<f32>, 64>;

// Vec4 views of the feature chunks, for `glm_epoch_rows4` (p a multiple of 4: every row
// starts on a vec4).
@group(0) @binding(1) var<storage, read> x0q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x1q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> x2q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> x3q: array<vec4<f32>>;

// Features 4c .. 4c + 4 of row `row`, from the chunk that holds the row.
fn xat4(row: u32, c: u32) -> vec4<f32> {
    let q = P.p / 4u;
    if (!CHUNKED) {
        return x0q[row * q + c];
    }
    let k = row / P.chunk_rows;
    let i = (row - k * P.chunk_rows) * q + c;
    switch k {
        case 0u: { return x0q[i]; }
        case 1u: { return x1q[i]; }
        case 2u: { return x2q[i]; }
        default: { return x3q[i]; }
    }
}

// The start of every variant: the bias, and the step range, through workgroup memory rather than
// straight from P (lavapipe specialises a shader to the uniform values that bound its
// loops and compiles it again whenever they change, which for the range is every
// dispatch; p and the rest stay inlinable, the same for a whole fit: one compilation).
fn epoch_begin(lid: u32) -> vec2<u32> {
    if (lid == 0u) {
        bias = b[0];
        u_first = P.first;
        u_last = P.first + P.n_steps;
    }
    return vec2<u32>(workgroupUniformLoad(&u_first), workgroupUniformLoad(&u_last));
}

// Step s's batch, [start, len], shared; len 0 when the fit has halted.
fn lanes_step(lid: u32, s: u32) -> vec2<u32> {
    if (lid == 0u) {
        u_start = steps[s].start;
        u_len = select(steps[s].len, 0u, halt[0] != 0u);
    }
    return vec2<u32>(workgroupUniformLoad(&u_start), workgroupUniformLoad(&u_len));
}

// The lanes' loss and 1ᵀδ added in lane order: the step's loss recorded and the halting
// rule applied, then (unless the fit stops here) b −= lr 1ᵀδ. 1 when the fit stops.
fn lanes_loss(lid: u32, s: u32, m: f32, lr: f32, loss_acc: f32, db_acc: f32) -> u32 {
    red_loss[lid] = loss_acc;
    red_db[lid] = db_acc;
    workgroupBarrier();
    if (lid == 0u) {
        var loss = 0.0;
        var db = 0.0;
        for (var t = 0u; t < WG_R; t++) {
            loss += red_loss[t];
            db += red_db[t];
        }
        let stop = record_loss(loss / m, steps[s].slot, P.halt_mode, P.tol);
        if (stop == 0u) {
            // Every lane read it for this step's forward pass (before the barrier).
            bias -= lr * db;
        }
        u_stop = stop;
    }
    return workgroupUniformLoad(&u_stop);
}

// `glm_epoch` for p ≤ 64 with the gradient in each invocation's own array: per step,
// lane t walks rows t, t + 64, … of the batch, reads each row ONCE (kept in a private
// array for the second product: z = x·w + b, then g += δ x), and the 64 lanes' gradients,
// losses and 1ᵀδ are added in lane order. Against `glm_epoch`: one read per feature value
// instead of two, and three barriers per 16 features instead of a tile's barriers and a
// tree: the variant for adapters where a scattered read and a barrier cost more than
// arithmetic (a CPU running the shader, as llvmpipe, whose barriers switch between the
// workgroup's SIMD groups). Sums in another fixed order than `glm_epoch`'s: a fit still
// repeats bit for bit.
@compute @workgroup_size(64)
fn glm_epoch_rows(@builtin(local_invocation_index) lid: u32) {
    let p = P.p;
    for (var l = lid; l < p; l += WG_R) {
        wv[l] = w[l];
    }
    let range = epoch_begin(lid);
    for (var s = range.x; s < range.y; s++) {
        let batch = lanes_step(lid, s);
        if (batch.y == 0u) {
            break;
        }
        let lr = steps[s].lr;
        let m = f32(batch.y);
        let scale = select(1.0 / m, 2.0 / m, LOSS == 0u);
        let b0 = bias;
        var g: array<f32, MAX_P_R>;
        var xr: array<f32, MAX_P_R>;
        var loss_acc = 0.0;
        var db_acc = 0.0;
        for (var r = lid; r < batch.y; r += WG_R) {
            let row = order[batch.x + r];
            var z = b0;
            for (var j = 0u; j < p; j++) {
                let v = xat(row, j);
                xr[j] = v;
                z += v * wv[j];
            }
            let term = loss_term(row, z, scale);
            loss_acc += term.x;
            db_acc += term.y;
            for (var j = 0u; j < p; j++) {
                g[j] += term.y * xr[j];
            }
        }
        if (lanes_loss(lid, s, m, lr, loss_acc, db_acc) != 0u) {
            break;
        }
        for (var c0 = 0u; c0 < p; c0 += STRIDE_R) {
            for (var cc = 0u; cc < STRIDE_R; cc++) {
                red_r[lid * STRIDE_R + cc] = g[min(c0 + cc, MAX_P_R - 1u)];
            }
            workgroupBarrier();
            if (lid < STRIDE_R && c0 + lid < p) {
                var total = 0.0;
                for (var t = 0u; t < WG_R; t++) {
                    total += red_r[t * STRIDE_R + lid];
                }
                wv[c0 + lid] -= lr * total;
            }
            workgroupBarrier();
        }
    }
    workgroupBarrier();
    for (var l = lid; l < p; l += WG_R) {
        w[l] = wv[l];
    }
    if (lid == 0u) {
        b[0] = bias;
    }
}

// `glm_epoch_rows` for p a multiple of 4, reading rows four features at a time: on
// llvmpipe a read from a storage buffer (or workgroup memory) whose address differs
// across lanes is a loop over the lanes with a branch each, whatever its width, so a
// quarter of the reads is nearly a quarter of their time. Each lane copies the weights
// into its own registers once a step. The dot product sums four features at a time (an
// order of its own, fixed all the same).
@compute @workgroup_size(64)
fn glm_epoch_rows4(@builtin(local_invocation_index) lid: u32) {
    let q = P.p / 4u;
    load_quads(lid, WG_R);
    let range = epoch_begin(lid);
    for (var s = range.x; s < range.y; s++) {
        let batch = lanes_step(lid, s);
        if (batch.y == 0u) {
            break;
        }
        let lr = steps[s].lr;
        let m = f32(batch.y);
        let scale = select(1.0 / m, 2.0 / m, LOSS == 0u);
        let b0 = bias;
        var wl: array<vec4<f32>, MAX_Q_R>;
        for (var c = 0u; c < q; c++) {
            wl[c] = wq[c];
        }
        var g: array<vec4<f32>, MAX_Q_R>;
        var xr: array<vec4<f32>, MAX_Q_R>;
        var loss_acc = 0.0;
        var db_acc = 0.0;
        for (var r = lid; r < batch.y; r += WG_R) {
            let row = order[batch.x + r];
            var z4 = vec4<f32>(0.0);
            for (var c = 0u; c < q; c++) {
                let v = xat4(row, c);
                xr[c] = v;
                z4 += v * wl[c];
            }
            let term = loss_term(row, b0 + ((z4.x + z4.y) + (z4.z + z4.w)), scale);
            loss_acc += term.x;
            db_acc += term.y;
            for (var c = 0u; c < q; c++) {
                g[c] += term.y * xr[c];
            }
        }
        if (lanes_loss(lid, s, m, lr, loss_acc, db_acc) != 0u) {
            break;
        }
        // Four quads (16 features) across the lanes at a time, added in lane order.
        for (var c0 = 0u; c0 < q; c0 += 4u) {
            for (var cc = 0u; cc < 4u; cc++) {
                red_q[lid * 4u + cc] = g[min(c0 + cc, MAX_Q_R - 1u)];
            }
            workgroupBarrier();
            if (lid < 4u && c0 + lid < q) {
                var total = vec4<f32>(0.0);
                for (var t = 0u; t < WG_R; t++) {
                    total += red_q[t * 4u + lid];
                }
                wq[c0 + lid] -= lr * total;
            }
            workgroupBarrier();
        }
    }
    workgroupBarrier();
    store_quads(lid, WG_R);
}

// The weights into `wq` as quads, invocation `lid` of `count` taking every count-th.
fn load_quads(lid: u32, count: u32) {
    for (var c = lid; c < P.p / 4u; c += count) {
        wq[c] = vec4<f32>(w[4u * c], w[4u * c + 1u], w[4u * c + 2u], w[4u * c + 3u]);
    }
}

// `wq` and the bias back to `w` and `b` at the end of a dispatch.
fn store_quads(lid: u32, count: u32) {
    for (var c = lid; c < P.p / 4u; c += count) {
        let v = wq[c];
        w[4u * c] = v.x;
        w[4u * c + 1u] = v.y;
        w[4u * c + 2u] = v.z;
        w[4u * c + 3u] = v.w;
    }
    if (lid == 0u) {
        b[0] = bias;
    }
}

// Rows `glm_epoch_lanes` holds per invocation (registers), and its scratch for the rows'
// dot products: a tile of T rows × (L + 1) lanes (see `glm_grad_lanes`).
const LANE_ROWS: u32 = 16u;
var<workgroup> dots: array<f32, 4352>;

// `glm_epoch` for a GPU (p ≤ 256, a multiple of 4): per step, a row is read by L
// invocations at once (L the power of two ≥ p / 4), one vec4 each — a warp's loads are
// whole rows, issued together, not one feature after another — and held in registers for
// Xᵀδ, so X is read once. Per tile of T = min(256, 16 · 256 / L) rows of the batch:
//   1. pass k < T · L / 256: invocation (row r, lane c) loads quad c of tile row
//      k · (256 / L) + r and writes its share of the row's dot product to `dots`;
//   2. invocation t adds row t's L shares in lane order: z, the loss term, δ;
//   3. each invocation adds δ · (the quads it holds) to its own vec4 of Xᵀδ.
// Then the row groups' Xᵀδ are added in order, the loss and 1ᵀδ in lane order (sixteen
// runs of sixteen, then the runs), the halting rule applied, and w, b updated.
@compute @workgroup_size(256)
fn glm_epoch_lanes(@builtin(local_invocation_index) lid: u32) {
    let q = P.p / 4u;
    load_quads(lid, WG);
    var lanes = 1u;
    while (lanes < q) {
        lanes *= 2u;
    }
    let stride = lanes + 1u;
    let per_pass = WG / lanes;
    let tile = min(WG, per_pass * LANE_ROWS);
    let passes = tile / per_pass;
    let c = lid % lanes;
    let r = lid / lanes;
    let range = epoch_begin(lid);
    for (var s = range.x; s < range.y; s++) {
        let at = lanes_step(lid, s);
        let start = at.x;
        let len = at.y;
        if (len == 0u) {
            break;
        }
        let lr = steps[s].lr;
        let m = f32(len);
        let scale = select(1.0 / m, 2.0 / m, LOSS == 0u);
        let b0 = bias;
        var g = vec4<f32>(0.0);
        var loss_acc = 0.0;
        var db_acc = 0.0;
        for (var c0 = 0u; c0 < len; c0 += tile) {
            // The target of tile row `lid`, read now so that its latency overlaps the
            // rows' (it is needed only after the barrier).
            var mine = 0u;
            if (lid < tile && c0 + lid < len) {
                mine = targets[order[start + c0 + lid]];
            }
            var held: array<vec4<f32>, LANE_ROWS>;
            for (var k = 0u; k < LANE_ROWS; k++) {
                var v = vec4<f32>(0.0);
                if (k < passes) {
                    let i = c0 + k * per_pass + r;
                    var share = 0.0;
                    if (i < len && c < q) {
                        v = xat4(order[start + i], c);
                        let prod = v * wq[c];
                        share = (prod.x + prod.y) + (prod.z + prod.w);
                    }
                    dots[(k * per_pass + r) * stride + c] = share;
                }
                held[k] = v;
            }
            workgroupBarrier();
            var d = 0.0;
            if (lid < tile) {
                let i = c0 + lid;
                if (i < len) {
                    var z = 0.0;
                    for (var j = 0u; j < lanes; j++) {
                        z += dots[lid * stride + j];
                    }
                    let term = loss_term_of(mine, b0 + z, scale);
                    loss_acc += term.x;
                    d = term.y;
                }
                delta[lid] = d;
            }
            db_acc += d;
            workgroupBarrier();
            for (var k = 0u; k < LANE_ROWS; k++) {
                if (k < passes) {
                    g += delta[k * per_pass + r] * held[k];
                }
            }
            workgroupBarrier();
        }
        red_q[lid] = g;
        part[lid] = loss_acc;
        partb[lid] = db_acc;
        workgroupBarrier();
        if (lid < 16u) {
            var l = 0.0;
            var db = 0.0;
            for (var t = 0u; t < 16u; t++) {
                l += part[lid * 16u + t];
                db += partb[lid * 16u + t];
            }
            gsum[lid] = l;
            gsum[16u + lid] = db;
        }
        var total = vec4<f32>(0.0);
        if (lid < q) {
            for (var j = 0u; j < per_pass; j++) {
                total += red_q[j * lanes + lid];
            }
        }
        workgroupBarrier();
        if (lid == 0u) {
            var loss = 0.0;
            var db = 0.0;
            for (var t = 0u; t < 16u; t++) {
                loss += gsum[t];
                db += gsum[16u + t];
            }
            let stop = record_loss(loss / m, steps[s].slot, P.halt_mode, P.tol);
            if (stop == 0u) {
                bias -= lr * db;
            }
            u_stop = stop;
        }
        if (workgroupUniformLoad(&u_stop) != 0u) {
            break;
        }
        if (lid < q) {
            wq[lid] -= lr * total;
        }
        workgroupBarrier();
    }
    workgroupBarrier();
    store_quads(lid, WG);
}
