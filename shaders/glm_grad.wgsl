// The loss and gradients of linear or logistic regression (one output) over a long batch,
// in ONE pass over its rows: the twin of the per-op path's forward (X·w + b), fused loss
// (`loss.wgsl`) and backward (Xᵀδ, 1ᵀδ), and of `cpu::fast::glm`'s fused pass.
//
// The per-op path reads X twice (the product and the gradient), writes and re-reads the
// output and δ, reduces the loss on one workgroup and launches seven dispatches. Here the
// batch is cut into segments of `seg_len` rows, one workgroup each (thousands for a full
// batch of 10⁶ rows), and each workgroup, tile by tile of WG rows:
//   1. invocation t takes row t of the tile: z = x·w + b (w in workgroup memory), its
//      loss term and δ = ∂L/∂z, scaled by the row's weight (MSE: 2/m (z − y); sigmoid +
//      BCE: (σ(z) − y)/m: the twins of `loss.wgsl`);
//   2. the tile's Xᵀδ: for p ≤ WG, WG / p groups of p invocations each sum a share of the
//      tile's rows for one feature (the row just read is still in the cache); for larger
//      p, invocation t sums every row for features t, t + WG, …;
// and writes its segment's partial sums, [Xᵀδ (p values), 1ᵀδ, Σ loss terms], to
// part[(part_base + segment) · cols ..], cols = p + 2 rounded up to a multiple of 4 (so
// that `glm_finish.wgsl` reads every block four values at a time). `glm_finish.wgsl`
// adds the segments in order.
//
// Features larger than one storage binding are held in chunks of whole rows; the host
// launches one dispatch per chunk, and a row outside the bound chunk contributes nothing
// to that dispatch's partials (each row belongs to exactly one chunk), so no read goes
// through a switch over bindings. Rows are read through the gather index (`use_idx`) or
// in stored order from `idx_off`.
//
// Every sum runs in an order fixed by the shape alone and no atomics are used: the
// gradients repeat bit for bit. Loops stay far below llvmpipe's per-invocation budget of
// 65,535 iterations: the host bounds the tiles a segment holds (`kernels::glm_grad_split`).

struct Params {
    p: u32,
    // Rows m of the step (the means divide by it).
    len: u32,
    use_idx: u32,
    idx_off: u32,
    // The bound chunk: its first stored row and how many rows it holds.
    chunk_first: u32,
    chunk_rows: u32,
    seg_len: u32,
    // Partial block of this dispatch's segment 0 (chunk c starts at c · segments).
    part_base: u32,
    use_w: u32,
    // The positions this dispatch covers: segment 0 starts at pos_begin. All of the
    // step's (0 .. len) through a gather; rows read in stored order take only the
    // positions whose rows lie in the bound chunk.
    pos_begin: u32,
    pos_end: u32,
    _pad0: u32,
}

const WG: u32 = 256u;
const MAX_P: u32 = 1024u;
// Features per invocation when p > WG.
const PER: u32 = 4u;
// A tile row outside the bound chunk (or past the segment).
const NONE: u32 = 0xffffffffu;

// 0: mean squared error on real targets (f32 bits); 1: sigmoid + BCE on labels {0, 1}.
override LOSS: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(4) var<storage, read> rw: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
@group(0) @binding(6) var<storage, read> b: array<f32>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;
// The same binding as `x`, read four features at a time by `glm_grad4` (p a multiple of
// 4, so that every row starts on a vec4): a quarter of the loads.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;

var<workgroup> wv: array<f32, MAX_P>;
var<workgroup> delta: array<f32, WG>;
var<workgroup> rowoff: array<u32, WG>;
var<workgroup> red: array<f32, WG>;
var<workgroup> redb: array<f32, WG>;
var<workgroup> wv4: array<vec4<f32>, MAX_P / 4u>;
var<workgroup> red4: array<vec4<f32>, WG>;

// This workgroup's segment: its index (the grid is flattened as y · nwg.x + x,
// `kernels::grid_1d`), its first position and the end of its positions.
fn segment(wg: vec3<u32>, nwg: vec3<u32>) -> vec3<u32> {
    let seg = wg.y * nwg.x + wg.x;
    let begin = P.pos_begin + seg * P.seg_len;
    return vec3<u32>(seg, begin, min(begin + P.seg_len, P.pos_end));
}

// Values a segment's block of partial sums spans: p + 2, rounded up to a multiple of 4
// (the twin of `kernels::glm_part_cols`).
fn part_cols() -> u32 {
    return (P.p + 5u) & ~3u;
}

// Four partial sums from `at`.
fn put4(at: u32, v: vec4<f32>) {
    part[at] = v.x;
    part[at + 1u] = v.y;
    part[at + 2u] = v.z;
    part[at + 3u] = v.w;
}

// δ's factor: 2/m for the mean squared error, 1/m for the cross-entropy.
fn delta_scale() -> f32 {
    return select(1.0, 2.0, LOSS == 0u) / f32(P.len);
}

// Row `row`'s loss term and δ at output z (weighted, δ scaled by `scale`).
fn loss_term(row: u32, z: f32, scale: f32) -> vec2<f32> {
    let t = targets[row];
    var wr = 1.0;
    if (P.use_w == 1u) {
        wr = rw[row];
    }
    if (LOSS == 0u) {
        let diff = z - bitcast<f32>(t);
        return vec2<f32>(wr * diff * diff, scale * wr * diff);
    }
    let y = f32(t);
    // softplus(z) − y z, from the logit: finite for any finite z.
    let loss = wr * (max(z, 0.0) - y * z + log(1.0 + exp(-abs(z))));
    return vec2<f32>(loss, wr * (sigmoid(z) - y) * scale);
}

// The stored row at position r of the step, if it lies in the bound chunk.
fn chunk_row(r: u32) -> u32 {
    var row = P.idx_off + r;
    if (P.use_idx == 1u) {
        row = idx[P.idx_off + r];
    }
    if (row >= P.chunk_first && row - P.chunk_first < P.chunk_rows) {
        return row;
    }
    return NONE;
}

// The loss and 1ᵀδ partial sums of the workgroup's `lanes` invocations, tree-reduced,
// after the segment's Xᵀδ at `base`.
fn finish_segment(lid: u32, base: u32, loss_acc: f32, db_acc: f32, lanes: u32) {
    red[lid] = loss_acc;
    redb[lid] = db_acc;
    workgroupBarrier();
    for (var h = lanes / 2u; h > 0u; h >>= 1u) {
        if (lid < h) {
            red[lid] += red[lid + h];
            redb[lid] += redb[lid + h];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        part[base + P.p] = redb[0];
        part[base + P.p + 1u] = red[0];
    }
}

// The end of a segment whose Xᵀδ is held as quads: invocation t's `g` is quad t % stride
// of row group t / stride; the `groups` groups of each of the `q` quads are added in
// group order and stored, then the loss and 1ᵀδ (`acc`) as `finish_segment` does.
fn finish_quads(lid: u32, base: u32, g: vec4<f32>, shape: vec3<u32>, acc: vec2<f32>) {
    let q = shape.x;
    red4[lid] = g;
    workgroupBarrier();
    if (lid < q) {
        var total = vec4<f32>(0.0);
        for (var j = 0u; j < shape.y; j++) {
            total += red4[j * shape.z + lid];
        }
        let at = base + 4u * lid;
        put4(at, total);
    }
    workgroupBarrier();
    finish_segment(lid, base, acc.x, acc.y, WG);
}

@compute @workgroup_size(256)
fn glm_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = segment(wg, nwg);
    let seg = at.x;
    let begin = at.y;
    if (begin >= P.pos_end) {
        return;
    }
    let end = at.z;
    let p = P.p;
    for (var l = lid; l < p; l += WG) {
        wv[l] = w[l];
    }
    workgroupBarrier();
    let b0 = b[0];
    let scale = delta_scale();
    let groups = max(WG / p, 1u);
    let l = lid % p;
    let k = lid / p;
    var g = array<f32, PER>(0.0, 0.0, 0.0, 0.0);
    var loss_acc = 0.0;
    var db_acc = 0.0;
    for (var t0 = begin; t0 < end; t0 += WG) {
        let r = t0 + lid;
        var d = 0.0;
        var off = NONE;
        if (r < end) {
            let row = chunk_row(r);
            if (row != NONE) {
                off = (row - P.chunk_first) * p;
                var z = b0;
                for (var j = 0u; j < p; j++) {
                    z += x[off + j] * wv[j];
                }
                let term = loss_term(row, z, scale);
                loss_acc += term.x;
                d = term.y;
            }
        }
        delta[lid] = d;
        rowoff[lid] = off;
        db_acc += d;
        workgroupBarrier();
        let rows = min(WG, end - t0);
        if (p <= WG) {
            if (k < groups) {
                for (var i = k; i < rows; i += groups) {
                    let o = rowoff[i];
                    if (o != NONE) {
                        g[0] += delta[i] * x[o + l];
                    }
                }
            }
        } else {
            for (var i = 0u; i < rows; i++) {
                let o = rowoff[i];
                if (o != NONE) {
                    let di = delta[i];
                    for (var q = 0u; q < PER; q++) {
                        let c = lid + q * WG;
                        if (c < p) {
                            g[q] += di * x[o + c];
                        }
                    }
                }
            }
        }
        workgroupBarrier();
    }
    let base = (P.part_base + seg) * part_cols();
    if (p <= WG) {
        // Invocations past the last whole group hold zero.
        red[lid] = g[0];
        workgroupBarrier();
        if (lid < p) {
            var total = 0.0;
            for (var j = 0u; j < groups; j++) {
                total += red[j * p + lid];
            }
            part[base + lid] = total;
        }
        workgroupBarrier();
    } else {
        for (var q = 0u; q < PER; q++) {
            let c = lid + q * WG;
            if (c < p) {
                part[base + c] = g[q];
            }
        }
    }
    finish_segment(lid, base, loss_acc, db_acc, WG);
}

// Quad c of the row at quad offset `off` (NONE: no row, zeros).
fn quad_or_zero(off: u32, c: u32) -> vec4<f32> {
    if (off == NONE) {
        return vec4<f32>(0.0);
    }
    return x4[off + c];
}

// `glm_grad` for p a multiple of 4, reading rows as vec4: each row's dot product sums
// four features at a time (the order differs from `glm_grad`'s, fixed all the same), and
// invocation (group k, quad c) sums the tile's rows k, k + groups, … for features
// 4c .. 4c + 4.
@compute @workgroup_size(256)
fn glm_grad4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = segment(wg, nwg);
    let seg = at.x;
    let begin = at.y;
    if (begin >= P.pos_end) {
        return;
    }
    let end = at.z;
    let q = P.p / 4u;
    for (var c = lid; c < q; c += WG) {
        wv4[c] = vec4<f32>(w[4u * c], w[4u * c + 1u], w[4u * c + 2u], w[4u * c + 3u]);
    }
    workgroupBarrier();
    let b0 = b[0];
    let scale = delta_scale();
    // q ≤ MAX_P / 4 = WG: one quad per invocation.
    let groups = WG / q;
    let c = lid % q;
    let k = lid / q;
    var g = vec4<f32>(0.0);
    var loss_acc = 0.0;
    var db_acc = 0.0;
    for (var t0 = begin; t0 < end; t0 += WG) {
        let r = t0 + lid;
        var d = 0.0;
        var off = NONE;
        if (r < end) {
            let row = chunk_row(r);
            if (row != NONE) {
                off = (row - P.chunk_first) * q;
                // Eight reads issued before their adds, which keep the one-by-one order
                // (the same bits): a GPU then waits out one memory latency for eight.
                var z4 = vec4<f32>(0.0);
                var j = 0u;
                for (; j + 8u <= q; j += 8u) {
                    let a0 = x4[off + j];
                    let a1 = x4[off + j + 1u];
                    let a2 = x4[off + j + 2u];
                    let a3 = x4[off + j + 3u];
                    let a4 = x4[off + j + 4u];
                    let a5 = x4[off + j + 5u];
                    let a6 = x4[off + j + 6u];
                    let a7 = x4[off + j + 7u];
                    z4 += a0 * wv4[j];
                    z4 += a1 * wv4[j + 1u];
                    z4 += a2 * wv4[j + 2u];
                    z4 += a3 * wv4[j + 3u];
                    z4 += a4 * wv4[j + 4u];
                    z4 += a5 * wv4[j + 5u];
                    z4 += a6 * wv4[j + 6u];
                    z4 += a7 * wv4[j + 7u];
                }
                for (; j < q; j++) {
                    z4 += x4[off + j] * wv4[j];
                }
                let term = loss_term(row, b0 + ((z4.x + z4.y) + (z4.z + z4.w)), scale);
                loss_acc += term.x;
                d = term.y;
            }
        }
        delta[lid] = d;
        rowoff[lid] = off;
        db_acc += d;
        workgroupBarrier();
        let rows = min(WG, end - t0);
        if (k < groups) {
            // Four reads ahead, added in row order: a row outside the chunk has δ = 0
            // and reads as zeros, adding nothing.
            var i = k;
            for (; i + 3u * groups < rows; i += 4u * groups) {
                let v0 = quad_or_zero(rowoff[i], c);
                let v1 = quad_or_zero(rowoff[i + groups], c);
                let v2 = quad_or_zero(rowoff[i + 2u * groups], c);
                let v3 = quad_or_zero(rowoff[i + 3u * groups], c);
                g += delta[i] * v0;
                g += delta[i + groups] * v1;
                g += delta[i + 2u * groups] * v2;
                g += delta[i + 3u * groups] * v3;
            }
            for (; i < rows; i += groups) {
                g += delta[i] * quad_or_zero(rowoff[i], c);
            }
        }
        workgroupBarrier();
    }
    let base = (P.part_base + seg) * part_cols();
    finish_quads(lid, base, g, vec3<u32>(q, groups, q), vec2<f32>(loss_acc, db_acc));
}

// Rows per workgroup of `glm_grad_rows`.
const WG_R: u32 = 64u;
// Features `glm_grad_rows` holds per invocation.
const MAX_P_R: u32 = 64u;
// Features reduced across the workgroup at a time.
const STRIDE_R: u32 = 16u;

var<workgroup> red_r: array<f32, 1024>;

// The loss and gradients for p ≤ 64 with the gradient in each invocation's own array:
// invocation t takes the t-th of 64 contiguous runs of the segment's rows (on llvmpipe
// no slower than rows t, t + 64, …), reads each row ONCE (kept in a private array for
// the second product), and adds δ·x to its own gradient; at the end of the segment the
// 64 invocations' gradients are added in invocation order. One read per feature value
// instead of two and no barrier per tile: the variant for adapters where a scattered
// read costs more than arithmetic (a CPU running the shader, as llvmpipe).
@compute @workgroup_size(64)
fn glm_grad_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = segment(wg, nwg);
    let seg = at.x;
    let begin = at.y;
    if (begin >= P.pos_end) {
        return;
    }
    let end = at.z;
    let p = P.p;
    for (var l = lid; l < p; l += WG_R) {
        wv[l] = w[l];
    }
    workgroupBarrier();
    let b0 = b[0];
    let scale = delta_scale();
    var g: array<f32, MAX_P_R>;
    var xr: array<f32, MAX_P_R>;
    var loss_acc = 0.0;
    var db_acc = 0.0;
    let per_lane = (end - begin + WG_R - 1u) / WG_R;
    let r0 = begin + lid * per_lane;
    let r1 = min(r0 + per_lane, end);
    for (var r = r0; r < r1; r++) {
        let row = chunk_row(r);
        if (row != NONE) {
            let off = (row - P.chunk_first) * p;
            var z = b0;
            for (var j = 0u; j < p; j++) {
                let v = x[off + j];
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
    }
    let base = (P.part_base + seg) * part_cols();
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
            part[base + c0 + lid] = total;
        }
        workgroupBarrier();
    }
    finish_segment(lid, base, loss_acc, db_acc, WG_R);
}

// Quads of features `glm_grad_rows4` holds per invocation (p ≤ 64).
const MAX_Q_R: u32 = 16u;

var<workgroup> red_r4: array<vec4<f32>, 256>;

// `glm_grad_rows` for p a multiple of 4, reading each row four features at a time
// (`x4`). On llvmpipe a read from a storage buffer whose address differs across lanes
// is a loop over the lanes, with a branch each, whatever its width: a vec4 read costs
// about what a scalar one does, so a quarter of the reads is nearly a quarter of the
// time. The weights are held in each invocation's own registers (a workgroup-memory
// read is such a loop too). The dot product sums four features at a time, as
// `glm_grad4`'s (an order of its own, fixed all the same).
@compute @workgroup_size(64)
fn glm_grad_rows4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = segment(wg, nwg);
    let seg = at.x;
    let begin = at.y;
    if (begin >= P.pos_end) {
        return;
    }
    let end = at.z;
    let q = P.p / 4u;
    var wq: array<vec4<f32>, MAX_Q_R>;
    for (var c = 0u; c < q; c++) {
        wq[c] = vec4<f32>(w[4u * c], w[4u * c + 1u], w[4u * c + 2u], w[4u * c + 3u]);
    }
    let b0 = b[0];
    let scale = delta_scale();
    var g: array<vec4<f32>, MAX_Q_R>;
    var xr: array<vec4<f32>, MAX_Q_R>;
    var loss_acc = 0.0;
    var db_acc = 0.0;
    let per_lane = (end - begin + WG_R - 1u) / WG_R;
    let r0 = begin + lid * per_lane;
    let r1 = min(r0 + per_lane, end);
    for (var r = r0; r < r1; r++) {
        let row = chunk_row(r);
        if (row != NONE) {
            let off = (row - P.chunk_first) * q;
            var z4 = vec4<f32>(0.0);
            for (var c = 0u; c < q; c++) {
                let v = x4[off + c];
                xr[c] = v;
                z4 += v * wq[c];
            }
            let term = loss_term(row, b0 + ((z4.x + z4.y) + (z4.z + z4.w)), scale);
            loss_acc += term.x;
            db_acc += term.y;
            for (var c = 0u; c < q; c++) {
                g[c] += term.y * xr[c];
            }
        }
    }
    let base = (P.part_base + seg) * part_cols();
    // Four quads (16 features) across the lanes at a time, added in lane order.
    for (var c0 = 0u; c0 < q; c0 += 4u) {
        for (var cc = 0u; cc < 4u; cc++) {
            red_r4[lid * 4u + cc] = g[min(c0 + cc, MAX_Q_R - 1u)];
        }
        workgroupBarrier();
        if (lid < 4u && c0 + lid < q) {
            var total = vec4<f32>(0.0);
            for (var t = 0u; t < WG_R; t++) {
                total += red_r4[t * 4u + lid];
            }
            let at = base + 4u * (c0 + lid);
            put4(at, total);
        }
        workgroupBarrier();
    }
    finish_segment(lid, base, loss_acc, db_acc, WG_R);
}

// Rows `glm_grad_lanes` holds per invocation (registers), and its score scratch: a tile
// of T rows × (L + 1) lanes, T·L ≤ 16 · 256 (L + 1: a row's lanes land in different
// banks when one invocation per row adds them).
const LANE_ROWS: u32 = 16u;
var<workgroup> dots: array<f32, 4352>;

// `glm_grad4` reshaped for a GPU (a tuner candidate: on the H200 `glm_grad4` won, 191
// against 438 µs at 10⁶ × 64): a row is read by L invocations at once (L the power of
// two ≥ p / 4), each one vec4, so a warp's loads are whole rows, contiguous; and X is
// read once, not twice. Per tile of T = min(256, 16 · 256 / L) rows:
//   1. pass k (k < T · L / 256 ≤ 16): invocation (row r, lane c) loads quad c of tile row
//      k · (256 / L) + r into its own registers and writes its share of the row's dot
//      product (the quad's four products, added pairwise) to `dots`;
//   2. invocation t adds row t's L shares in lane order: z, the loss term and δ;
//   3. each invocation adds δ · (the quads it holds) to its own vec4 of Xᵀδ.
// The segment's Xᵀδ: the 256 / L invocations of each quad added in row order. Two
// barriers a tile, three reads of workgroup memory per value; the order depends on the
// shape alone.
@compute @workgroup_size(256)
fn glm_grad_lanes(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = segment(wg, nwg);
    let seg = at.x;
    let begin = at.y;
    if (begin >= P.pos_end) {
        return;
    }
    let end = at.z;
    let q = P.p / 4u;
    for (var c = lid; c < q; c += WG) {
        wv4[c] = vec4<f32>(w[4u * c], w[4u * c + 1u], w[4u * c + 2u], w[4u * c + 3u]);
    }
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
    workgroupBarrier();
    let b0 = b[0];
    let scale = delta_scale();
    var held: array<vec4<f32>, LANE_ROWS>;
    var g = vec4<f32>(0.0);
    var loss_acc = 0.0;
    var db_acc = 0.0;
    for (var t0 = begin; t0 < end; t0 += tile) {
        for (var k = 0u; k < LANE_ROWS; k++) {
            var v = vec4<f32>(0.0);
            if (k < passes) {
                let pos = t0 + k * per_pass + r;
                var share = 0.0;
                if (pos < end && c < q) {
                    let row = chunk_row(pos);
                    if (row != NONE) {
                        v = x4[(row - P.chunk_first) * q + c];
                        let prod = v * wv4[c];
                        share = (prod.x + prod.y) + (prod.z + prod.w);
                    }
                }
                dots[(k * per_pass + r) * stride + c] = share;
            }
            held[k] = v;
        }
        workgroupBarrier();
        var d = 0.0;
        if (lid < tile) {
            let pos = t0 + lid;
            if (pos < end) {
                let row = chunk_row(pos);
                if (row != NONE) {
                    var z = 0.0;
                    for (var j = 0u; j < lanes; j++) {
                        z += dots[lid * stride + j];
                    }
                    let term = loss_term(row, b0 + z, scale);
                    loss_acc += term.x;
                    d = term.y;
                }
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
    let base = (P.part_base + seg) * part_cols();
    finish_quads(lid, base, g, vec3<u32>(q, per_pass, lanes), vec2<f32>(loss_acc, db_acc));
}
