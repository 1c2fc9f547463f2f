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
// the segment ends; SG_AHEAD rows a lane are loaded before any is used, so that each
// invocation has several loads in flight (a GPU hides memory latency with them).
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
// Quads a lane holds at most: p ≤ 4 · 8 · 4 = 128.
const SG_QUADS: u32 = 4u;
// Quads a lane holds at this pipeline's p (≤ SG_QUADS; `kernels::glm_grad_kernel`): a
// constant, so that the driver unrolls the lane's loops and keeps `v`, `wq` and `g` in
// registers.
override SG_QUADS_USED: u32 = SG_QUADS;
// Rows a lane loads before using any.
const SG_AHEAD: u32 = 4u;
const SG_SLOTS: u32 = WG / SG_LANES;

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
    var wq: array<vec4<f32>, SG_QUADS>;
    for (var j = 0u; j < SG_QUADS_USED; j++) {
        let k = c + j * SG_LANES;
        if (k < q) {
            wq[j] = vec4<f32>(w[4u * k], w[4u * k + 1u], w[4u * k + 2u], w[4u * k + 3u]);
        }
    }
    let b0 = b[0];
    let scale = delta_scale();
    var g: array<vec4<f32>, SG_QUADS>;
    var loss_acc = 0.0;
    var db_acc = 0.0;
    for (var t0 = begin; t0 < end; t0 += SG_SLOTS * SG_AHEAD) {
        var v: array<vec4<f32>, SG_AHEAD * SG_QUADS>;
        var rows: array<u32, SG_AHEAD>;
        for (var a = 0u; a < SG_AHEAD; a++) {
            let pos = t0 + a * SG_SLOTS + slot;
            var row = NONE;
            if (pos < end) {
                row = chunk_row(pos);
            }
            rows[a] = row;
            for (var j = 0u; j < SG_QUADS_USED; j++) {
                let k = c + j * SG_LANES;
                var xv = vec4<f32>(0.0);
                if (row != NONE && k < q) {
                    xv = x4[(row - P.chunk_first) * q + k];
                }
                v[a * SG_QUADS + j] = xv;
            }
        }
        for (var a = 0u; a < SG_AHEAD; a++) {
            var s = 0.0;
            for (var j = 0u; j < SG_QUADS_USED; j++) {
                let prod = v[a * SG_QUADS + j] * wq[j];
                s += (prod.x + prod.y) + (prod.z + prod.w);
            }
            // Every invocation shuffles (rows past the end hold zeros): the lanes of a
            // subgroup stay together.
            for (var h = 1u; h < SG_LANES; h <<= 1u) {
                s += subgroupShuffleXor(s, h);
            }
            let row = rows[a];
            var d = 0.0;
            if (row != NONE) {
                let term = loss_term(row, b0 + s, scale);
                d = term.y;
                if (c == 0u) {
                    loss_acc += term.x;
                    db_acc += d;
                }
            }
            for (var j = 0u; j < SG_QUADS_USED; j++) {
                g[j] += d * v[a * SG_QUADS + j];
            }
        }
    }
    let base = (P.part_base + seg) * part_cols();
    // Each quad's slots added in slot order.
    for (var j = 0u; j < SG_QUADS_USED; j++) {
        if (j * SG_LANES < q) {
            red4[lid] = g[j];
            workgroupBarrier();
            let k = lid + j * SG_LANES;
            if (lid < SG_LANES && k < q) {
                var total = vec4<f32>(0.0);
                for (var t = 0u; t < SG_SLOTS; t++) {
                    total += red4[t * SG_LANES + lid];
                }
                let o = base + 4u * k;
                part[o] = total.x;
                part[o + 1u] = total.y;
                part[o + 2u] = total.z;
                part[o + 3u] = total.w;
            }
            workgroupBarrier();
        }
    }
    finish_segment(lid, base, loss_acc, db_acc, WG);
}
