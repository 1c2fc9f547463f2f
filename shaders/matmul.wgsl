// C (m × n) = op(A) · op(B), row-major; the twin of `cpu::matmul::matmul`.
//
// | entry point | A stored as | B stored as |
// |---|---|---|
// | matmul_nn | m × k | k × n |
// | matmul_tn | k × m | k × n |
// | matmul_nt | m × k | n × k |
//
// Each invocation computes a BLOCK × BLOCK block of C in registers (four vec4 rows), an
// 8 × 8 workgroup a 32 × 32 block; no workgroup memory and no barriers. Operands are read
// straight from storage: every value read is used BLOCK times from registers, and the
// rest of the reuse comes from the caches, which is what a CPU adapter (llvmpipe, where a
// barrier switches between the workgroup's SIMD batches) and a GPU's L1 both do well.
//
// Summation order, fixed whatever the grid: over k in tiles of TILE, each tile summed on
// its own in increasing k and then added to the running sum, so results repeat bit for
// bit.
//
// Row gather: with `use_idx = 1`, stored row r of A is read from row idx[idx_off + r] of
// `a` (the shuffled batch read in place). Rows and columns past m and n are clamped on
// read and not stored, so any shape works.
//
// Split sums (the `*_split` entry points): a long sum over k — a full batch's gradient
// reduction Xᵀδ — is cut into segments of `seg_len` values, one per z of the grid, so
// that the work spreads over many workgroups; segment s writes its partial C at
// c[s · c_stride ..], and a column-sum pass (`reduce.wgsl`) adds the segments in order.
// Each segment sums as one dispatch would, so the result repeats bit for bit. The split
// is a constant of the entry point, so the unsplit kernels compile as they were.
//
// Epilogues (`epi`): the bias add, the activation and the activation's backward that
// follow a product in a program can be applied as each value of C is stored, saving
// their dispatches and a pass over C (see `epilogue`).
//
// Chunked A: a resident dataset larger than one storage binding is split into up to four
// buffers of whole rows, `a` (chunk 0) and `a1`..`a3`, of `rows_per_chunk` rows each (the
// last may be shorter). Row r lives in chunk r / rows_per_chunk at row r % rows_per_chunk.
// WGSL cannot index an array of bindings, hence the switch. A single buffer is
// rows_per_chunk = 0xffffffff: every row is in chunk 0, at its own index.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    use_idx: u32,
    idx_off: u32,
    rows_per_chunk: u32,
    // The stretch of k this dispatch sums (k_begin a multiple of TILE); from k_begin > 0
    // it continues the running sums already in C.
    k_begin: u32,
    k_end: u32,
    // Split sums: values of k per segment and C's stride between segments.
    seg_len: u32,
    c_stride: u32,
    // What the store applies to each finished value of C (see `epilogue`); 0 for split
    // sums and sums continued over several dispatches, whose stores are partial.
    epi: u32,
    // The 8 × 8 block only: 1 when the grid's x runs along C's rows (a thin C, n ≤ 16:
    // along n, six of a SIMD group's eight lanes would have no column; see `cell8`).
    rows_x: u32,
}

// k values summed apart before joining the running sum (the summation order).
const TILE: u32 = 16u;
// Rows and columns of C per invocation; a workgroup is 8 × 8 invocations.
const BLOCK: u32 = 4u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read> a1: array<f32>;
@group(0) @binding(6) var<storage, read> a2: array<f32>;
@group(0) @binding(7) var<storage, read> a3: array<f32>;
// The epilogue's operand (`ep`): the bias (a row of n values) or the activation's forward
// output (m × n), read by `epilogue`.
@group(0) @binding(8) var<storage, read> ep: array<f32>;

// The activation of an epilogue (`act`, `act_derivative` and their override ACT, a
// pipeline variant) is `activation_math.wgsl`'s, compiled in front: the same bits as
// `activation.wgsl`'s separate kernels.
// Whether A may span several chunk buffers (a pipeline variant). Without, every read of
// A is of `a`, with no switch: a CPU adapter runs a switch whose case differs across
// invocations as every case under a mask, four reads for one.
override CHUNKED: bool = true;

// The finished value v of C[i, j] after the fused ops that followed the product in the
// program, each in the arithmetic of its own kernel (the same bits):
// | epi | fused op | value stored |
// |---|---|---|
// | 0 | none | v |
// | 1 | bias add (`bias.wgsl`) | v + ep[j] |
// | 2 | bias add, then activation (`activation.wgsl`) | f(v + ep[j]) |
// | 3 | activation backward from a = ep | v · f′(a[i, j]) |
fn epilogue(i: u32, j: u32, v: f32) -> f32 {
    switch P.epi {
        case 1u: {
            return v + ep[j];
        }
        case 2u: {
            return act(v + ep[j]);
        }
        case 3u: {
            return v * act_derivative(ep[i * P.n + j]);
        }
        default: {
            return v;
        }
    }
}

// Stored row r of A, through the gather index when there is one.
fn a_row(r: u32) -> u32 {
    if (P.use_idx == 1u) {
        return idx[P.idx_off + r];
    }
    return r;
}

// Where A's stored row `r` (through the gather, `len` values long) starts: its chunk and
// the offset of its first value in that chunk.
fn a_ref(r: u32, len: u32) -> vec2<u32> {
    let row = a_row(r);
    if (!CHUNKED) {
        return vec2<u32>(0u, row * len);
    }
    let chunk = row / P.rows_per_chunk;
    return vec2<u32>(chunk, (row - chunk * P.rows_per_chunk) * len);
}

fn a_read(at: vec2<u32>, off: u32) -> f32 {
    if (!CHUNKED) {
        return a[at.y + off];
    }
    switch at.x {
        case 0u: { return a[at.y + off]; }
        case 1u: { return a1[at.y + off]; }
        case 2u: { return a2[at.y + off]; }
        default: { return a3[at.y + off]; }
    }
}

// op(B)[l, j0 .. j0 + 4], columns past n clamped (their results are not stored).
fn b_nn4(l: u32, j0: u32) -> vec4<f32> {
    let r = l * P.n;
    let last = P.n - 1u;
    return vec4<f32>(b[r + min(j0, last)], b[r + min(j0 + 1u, last)], b[r + min(j0 + 2u, last)], b[r + min(j0 + 3u, last)]);
}

fn b_nt4(l: u32, j0: u32) -> vec4<f32> {
    let last = P.n - 1u;
    return vec4<f32>(b[min(j0, last) * P.k + l], b[min(j0 + 1u, last) * P.k + l], b[min(j0 + 2u, last) * P.k + l], b[min(j0 + 3u, last) * P.k + l]);
}

// Row i of C (or of a segment's partial C, which starts at `base`).
fn store_row(base: u32, i: u32, j0: u32, v: vec4<f32>) {
    if (i >= P.m) {
        return;
    }
    let r = base + i * P.n;
    c[r + j0] = epilogue(i, j0, v.x);
    if (j0 + 1u < P.n) { c[r + j0 + 1u] = epilogue(i, j0 + 1u, v.y); }
    if (j0 + 2u < P.n) { c[r + j0 + 2u] = epilogue(i, j0 + 2u, v.z); }
    if (j0 + 3u < P.n) { c[r + j0 + 3u] = epilogue(i, j0 + 3u, v.w); }
}

// The block's running sums in C (rows and columns past C's read clamped, never stored),
// for a dispatch that continues the sums of the one before.
fn load_row(i: u32, j0: u32) -> vec4<f32> {
    let r = min(i, P.m - 1u) * P.n;
    let last = P.n - 1u;
    return vec4<f32>(c[r + j0], c[r + min(j0 + 1u, last)], c[r + min(j0 + 2u, last)], c[r + min(j0 + 3u, last)]);
}

fn store(base: u32, i0: u32, j0: u32, c0: vec4<f32>, c1: vec4<f32>, c2: vec4<f32>, c3: vec4<f32>) {
    store_row(base, i0, j0, c0);
    store_row(base, i0 + 1u, j0, c1);
    store_row(base, i0 + 2u, j0, c2);
    store_row(base, i0 + 3u, j0, c3);
}

// op(A)[i0 .. i0 + 4, l] (rows past m clamped): for TN four neighbours in stored row l,
// else value l of the four rows found once (`r0` .. `r3`).
fn a_vec(form: u32, l: u32, i0: u32, r0: vec2<u32>, r1: vec2<u32>, r2: vec2<u32>, r3: vec2<u32>) -> vec4<f32> {
    if (form == 1u) {
        let last = P.m - 1u;
        let at = a_ref(l, P.m);
        return vec4<f32>(a_read(at, i0), a_read(at, min(i0 + 1u, last)), a_read(at, min(i0 + 2u, last)), a_read(at, min(i0 + 3u, last)));
    }
    return vec4<f32>(a_read(r0, l), a_read(r1, l), a_read(r2, l), a_read(r3, l));
}

// op(B)[l, j0 .. j0 + 4].
fn b_vec(form: u32, l: u32, j0: u32) -> vec4<f32> {
    if (form == 2u) {
        return b_nt4(l, j0);
    }
    return b_nn4(l, j0);
}

// Each kernel sums k over k_begin .. k_end in tiles of TILE (the last one partial), each
// tile on its own and then added to the running sums. llvmpipe stops an invocation's
// loops after 65,535 iterations in all (Mesa's loop limiter), and these loops run about
// k_end − k_begin + (k_end − k_begin) / TILE times, so the host keeps a dispatch's stretch
// of k to `MATMUL_K_PER_DISPATCH` (2¹⁵) and splits longer sums over several.

// The block of C at invocation `gid`, for `form` 0 (NN), 1 (TN) or 2 (NT), split into
// segments over z or not: constants at each entry point.
fn block_sum(gid: vec3<u32>, form: u32, split: u32) {
    let i0 = gid.y * BLOCK;
    let j0 = gid.x * BLOCK;
    if (i0 >= P.m || j0 >= P.n) {
        return;
    }
    // This dispatch's stretch of k, or this segment's.
    var k_begin = P.k_begin;
    var k_end = P.k_end;
    var base = 0u;
    if (split == 1u) {
        k_begin = gid.z * P.seg_len;
        k_end = min(k_begin + P.seg_len, P.k);
        base = gid.z * P.c_stride;
    }
    let last = P.m - 1u;
    // NN and NT: A's four rows are fixed for the whole sum, so their chunk and offset are
    // found once. TN: A is stored k × m, and op(A)[i0 .. i0 + 4, l] are four neighbours
    // in stored row l, found for each l.
    var r0 = vec2<u32>(0u);
    var r1 = vec2<u32>(0u);
    var r2 = vec2<u32>(0u);
    var r3 = vec2<u32>(0u);
    if (form != 1u) {
        r0 = a_ref(i0, P.k);
        r1 = a_ref(min(i0 + 1u, last), P.k);
        r2 = a_ref(min(i0 + 2u, last), P.k);
        r3 = a_ref(min(i0 + 3u, last), P.k);
    }
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    if (split == 0u && P.k_begin > 0u) {
        c0 = load_row(i0, j0);
        c1 = load_row(i0 + 1u, j0);
        c2 = load_row(i0 + 2u, j0);
        c3 = load_row(i0 + 3u, j0);
    }
    for (var l0 = k_begin; l0 < k_end; l0 += TILE) {
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        var t2 = vec4<f32>(0.0);
        var t3 = vec4<f32>(0.0);
        let l1 = min(l0 + TILE, k_end);
        // Four values of k read before any is added, the adds in increasing k as one at
        // a time would (the same bits): on a GPU, a product with few workgroups has a
        // warp or two per SM to hide a read's latency, and one k after another waited
        // for each (the H200: 0.3–0.4 µs a value of k).
        var l = l0;
        for (; l + 4u <= l1; l += 4u) {
            let a0 = a_vec(form, l, i0, r0, r1, r2, r3);
            let a1 = a_vec(form, l + 1u, i0, r0, r1, r2, r3);
            let a2 = a_vec(form, l + 2u, i0, r0, r1, r2, r3);
            let a3 = a_vec(form, l + 3u, i0, r0, r1, r2, r3);
            let b0 = b_vec(form, l, j0);
            let b1 = b_vec(form, l + 1u, j0);
            let b2 = b_vec(form, l + 2u, j0);
            let b3 = b_vec(form, l + 3u, j0);
            t0 += a0.x * b0;
            t1 += a0.y * b0;
            t2 += a0.z * b0;
            t3 += a0.w * b0;
            t0 += a1.x * b1;
            t1 += a1.y * b1;
            t2 += a1.z * b1;
            t3 += a1.w * b1;
            t0 += a2.x * b2;
            t1 += a2.y * b2;
            t2 += a2.z * b2;
            t3 += a2.w * b2;
            t0 += a3.x * b3;
            t1 += a3.y * b3;
            t2 += a3.z * b3;
            t3 += a3.w * b3;
        }
        for (; l < l1; l++) {
            let av = a_vec(form, l, i0, r0, r1, r2, r3);
            let bv = b_vec(form, l, j0);
            t0 += av.x * bv;
            t1 += av.y * bv;
            t2 += av.z * bv;
            t3 += av.w * bv;
        }
        c0 += t0;
        c1 += t1;
        c2 += t2;
        c3 += t3;
    }
    store(base, i0, j0, c0, c1, c2, c3);
}

@compute @workgroup_size(8, 8)
fn matmul_nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum(gid, 0u, 0u);
}

@compute @workgroup_size(8, 8)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum(gid, 1u, 0u);
}

@compute @workgroup_size(8, 8)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum(gid, 2u, 0u);
}

@compute @workgroup_size(8, 8)
fn matmul_nn_split(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum(gid, 0u, 1u);
}

@compute @workgroup_size(8, 8)
fn matmul_tn_split(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum(gid, 1u, 1u);
}

@compute @workgroup_size(8, 8)
fn matmul_nt_split(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum(gid, 2u, 1u);
}

// The 8 × 8 block's first row and column of C at invocation `gid`: the grid's x runs
// along C's columns, or along its rows for a thin C (`rows_x`).
fn cell8(gid: vec3<u32>) -> vec2<u32> {
    if (P.rows_x == 1u) {
        return vec2<u32>(gid.x * 8u, gid.y * 8u);
    }
    return vec2<u32>(gid.y * 8u, gid.x * 8u);
}

// Where A's rows i0 .. i0 + 8 start (NN, NT: fixed for the whole sum; rows past C
// clamped), or nothing for TN (A stored k × m: its rows are found for each l).
fn a_refs8(i0: u32, form: u32) -> array<vec2<u32>, 8> {
    var rr: array<vec2<u32>, 8>;
    if (form != 1u) {
        for (var r = 0u; r < 8u; r++) {
            rr[r] = a_ref(min(i0 + r, P.m - 1u), P.k);
        }
    }
    return rr;
}

// The 8 × 8 block's running sums: zero, or those in C for a dispatch that continues the
// sums of the one before.
fn running8(i0: u32, j0: u32) -> array<vec4<f32>, 16> {
    var acc: array<vec4<f32>, 16>;
    if (P.k_begin > 0u) {
        for (var r = 0u; r < 8u; r++) {
            acc[2u * r] = load_row(i0 + r, j0);
            acc[2u * r + 1u] = load_row(i0 + r, j0 + 4u);
        }
    }
    return acc;
}

// Stores the 8 × 8 block's finished values (rows and columns past C are not stored).
fn store8(i0: u32, j0: u32, acc: array<vec4<f32>, 16>) {
    for (var r = 0u; r < 8u; r++) {
        store_row(0u, i0 + r, j0, acc[2u * r]);
        if (j0 + 4u < P.n) {
            store_row(0u, i0 + r, j0 + 4u, acc[2u * r + 1u]);
        }
    }
}

// The 8 × 8 register block: each invocation computes an 8 × 8 block of C (sixteen vec4
// accumulators), an 8 × 8 workgroup a 64 × 64 block. Per value of k it reads 8 + 8
// values for 64 multiply-adds (the 4 × 4 block: 8 for 16): the variant for adapters
// where each read costs more than the arithmetic (a CPU running the shader). Each
// value of C is summed exactly as in `block_sum` (tiles of TILE over k, each added to
// the running sum in order), so the two blocks give the same bits.
fn block_sum8(gid: vec3<u32>, form: u32) {
    let cell = cell8(gid);
    let i0 = cell.x;
    let j0 = cell.y;
    if (i0 >= P.m || j0 >= P.n) {
        return;
    }
    let last = P.m - 1u;
    let rr = a_refs8(i0, form);
    var acc = running8(i0, j0);
    for (var l0 = P.k_begin; l0 < P.k_end; l0 += TILE) {
        var t: array<vec4<f32>, 16>;
        let l1 = min(l0 + TILE, P.k_end);
        for (var l = l0; l < l1; l++) {
            var av: array<f32, 8>;
            if (form == 1u) {
                let at = a_ref(l, P.m);
                for (var r = 0u; r < 8u; r++) {
                    av[r] = a_read(at, min(i0 + r, last));
                }
            } else {
                for (var r = 0u; r < 8u; r++) {
                    av[r] = a_read(rr[r], l);
                }
            }
            var lo: vec4<f32>;
            var hi: vec4<f32>;
            if (form == 2u) {
                lo = b_nt4(l, j0);
                hi = b_nt4(l, j0 + 4u);
            } else {
                lo = b_nn4(l, j0);
                hi = b_nn4(l, j0 + 4u);
            }
            for (var r = 0u; r < 8u; r++) {
                t[2u * r] += av[r] * lo;
                t[2u * r + 1u] += av[r] * hi;
            }
        }
        for (var q = 0u; q < 16u; q++) {
            acc[q] += t[q];
        }
    }
    store8(i0, j0, acc);
}

@compute @workgroup_size(8, 8)
fn matmul_nn8(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum8(gid, 0u);
}

@compute @workgroup_size(8, 8)
fn matmul_tn8(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum8(gid, 1u);
}

@compute @workgroup_size(8, 8)
fn matmul_nt8(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum8(gid, 2u);
}

// Vec4 views of A (and its chunks) and of B, for the 8 × 8 block's quad entry points.
@group(0) @binding(1) var<storage, read> a_q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b_q: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> a1_q: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> a2_q: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> a3_q: array<vec4<f32>>;

// Values off .. off + 4 of A's stored row at `at` (`at.y` and `off` multiples of 4).
fn a_read_q(at: vec2<u32>, off: u32) -> vec4<f32> {
    let i = (at.y + off) / 4u;
    if (!CHUNKED) {
        return a_q[i];
    }
    switch at.x {
        case 0u: { return a_q[i]; }
        case 1u: { return a1_q[i]; }
        case 2u: { return a2_q[i]; }
        default: { return a3_q[i]; }
    }
}

// `block_sum8` reading its operands four values at a time, where the shape keeps every
// quad aligned (the host checks: NN k and n, TN m and n, NT k multiples of 4): NN and NT
// read A's rows along k, NN B's rows along j, NT B's rows along k, TN A's and B's rows
// along i and j. On llvmpipe a read whose address differs across lanes is a loop over
// the lanes, with a branch each, whatever its width: a quarter of the reads. Every
// value of C is summed as in `block_sum8` (the same products added in the same order):
// the same bits.
fn block_sum8q(gid: vec3<u32>, form: u32) {
    let cell = cell8(gid);
    let i0 = cell.x;
    let j0 = cell.y;
    if (i0 >= P.m || j0 >= P.n) {
        return;
    }
    let rr = a_refs8(i0, form);
    // The second quad of rows (TN) and of columns, at the first where it lies past C:
    // read, never stored.
    let ih = select(i0 + 4u, i0, i0 + 4u >= P.m);
    let jh = select(j0 + 4u, j0, j0 + 4u >= P.n);
    var acc = running8(i0, j0);
    for (var l0 = P.k_begin; l0 < P.k_end; l0 += TILE) {
        var t: array<vec4<f32>, 16>;
        let l1 = min(l0 + TILE, P.k_end);
        if (form == 1u) {
            for (var l = l0; l < l1; l++) {
                let at = a_ref(l, P.m);
                let a_lo = a_read_q(at, i0);
                let a_hi = a_read_q(at, ih);
                let lo = b_q[(l * P.n + j0) / 4u];
                let hi = b_q[(l * P.n + jh) / 4u];
                for (var r = 0u; r < 4u; r++) {
                    t[2u * r] += a_lo[r] * lo;
                    t[2u * r + 1u] += a_lo[r] * hi;
                    t[2u * r + 8u] += a_hi[r] * lo;
                    t[2u * r + 9u] += a_hi[r] * hi;
                }
            }
        } else {
            // k_begin and TILE are multiples of 4, and so (the host checks) is k.
            for (var l = l0; l < l1; l += 4u) {
                var aq: array<vec4<f32>, 8>;
                for (var r = 0u; r < 8u; r++) {
                    aq[r] = a_read_q(rr[r], l);
                }
                var bq: array<vec4<f32>, 8>;
                if (form == 2u) {
                    // op(B)[l .. l + 4, j] is stored row j's values l .. l + 4.
                    for (var c = 0u; c < 8u; c++) {
                        bq[c] = b_q[(min(j0 + c, P.n - 1u) * P.k + l) / 4u];
                    }
                }
                for (var d = 0u; d < 4u; d++) {
                    var lo: vec4<f32>;
                    var hi: vec4<f32>;
                    if (form == 2u) {
                        lo = vec4<f32>(bq[0][d], bq[1][d], bq[2][d], bq[3][d]);
                        hi = vec4<f32>(bq[4][d], bq[5][d], bq[6][d], bq[7][d]);
                    } else {
                        lo = b_q[((l + d) * P.n + j0) / 4u];
                        hi = b_q[((l + d) * P.n + jh) / 4u];
                    }
                    for (var r = 0u; r < 8u; r++) {
                        t[2u * r] += aq[r][d] * lo;
                        t[2u * r + 1u] += aq[r][d] * hi;
                    }
                }
            }
        }
        for (var q = 0u; q < 16u; q++) {
            acc[q] += t[q];
        }
    }
    store8(i0, j0, acc);
}

@compute @workgroup_size(8, 8)
fn matmul_nn8q(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum8q(gid, 0u);
}

@compute @workgroup_size(8, 8)
fn matmul_tn8q(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum8q(gid, 1u);
}

@compute @workgroup_size(8, 8)
fn matmul_nt8q(@builtin(global_invocation_id) gid: vec3<u32>) {
    block_sum8q(gid, 2u);
}
