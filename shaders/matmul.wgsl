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
    let chunk = row / P.rows_per_chunk;
    return vec2<u32>(chunk, (row - chunk * P.rows_per_chunk) * len);
}

fn a_read(at: vec2<u32>, off: u32) -> f32 {
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

fn store_row(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= P.m) {
        return;
    }
    let r = i * P.n;
    c[r + j0] = v.x;
    if (j0 + 1u < P.n) { c[r + j0 + 1u] = v.y; }
    if (j0 + 2u < P.n) { c[r + j0 + 2u] = v.z; }
    if (j0 + 3u < P.n) { c[r + j0 + 3u] = v.w; }
}

// A BLOCK × BLOCK block of C: one vec4 per row.
struct Block {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

fn zero_block() -> Block {
    return Block(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
}

// t + a ⊗ bv: one k's products for the block (a: op(A)'s four rows, bv: op(B)'s four
// columns).
fn add_outer(t: Block, a: vec4<f32>, bv: vec4<f32>) -> Block {
    return Block(t.r0 + a.x * bv, t.r1 + a.y * bv, t.r2 + a.z * bv, t.r3 + a.w * bv);
}

fn add_block(c: Block, t: Block) -> Block {
    return Block(c.r0 + t.r0, c.r1 + t.r1, c.r2 + t.r2, c.r3 + t.r3);
}

fn store(i0: u32, j0: u32, c: Block) {
    store_row(i0, j0, c.r0);
    store_row(i0 + 1u, j0, c.r1);
    store_row(i0 + 2u, j0, c.r2);
    store_row(i0 + 3u, j0, c.r3);
}

// Where the block's four rows of A start (NN, NT: fixed for the whole sum), and how to
// read op(A)[i0 .. i0 + 4, l] and op(B)[l, j0 .. j0 + 4] for each form.
struct Rows {
    r0: vec2<u32>,
    r1: vec2<u32>,
    r2: vec2<u32>,
    r3: vec2<u32>,
}

fn rows_of_a(i0: u32) -> Rows {
    let last = P.m - 1u;
    return Rows(a_ref(i0, P.k), a_ref(min(i0 + 1u, last), P.k), a_ref(min(i0 + 2u, last), P.k), a_ref(min(i0 + 3u, last), P.k));
}

fn a_rows4(rows: Rows, l: u32) -> vec4<f32> {
    return vec4<f32>(a_read(rows.r0, l), a_read(rows.r1, l), a_read(rows.r2, l), a_read(rows.r3, l));
}

fn a_tn4(i0: u32, l: u32) -> vec4<f32> {
    let at = a_ref(l, P.m);
    let last = P.m - 1u;
    return vec4<f32>(a_read(at, i0), a_read(at, min(i0 + 1u, last)), a_read(at, min(i0 + 2u, last)), a_read(at, min(i0 + 3u, last)));
}

// One k's products for each form.
fn k_step(form: u32, rows: Rows, i0: u32, j0: u32, l: u32, t: Block) -> Block {
    switch form {
        case 0u: { return add_outer(t, a_rows4(rows, l), b_nn4(l, j0)); }
        case 1u: { return add_outer(t, a_tn4(i0, l), b_nn4(l, j0)); }
        default: { return add_outer(t, a_rows4(rows, l), b_nt4(l, j0)); }
    }
}

// One whole k-tile (TILE = 16 values of k) summed on its own, written out: no loop.
//
// llvmpipe stops every loop of an invocation once 65,535 iterations have run in all
// (Mesa's loop limiter, one budget per invocation): a loop over the tile's 16 values
// inside the loop over tiles spends it 17 times faster, and a full-batch Xᵀδ over
// k = 10⁶ rows was cut short (wrong sums from k ≈ 60,000 on). Written out, only the loop
// over tiles counts, and the host splits k into dispatches of at most
// `MATMUL_K_PER_DISPATCH` (each continuing the sums of the last, so the bits are those of
// one pass).
fn tile(form: u32, rows: Rows, i0: u32, j0: u32, l0: u32) -> Block {
    var t = zero_block();
    t = k_step(form, rows, i0, j0, l0 + 0u, t);
    t = k_step(form, rows, i0, j0, l0 + 1u, t);
    t = k_step(form, rows, i0, j0, l0 + 2u, t);
    t = k_step(form, rows, i0, j0, l0 + 3u, t);
    t = k_step(form, rows, i0, j0, l0 + 4u, t);
    t = k_step(form, rows, i0, j0, l0 + 5u, t);
    t = k_step(form, rows, i0, j0, l0 + 6u, t);
    t = k_step(form, rows, i0, j0, l0 + 7u, t);
    t = k_step(form, rows, i0, j0, l0 + 8u, t);
    t = k_step(form, rows, i0, j0, l0 + 9u, t);
    t = k_step(form, rows, i0, j0, l0 + 10u, t);
    t = k_step(form, rows, i0, j0, l0 + 11u, t);
    t = k_step(form, rows, i0, j0, l0 + 12u, t);
    t = k_step(form, rows, i0, j0, l0 + 13u, t);
    t = k_step(form, rows, i0, j0, l0 + 14u, t);
    t = k_step(form, rows, i0, j0, l0 + 15u, t);
    return t;
}

// The block at (i0, j0) as far as it is summed (rows and columns past C's read clamped).
fn load_row(i: u32, j0: u32) -> vec4<f32> {
    let r = min(i, P.m - 1u) * P.n;
    let last = P.n - 1u;
    return vec4<f32>(c[r + j0], c[r + min(j0 + 1u, last)], c[r + min(j0 + 2u, last)], c[r + min(j0 + 3u, last)]);
}

fn load(i0: u32, j0: u32) -> Block {
    return Block(load_row(i0, j0), load_row(i0 + 1u, j0), load_row(i0 + 2u, j0), load_row(i0 + 3u, j0));
}

// The block at (i0, j0) over k_begin .. k_end: the whole k-tiles, then the last partial
// tile.
fn block_at(form: u32, i0: u32, j0: u32) {
    var rows: Rows;
    if (form != 1u) {
        rows = rows_of_a(i0);
    }
    var c = zero_block();
    if (P.k_begin > 0u) {
        c = load(i0, j0);
    }
    let whole = P.k_end / TILE * TILE;
    for (var l0 = P.k_begin; l0 < whole; l0 += TILE) {
        c = add_block(c, tile(form, rows, i0, j0, l0));
    }
    if (whole < P.k_end) {
        var t = zero_block();
        for (var l = whole; l < P.k_end; l++) {
            t = k_step(form, rows, i0, j0, l, t);
        }
        c = add_block(c, t);
    }
    store(i0, j0, c);
}

@compute @workgroup_size(8, 8)
fn matmul_nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.y * BLOCK < P.m && gid.x * BLOCK < P.n) {
        block_at(0u, gid.y * BLOCK, gid.x * BLOCK);
    }
}

// TN: A is stored k × m, so op(A)[i0 .. i0 + 4, l] are four neighbours in stored row l.
@compute @workgroup_size(8, 8)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.y * BLOCK < P.m && gid.x * BLOCK < P.n) {
        block_at(1u, gid.y * BLOCK, gid.x * BLOCK);
    }
}

@compute @workgroup_size(8, 8)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.y * BLOCK < P.m && gid.x * BLOCK < P.n) {
        block_at(2u, gid.y * BLOCK, gid.x * BLOCK);
    }
}
