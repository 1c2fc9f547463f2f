// `glm_grad_warps`: the fused GLM gradient written for a GPU's subgroups (compiled after
// `glm_grad.wgsl`, whose bindings and helpers it shares, on devices with the `subgroups`
// feature and subgroups of at least SG_LANES invocations).
//
// X is read once, in whole rows a load: SG_LANES consecutive invocations share a row,
// lane c holding quads c, c + SG_LANES, … (p ≤ 4 · SG_LANES · SG_QUADS), so a warp's load
// covers whole cache lines of consecutive rows. The row's dot product is added across its
// lanes by a butterfly of subgroup shuffles (every lane ends with the same bits: each step
// adds the same two values, in either order), every lane computes the row's δ, and adds
// δ · (its quads) to its own Xᵀδ, in registers. No workgroup memory and no barrier until
// the segment ends; four rows a lane are loaded before any is used, so that each
// invocation has several loads in flight (a GPU hides memory latency with them).
//
// Every per-lane value is a named variable or a struct field, never an array indexed in
// a loop: NVIDIA's compiler puts such arrays in local memory (measured on the H200: an
// array version of this kernel took 411 µs at 10⁶ × 64, 2.5× `glm_grad4`).
//
// The 256 / SG_LANES row slots of the workgroup take rows t0 + a · slots + slot; at the
// end of the segment the slots' Xᵀδ are added in slot order through workgroup memory,
// and the loss and 1ᵀδ (lane 0 of each row only) by `finish_segment`'s tree. The order
// depends on the shape alone: the gradients repeat bit for bit.
//
// The lanes of a row must lie in one subgroup: the host enables this variant only where
// subgroups hold at least SG_LANES invocations, and relies on a workgroup's invocations
// filling subgroups in `local_invocation_index` order (as every Vulkan driver does for a
// one-dimensional workgroup); the tuner checks the result against float64 before it can
// be chosen, so an adapter that lays subgroups out otherwise never runs it.

// Invocations a row is read by (a power of two, ≤ the smallest subgroup allowed).
const SG_LANES: u32 = 8u;
// Quads a lane holds at this pipeline's p, 1 to 4 (p ≤ 4 · 8 · 4 = 128;
// `kernels::glm_grad_kernel`): a constant, so that the driver drops the unused ones.
override SG_QUADS_USED: u32 = 4u;
// Row slots of a workgroup: rows t0 + a · SG_SLOTS + slot, a < 4, per iteration.
const SG_SLOTS: u32 = WG / SG_LANES;

// A lane's quads of one row (quads c, c + 8, c + 16, c + 24; zeros past p) and the
// stored row (NONE past the segment or outside the chunk). Also the lane's weights.
struct LaneRow {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
    row: u32,
}

// A lane's running sums: its quads of Xᵀδ, and (lane 0 of each row) the loss and 1ᵀδ.
struct LaneSums {
    g0: vec4<f32>,
    g1: vec4<f32>,
    g2: vec4<f32>,
    g3: vec4<f32>,
    loss: f32,
    db: f32,
}

// Quad j of lane c's share of stored row `row` (q quads a row), or zeros.
fn lane_quad(row: u32, j: u32, c: u32, q: u32) -> vec4<f32> {
    let k = c + j * SG_LANES;
    if (j < SG_QUADS_USED && row != NONE && k < q) {
        return x4[(row - P.chunk_first) * q + k];
    }
    return vec4<f32>(0.0);
}

// Lane c's quads of the row at position `pos` of the step.
fn lane_row(pos: u32, end: u32, c: u32, q: u32) -> LaneRow {
    var row = NONE;
    if (pos < end) {
        row = chunk_row(pos);
    }
    return LaneRow(
        lane_quad(row, 0u, c, q),
        lane_quad(row, 1u, c, q),
        lane_quad(row, 2u, c, q),
        lane_quad(row, 3u, c, q),
        row,
    );
}

fn dot4(a: vec4<f32>, b: vec4<f32>) -> f32 {
    let m = a * b;
    return (m.x + m.y) + (m.z + m.w);
}

// Adds one row to lane c's sums: its dot product across the row's lanes (every
// invocation shuffles, rows past the end holding zeros, so that a subgroup's lanes stay
// together), δ, and δ times the lane's quads.
fn lane_add(r: LaneRow, wq: LaneRow, sums: LaneSums, c: u32, b0: f32, scale: f32) -> LaneSums {
    var s = dot4(r.v0, wq.v0);
    if (SG_QUADS_USED > 1u) {
        s += dot4(r.v1, wq.v1);
    }
    if (SG_QUADS_USED > 2u) {
        s += dot4(r.v2, wq.v2);
    }
    if (SG_QUADS_USED > 3u) {
        s += dot4(r.v3, wq.v3);
    }
    for (var h = 1u; h < SG_LANES; h <<= 1u) {
        s += subgroupShuffleXor(s, h);
    }
    var out = sums;
    if (r.row != NONE) {
        let term = loss_term(r.row, b0 + s, scale);
        let d = term.y;
        if (c == 0u) {
            out.loss += term.x;
            out.db += d;
        }
        out.g0 += d * r.v0;
        if (SG_QUADS_USED > 1u) {
            out.g1 += d * r.v1;
        }
        if (SG_QUADS_USED > 2u) {
            out.g2 += d * r.v2;
        }
        if (SG_QUADS_USED > 3u) {
            out.g3 += d * r.v3;
        }
    }
    return out;
}

// Quad j of lane c's gradient: the slots' values added in slot order, stored.
fn store_quad(lid: u32, base: u32, j: u32, g: vec4<f32>, q: u32) {
    red4[lid] = g;
    workgroupBarrier();
    let k = lid + j * SG_LANES;
    if (lid < SG_LANES && k < q) {
        var total = vec4<f32>(0.0);
        for (var t = 0u; t < SG_SLOTS; t++) {
            total += red4[t * SG_LANES + lid];
        }
        put4(base + 4u * k, total);
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn glm_grad_warps(
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
    let c = lid % SG_LANES;
    let slot = lid / SG_LANES;
    var wq = LaneRow(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), 0u);
    // The weights as the rows' quads: w read as quads of four scalars.
    for (var j = 0u; j < SG_QUADS_USED; j++) {
        let k = c + j * SG_LANES;
        var wk = vec4<f32>(0.0);
        if (k < q) {
            wk = vec4<f32>(w[4u * k], w[4u * k + 1u], w[4u * k + 2u], w[4u * k + 3u]);
        }
        switch j {
            case 0u: { wq.v0 = wk; }
            case 1u: { wq.v1 = wk; }
            case 2u: { wq.v2 = wk; }
            default: { wq.v3 = wk; }
        }
    }
    let b0 = b[0];
    let scale = delta_scale();
    let zero = vec4<f32>(0.0);
    var sums = LaneSums(zero, zero, zero, zero, 0.0, 0.0);
    for (var t0 = begin; t0 < end; t0 += 4u * SG_SLOTS) {
        // Four rows' loads issued before any is used.
        let r0 = lane_row(t0 + slot, end, c, q);
        let r1 = lane_row(t0 + SG_SLOTS + slot, end, c, q);
        let r2 = lane_row(t0 + 2u * SG_SLOTS + slot, end, c, q);
        let r3 = lane_row(t0 + 3u * SG_SLOTS + slot, end, c, q);
        sums = lane_add(r0, wq, sums, c, b0, scale);
        sums = lane_add(r1, wq, sums, c, b0, scale);
        sums = lane_add(r2, wq, sums, c, b0, scale);
        sums = lane_add(r3, wq, sums, c, b0, scale);
    }
    let base = (P.part_base + seg) * part_cols();
    store_quad(lid, base, 0u, sums.g0, q);
    if (SG_QUADS_USED > 1u) {
        store_quad(lid, base, 1u, sums.g1, q);
    }
    if (SG_QUADS_USED > 2u) {
        store_quad(lid, base, 2u, sums.g2, q);
    }
    if (SG_QUADS_USED > 3u) {
        store_quad(lid, base, 3u, sums.g3, q);
    }
    finish_segment(lid, base, sums.loss, sums.db, WG);
}
