// Many SGD steps of a small two-layer MLP (seed 001's network: hidden activation ACT,
// softmax output, categorical cross-entropy) in ONE dispatch: one workgroup walks steps
// first .. first + n_steps of a list of mini-batches with every parameter and its
// gradient in workgroup memory, so that a step costs no launch of its own (the fused
// step takes three dispatches, the per-op path about a dozen). The MLP's twin of
// `glm_epoch.wgsl`, for networks whose parameters fit twice in workgroup memory
// (`kernels::mlp_epoch_fits`): plain SGD, no penalty, unweighted rows, resident data in
// one binding.
//
// Workgroup memory `S`, at offsets the host's shape fixes:
//
// | part | values |
// |---|---|
// | W¹ (p × h), b¹ (h), W² (h × k), b² (k) | n = p h + h + h k + k |
// | their gradients, same layout | n |
// | a tile's activations a, then δ¹ in place | T × h |
// | a tile's logits, then δ² in place | T × k |
//
// Per step s (steps[s]: the batch's first position in the epoch order, its m rows, the
// learning rate, its loss slot), tile by tile of T rows:
//   1. a = f(x W¹ + b¹): invocation t takes the tile's (row, unit) entries t, t + WG, …
//      (sum over i ascending, then the bias), as `mlp_rows.wgsl`;
//   2. z² = a W² + b² per (row, class) entry (sum over j ascending, then the bias);
//   3. a row per invocation: softmax + CCE, the row's loss term (added to invocation r's
//      running sum) and δ² = (softmax − onehot) / m (`loss.wgsl`'s arithmetic);
//   4. ∂W² += aᵀδ², ∂b² += 1ᵀδ²: each gradient value owned by one invocation, the tile's
//      rows added in row order;
//   5. δ¹ = (δ² W²ᵀ) ⊙ f′(a) (sum over classes ascending), over a;
//   6. ∂W¹ += Xᵀδ¹, ∂b¹ += 1ᵀδ¹, as 4.
// Then the loss (the invocations' sums by a fixed tree) and the halting rule
// (`halting.wgsl`, compiled in front of this file), and unless it stops the fit, every
// parameter −= lr · its gradient and the gradients to zero. Every sum runs in an order
// fixed by the shape: a fit repeats bit for bit. A halted fit (halt[0] = 1) applies no
// further step. The parameters go back to their buffers when the dispatch ends. The
// activation (`act`, `act_derivative`, ACT) is `activation_math.wgsl`'s, compiled in front.

struct Params {
    p: u32,
    h: u32,
    k: u32,
    // Rows a tile holds (T).
    tile: u32,
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
// Workgroup memory for parameters, gradients and a tile (29 KiB: with the scratch below
// within the 32 KiB of llvmpipe; `kernels::MLP_EPOCH_FLOATS`).
const FLOATS: u32 = 7424u;
// Rows a tile holds at most.
const MAX_TILE: u32 = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> steps: array<Step>;
@group(0) @binding(5) var<storage, read_write> w1: array<f32>;
@group(0) @binding(6) var<storage, read_write> b1: array<f32>;
@group(0) @binding(7) var<storage, read_write> w2: array<f32>;
@group(0) @binding(8) var<storage, read_write> b2: array<f32>;
@group(0) @binding(9) var<storage, read_write> losses: array<f32>;
@group(0) @binding(10) var<storage, read_write> halt: array<u32>;

var<workgroup> S: array<f32, FLOATS>;
var<workgroup> red: array<f32, WG>;
var<workgroup> rowid: array<u32, MAX_TILE>;
// A step's descriptor and the stop decision, shared so that loop bounds are uniform.
var<workgroup> u_start: u32;
var<workgroup> u_len: u32;
var<workgroup> u_stop: u32;
var<workgroup> u_first: u32;
var<workgroup> u_last: u32;

// Offsets into S: W¹, b¹, W², b², the gradients, the tile's a / δ¹ and z² / δ².
struct Offsets {
    b1: u32,
    w2: u32,
    b2: u32,
    n: u32,
    a: u32,
    z: u32,
}

fn offsets() -> Offsets {
    let p = P.p;
    let h = P.h;
    let k = P.k;
    let b1o = p * h;
    let w2o = b1o + h;
    let b2o = w2o + h * k;
    let n = b2o + k;
    let a = 2u * n;
    return Offsets(b1o, w2o, b2o, n, a, a + P.tile * h);
}

// Parameter e of the flat layout, from its buffer.
fn load_param(e: u32, o: Offsets) -> f32 {
    if (e < o.b1) {
        return w1[e];
    } else if (e < o.w2) {
        return b1[e - o.b1];
    } else if (e < o.b2) {
        return w2[e - o.w2];
    }
    return b2[e - o.b2];
}

fn store_param(e: u32, o: Offsets, v: f32) {
    if (e < o.b1) {
        w1[e] = v;
    } else if (e < o.w2) {
        b1[e - o.b1] = v;
    } else if (e < o.b2) {
        w2[e - o.w2] = v;
    } else {
        b2[e - o.b2] = v;
    }
}

@compute @workgroup_size(256)
fn mlp_epoch(@builtin(local_invocation_index) t: u32) {
    let p = P.p;
    let h = P.h;
    let k = P.k;
    let o = offsets();
    for (var e = t; e < o.n; e += WG) {
        S[e] = load_param(e, o);
        S[o.n + e] = 0.0;
    }
    if (t == 0u) {
        u_first = P.first;
        u_last = P.first + P.n_steps;
    }
    let first = workgroupUniformLoad(&u_first);
    let last = workgroupUniformLoad(&u_last);
    for (var s = first; s < last; s++) {
        if (t == 0u) {
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
        let inv_m = 1.0 / f32(len);
        var loss_acc = 0.0;
        for (var c0 = 0u; c0 < len; c0 += P.tile) {
            let nr = min(P.tile, len - c0);
            if (t < nr) {
                rowid[t] = order[start + c0 + t];
            }
            workgroupBarrier();
            // 1. The hidden layer.
            for (var e = t; e < nr * h; e += WG) {
                let r = e / h;
                let j = e - r * h;
                let xr = rowid[r] * p;
                var z = 0.0;
                for (var i = 0u; i < p; i++) {
                    z += x[xr + i] * S[i * h + j];
                }
                S[o.a + e] = act(z + S[o.b1 + j]);
            }
            workgroupBarrier();
            // 2. The logits.
            for (var e = t; e < nr * k; e += WG) {
                let r = e / k;
                let c = e - r * k;
                var z = 0.0;
                for (var j = 0u; j < h; j++) {
                    z += S[o.a + r * h + j] * S[o.w2 + j * k + c];
                }
                S[o.z + e] = z + S[o.b2 + c];
            }
            workgroupBarrier();
            // 3. Softmax + CCE, a row per invocation.
            if (t < nr) {
                let label = targets[rowid[t]];
                let base = o.z + t * k;
                var mx = S[base];
                for (var c = 1u; c < k; c++) {
                    mx = max(mx, S[base + c]);
                }
                var denom = 0.0;
                for (var c = 0u; c < k; c++) {
                    denom += exp(S[base + c] - mx);
                }
                let lse = mx + log(denom);
                loss_acc += lse - S[base + min(label, k - 1u)];
                for (var c = 0u; c < k; c++) {
                    S[base + c] = (exp(S[base + c] - lse) - select(0.0, 1.0, c == label)) * inv_m;
                }
            }
            workgroupBarrier();
            // 4. ∂W² (h × k) and ∂b² (k), the tile's rows in order.
            for (var e = t; e < h * k + k; e += WG) {
                var g = 0.0;
                if (e < h * k) {
                    let j = e / k;
                    let c = e - j * k;
                    for (var r = 0u; r < nr; r++) {
                        g += S[o.a + r * h + j] * S[o.z + r * k + c];
                    }
                } else {
                    let c = e - h * k;
                    for (var r = 0u; r < nr; r++) {
                        g += S[o.z + r * k + c];
                    }
                }
                S[o.n + o.w2 + e] += g;
            }
            workgroupBarrier();
            // 5. δ¹ over a.
            for (var e = t; e < nr * h; e += WG) {
                let r = e / h;
                let j = e - r * h;
                var d = 0.0;
                for (var c = 0u; c < k; c++) {
                    d += S[o.z + r * k + c] * S[o.w2 + j * k + c];
                }
                S[o.a + e] = d * act_derivative(S[o.a + e]);
            }
            workgroupBarrier();
            // 6. ∂W¹ (p × h) and ∂b¹ (h), the tile's rows in order.
            for (var e = t; e < p * h + h; e += WG) {
                var g = 0.0;
                if (e < p * h) {
                    let i = e / h;
                    let j = e - i * h;
                    for (var r = 0u; r < nr; r++) {
                        g += x[rowid[r] * p + i] * S[o.a + r * h + j];
                    }
                } else {
                    let j = e - p * h;
                    for (var r = 0u; r < nr; r++) {
                        g += S[o.a + r * h + j];
                    }
                }
                S[o.n + e] += g;
            }
            workgroupBarrier();
        }
        red[t] = loss_acc;
        workgroupBarrier();
        for (var half = WG / 2u; half > 0u; half >>= 1u) {
            if (t < half) {
                red[t] += red[t + half];
            }
            workgroupBarrier();
        }
        if (t == 0u) {
            u_stop = record_loss(red[0] * inv_m, steps[s].slot, P.halt_mode, P.tol);
        }
        if (workgroupUniformLoad(&u_stop) != 0u) {
            break;
        }
        for (var e = t; e < o.n; e += WG) {
            S[e] -= lr * S[o.n + e];
            S[o.n + e] = 0.0;
        }
        workgroupBarrier();
    }
    workgroupBarrier();
    for (var e = t; e < o.n; e += WG) {
        store_param(e, o, S[e]);
    }
}
