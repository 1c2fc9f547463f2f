// C (m × n) = op(A) · op(B), row-major; the twin of `cpu::matmul::matmul`.
//
// | entry point | A stored as | B stored as |
// |---|---|---|
// | matmul_nn | m × k | k × n |
// | matmul_tn | k × m | k × n |
// | matmul_nt | m × k | n × k |
//
// Each workgroup computes a TILE × TILE block of C; the k dimension is walked in tiles
// staged through workgroup memory. Every invocation sums its element over k in increasing
// order, so the result does not depend on the grid and repeats bit for bit.
//
// Row gather: with `use_idx = 1`, stored row r of A is read from row idx[idx_off + r] of
// `a` (the shuffled batch read in place). Out-of-range tile elements load 0, so any shape
// works, multiples of the tile or not.
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
    _pad1: u32,
    _pad2: u32,
}

const TILE: u32 = 16u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read> a1: array<f32>;
@group(0) @binding(6) var<storage, read> a2: array<f32>;
@group(0) @binding(7) var<storage, read> a3: array<f32>;

var<workgroup> ta: array<array<f32, TILE>, TILE>;
var<workgroup> tb: array<array<f32, TILE>, TILE>;

// Stored row r of A, through the gather index when there is one.
fn a_row(r: u32) -> u32 {
    if (P.use_idx == 1u) {
        return idx[P.idx_off + r];
    }
    return r;
}

// Element `col` of A's row `row` (rows `len` values long), from the chunk holding it.
fn a_at(row: u32, len: u32, col: u32) -> f32 {
    let chunk = row / P.rows_per_chunk;
    let at = (row - chunk * P.rows_per_chunk) * len + col;
    switch chunk {
        case 0u: { return a[at]; }
        case 1u: { return a1[at]; }
        case 2u: { return a2[at]; }
        default: { return a3[at]; }
    }
}

// op(A)[i, l] for each layout (caller checks i < m, l < k).
fn a_nn(i: u32, l: u32) -> f32 { return a_at(a_row(i), P.k, l); }
fn a_tn(i: u32, l: u32) -> f32 { return a_at(a_row(l), P.m, i); }
// op(B)[l, j].
fn b_nn(l: u32, j: u32) -> f32 { return b[l * P.n + j]; }
fn b_nt(l: u32, j: u32) -> f32 { return b[j * P.k + l]; }

// One k-tile's contribution to c[i, j], from the staged tiles.
fn tile_dot(ly: u32, lx: u32) -> f32 {
    var acc = 0.0;
    for (var t = 0u; t < TILE; t++) {
        acc += ta[ly][t] * tb[t][lx];
    }
    return acc;
}

fn store(i: u32, j: u32, acc: f32) {
    if (i < P.m && j < P.n) {
        c[i * P.n + j] = acc;
    }
}

@compute @workgroup_size(16, 16)
fn matmul_nn(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.y * TILE + lid.y;
    let j = wg.x * TILE + lid.x;
    var acc = 0.0;
    for (var l0 = 0u; l0 < P.k; l0 += TILE) {
        // Tile of op(A): rows i0.., cols l0..; tile of op(B): rows l0.., cols j0...
        let la = l0 + lid.x;
        let lb = l0 + lid.y;
        ta[lid.y][lid.x] = select(0.0, a_nn(min(i, P.m - 1u), min(la, P.k - 1u)), i < P.m && la < P.k);
        tb[lid.y][lid.x] = select(0.0, b_nn(min(lb, P.k - 1u), min(j, P.n - 1u)), lb < P.k && j < P.n);
        workgroupBarrier();
        acc += tile_dot(lid.y, lid.x);
        workgroupBarrier();
    }
    store(i, j, acc);
}

@compute @workgroup_size(16, 16)
fn matmul_tn(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = wg.x * TILE + lid.x;
    let i = wg.y * TILE + lid.y;
    let i0 = wg.y * TILE;
    var acc = 0.0;
    for (var l0 = 0u; l0 < P.k; l0 += TILE) {
        // A is stored k × m: let lid.x walk A's stored columns (i) so that neighbouring
        // invocations read neighbouring addresses, and store the tile transposed.
        let ia = i0 + lid.x;
        let la = l0 + lid.y;
        ta[lid.x][lid.y] = select(0.0, a_tn(min(ia, P.m - 1u), min(la, P.k - 1u)), ia < P.m && la < P.k);
        let lb = l0 + lid.y;
        tb[lid.y][lid.x] = select(0.0, b_nn(min(lb, P.k - 1u), min(j, P.n - 1u)), lb < P.k && j < P.n);
        workgroupBarrier();
        acc += tile_dot(lid.y, lid.x);
        workgroupBarrier();
    }
    store(i, j, acc);
}

@compute @workgroup_size(16, 16)
fn matmul_nt(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.y * TILE + lid.y;
    let j = wg.x * TILE + lid.x;
    let j0 = wg.x * TILE;
    var acc = 0.0;
    for (var l0 = 0u; l0 < P.k; l0 += TILE) {
        let la = l0 + lid.x;
        ta[lid.y][lid.x] = select(0.0, a_nn(min(i, P.m - 1u), min(la, P.k - 1u)), i < P.m && la < P.k);
        // B is stored n × k: lid.x walks k (contiguous), the tile is stored transposed.
        let jb = j0 + lid.y;
        let lb = l0 + lid.x;
        tb[lid.x][lid.y] = select(0.0, b_nt(min(lb, P.k - 1u), min(jb, P.n - 1u)), lb < P.k && jb < P.n);
        workgroupBarrier();
        acc += tile_dot(lid.y, lid.x);
        workgroupBarrier();
    }
    store(i, j, acc);
}
