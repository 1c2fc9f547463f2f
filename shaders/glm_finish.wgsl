// The second pass of `glm_grad.wgsl`: adds the segments' partial sums in segment order
// and writes the gradients (∂w: p values, ∂b: one), the mean loss to losses[slot], and
// the halting decision (`halting.wgsl`, compiled in front of this file) before any update
// of this step runs.
//
// One workgroup. The blocks are p + 2 values padded to a multiple of 4 (`part_cols`):
// for up to WG quads, WG / quads groups of invocations each sum a contiguous run of
// segments for one quad (a vec4 read per segment), and the runs are added in group order;
// for wider rows, invocation t sums every segment of columns t, t + WG, …. The order
// depends on the shape alone: the result repeats bit for bit.

struct Params {
    p: u32,
    segments: u32,
    // Rows m of the step (the loss is the mean over them).
    len: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;
// Columns per invocation when the quads outnumber WG (p ≤ 1024: at most 5).
const PER: u32 = 5u;

@group(0) @binding(0) var<uniform> P: Params;
// The partial sums, read four values at a time (each block starts on a vec4).
@group(0) @binding(1) var<storage, read> part4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> gw: array<f32>;
@group(0) @binding(3) var<storage, read_write> gb: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> halt: array<u32>;

var<workgroup> red: array<vec4<f32>, WG>;

// Column c of the summed partials: a weight's gradient, the bias's, or the loss sum
// (the block's padding is dropped).
fn emit(c: u32, v: f32) {
    if (c < P.p) {
        gw[c] = v;
    } else if (c == P.p) {
        gb[0] = v;
    } else if (c == P.p + 1u) {
        record_loss(v / f32(P.len), P.slot, P.halt_mode, P.tol);
    }
}

@compute @workgroup_size(256)
fn glm_finish(@builtin(local_invocation_index) lid: u32) {
    // The twin of `glm_grad.wgsl`'s `part_cols`.
    let quads = (P.p + 5u) / 4u;
    if (quads <= WG) {
        let groups = WG / quads;
        let per = (P.segments + groups - 1u) / groups;
        let c = lid % quads;
        let k = lid / quads;
        var s = vec4<f32>(0.0);
        if (k < groups) {
            let s1 = min(k * per + per, P.segments);
            // Eight reads issued before their adds, which keep the one-by-one order (the
            // same bits): a run of hundreds of segments is a chain of dependent adds, and
            // without the reads in flight together each would wait out a memory latency.
            var i = k * per;
            for (; i + 8u <= s1; i += 8u) {
                let v0 = part4[i * quads + c];
                let v1 = part4[(i + 1u) * quads + c];
                let v2 = part4[(i + 2u) * quads + c];
                let v3 = part4[(i + 3u) * quads + c];
                let v4 = part4[(i + 4u) * quads + c];
                let v5 = part4[(i + 5u) * quads + c];
                let v6 = part4[(i + 6u) * quads + c];
                let v7 = part4[(i + 7u) * quads + c];
                s += v0;
                s += v1;
                s += v2;
                s += v3;
                s += v4;
                s += v5;
                s += v6;
                s += v7;
            }
            for (; i < s1; i++) {
                s += part4[i * quads + c];
            }
        }
        red[lid] = s;
        workgroupBarrier();
        if (lid < quads) {
            var total = vec4<f32>(0.0);
            for (var j = 0u; j < groups; j++) {
                total += red[j * quads + lid];
            }
            emit(4u * lid, total.x);
            emit(4u * lid + 1u, total.y);
            emit(4u * lid + 2u, total.z);
            emit(4u * lid + 3u, total.w);
        }
    } else {
        let cols = 4u * quads;
        for (var q = 0u; q < PER; q++) {
            let c = lid + q * WG;
            if (c < P.p + 2u) {
                var s = 0.0;
                for (var i = 0u; i < P.segments; i++) {
                    let at = i * cols + c;
                    s += part4[at / 4u][at % 4u];
                }
                emit(c, s);
            }
        }
    }
}
