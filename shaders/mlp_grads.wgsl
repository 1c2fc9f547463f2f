// The second pass of a two-layer MLP's fused step: the sums over the batch's rows that
// `mlp_rows.wgsl` left, in one dispatch — the twins of the backward ops' products and
// column sums, and of the loss's mean and halting rule.
//
// | workgroups | computes |
// |---|---|
// | [0, groups1) | ∂W¹ = xbᵀ δ¹ (p × h) and ∂b¹ = 1ᵀ δ¹: the product [xb 1]ᵀ δ¹ |
// | [groups1, groups1 + groups2) | ∂W² = aᵀ δ² (h × k) and ∂b² = 1ᵀ δ²: [a 1]ᵀ δ² |
// | the last | the loss: lossp's `parts` sums (runs in order, then a fixed tree), over m → losses[slot]; halting |
//
// A product C = [A 1]ᵀ B (A: m × ka, B: m × n, C: (ka + 1) × n, its last row the bias
// gradient) is cut into items of four rows of C by one column j (j fastest, so a warp's
// reads of B are contiguous); a workgroup takes ITEMS items, each summed by SEGMENTS
// invocations over an eighth of the batch's rows (ascending), the eighths then added in
// order. The order depends on the shape alone: the result repeats bit for bit.
//
// The loss and halting rule are `halting.wgsl`'s (compiled in front of this file):
// decided here, before the step's update runs.

struct Params {
    p: u32,
    h: u32,
    k: u32,
    m: u32,
    groups1: u32,
    groups2: u32,
    parts: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;
const SEGMENTS: u32 = 8u;
const ITEMS: u32 = 32u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> xb: array<f32>;
@group(0) @binding(2) var<storage, read> da1: array<f32>;
@group(0) @binding(3) var<storage, read> a1: array<f32>;
@group(0) @binding(4) var<storage, read> dz2: array<f32>;
@group(0) @binding(5) var<storage, read> lossp: array<f32>;
@group(0) @binding(6) var<storage, read_write> gw1: array<f32>;
@group(0) @binding(7) var<storage, read_write> gb1: array<f32>;
@group(0) @binding(8) var<storage, read_write> gw2: array<f32>;
@group(0) @binding(9) var<storage, read_write> gb2: array<f32>;
@group(0) @binding(10) var<storage, read_write> losses: array<f32>;
@group(0) @binding(11) var<storage, read_write> halt: array<u32>;

var<workgroup> red: array<vec4<f32>, WG>;

// Columns i0 .. i0 + 3 of [A 1] at row r (ka columns of A, then the ones; zero past
// them), by selects: the reads are clamped into A, never branched around.
fn a_quad(second: bool, ka: u32, r: u32, i0: u32) -> vec4<f32> {
    let i = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u);
    let c = min(i, vec4<u32>(ka - 1u));
    let base = r * ka;
    var v: vec4<f32>;
    if (second) {
        v = vec4<f32>(a1[base + c.x], a1[base + c.y], a1[base + c.z], a1[base + c.w]);
    } else {
        v = vec4<f32>(xb[base + c.x], xb[base + c.y], xb[base + c.z], xb[base + c.w]);
    }
    let ones = select(vec4<f32>(0.0), vec4<f32>(1.0), i == vec4<u32>(ka));
    return select(ones, v, i < vec4<u32>(ka));
}

fn b_at(second: bool, n: u32, r: u32, j: u32) -> f32 {
    if (second) {
        return dz2[r * n + j];
    }
    return da1[r * n + j];
}

// Row i of C = [A 1]ᵀ B, column j: a gradient's value or its bias's.
fn store(second: bool, ka: u32, n: u32, i: u32, j: u32, v: f32) {
    if (i > ka) {
        return;
    }
    if (second) {
        if (i == ka) {
            gb2[j] = v;
        } else {
            gw2[i * n + j] = v;
        }
    } else {
        if (i == ka) {
            gb1[j] = v;
        } else {
            gw1[i * n + j] = v;
        }
    }
}

@compute @workgroup_size(256)
fn mlp_grads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let group = wg.x;
    if (group >= P.groups1 + P.groups2) {
        // The loss: each invocation a contiguous run of the parts, the runs in order.
        let per = (P.parts + WG - 1u) / WG;
        let lo = min(t * per, P.parts);
        let hi = min(lo + per, P.parts);
        var s = 0.0;
        for (var u = lo; u < hi; u++) {
            s += lossp[u];
        }
        red[t] = vec4<f32>(s, 0.0, 0.0, 0.0);
        workgroupBarrier();
        // A fixed tree (`loss.wgsl`'s): eight steps, not a 256-long chain of adds.
        for (var half = WG / 2u; half > 0u; half >>= 1u) {
            if (t < half) {
                red[t].x += red[t + half].x;
            }
            workgroupBarrier();
        }
        if (t == 0u) {
            record_loss(red[0].x / f32(P.m), P.slot, P.halt_mode, P.tol);
        }
        return;
    }
    let second = group >= P.groups1;
    var ka = P.p;
    var n = P.h;
    var first_group = 0u;
    if (second) {
        ka = P.h;
        n = P.k;
        first_group = P.groups1;
    }
    let item = (group - first_group) * ITEMS + t % ITEMS;
    let segment = t / ITEMS;
    let blocks = (ka + 4u) / 4u;
    let live = item < blocks * n;
    let i0 = (item / n) * 4u;
    let j = item % n;
    let per = (P.m + SEGMENTS - 1u) / SEGMENTS;
    let lo = min(segment * per, P.m);
    let hi = min(lo + per, P.m);
    var acc = vec4<f32>(0.0);
    if (live) {
        // Eight rows' reads issued before their multiply-adds, which keep the row order.
        var r = lo;
        for (; r + 8u <= hi; r += 8u) {
            let ba = b_at(second, n, r, j);
            let bb = b_at(second, n, r + 1u, j);
            let bc = b_at(second, n, r + 2u, j);
            let bd = b_at(second, n, r + 3u, j);
            let be = b_at(second, n, r + 4u, j);
            let bf = b_at(second, n, r + 5u, j);
            let bg = b_at(second, n, r + 6u, j);
            let bh = b_at(second, n, r + 7u, j);
            let xa = a_quad(second, ka, r, i0);
            let xbv = a_quad(second, ka, r + 1u, i0);
            let xc = a_quad(second, ka, r + 2u, i0);
            let xd = a_quad(second, ka, r + 3u, i0);
            let xe = a_quad(second, ka, r + 4u, i0);
            let xf = a_quad(second, ka, r + 5u, i0);
            let xg = a_quad(second, ka, r + 6u, i0);
            let xh = a_quad(second, ka, r + 7u, i0);
            acc += xa * ba;
            acc += xbv * bb;
            acc += xc * bc;
            acc += xd * bd;
            acc += xe * be;
            acc += xf * bf;
            acc += xg * bg;
            acc += xh * bh;
        }
        for (; r < hi; r++) {
            acc += a_quad(second, ka, r, i0) * b_at(second, n, r, j);
        }
    }
    red[t] = acc;
    workgroupBarrier();
    if (segment == 0u && live) {
        var total = red[t];
        for (var q = 1u; q < SEGMENTS; q++) {
            total += red[q * ITEMS + t];
        }
        store(second, ka, n, i0, j, total.x);
        store(second, ka, n, i0 + 1u, j, total.y);
        store(second, ka, n, i0 + 2u, j, total.z);
        store(second, ka, n, i0 + 3u, j, total.w);
    }
}
