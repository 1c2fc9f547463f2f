// Losses fused with their output gradient; the twins of `cpu::loss`.
//
// | entry point | loss (mean over the m rows) | δ = ∂L/∂z |
// |---|---|---|
// | mse | 1/m Σᵢ Σⱼ (zᵢⱼ − yᵢⱼ)² | 2/m (z − y) |
// | sigmoid_bce | 1/m Σᵢ [softplus(zᵢ) − yᵢ zᵢ] | 1/m (σ(z) − y) |
// | softmax_cce | 1/m Σᵢ [logsumexp(zᵢ) − zᵢ,yᵢ] | 1/m (softmax(z) − onehot(y)) |
//
// Targets are read through the same gather index as the features (row idx[idx_off + r]),
// or in order from row `idx_off` when `use_idx = 0`. Real targets are stored as f32 bits
// in the same u32 binding as labels, so one layout serves every loss.
//
// Weights (`use_w = 1`): row t's loss and gradient are scaled by w[t], read like its
// target; the mean still divides by m (scikit-learn's sample_weight × class_weight).
//
// The batch loss is reduced on the device by ONE workgroup: invocation t handles rows
// t, t + WG, … in order, then a fixed tree reduction; the mean lands in losses[slot].
// No atomics, so the loss repeats bit for bit.
//
// Halting: `halting.wgsl`'s `record_loss` (compiled in front of this file) decides, with
// `halt_mode` ≠ 0, before this step's update runs, whether training stops here.

struct Params {
    m: u32,
    cols: u32,
    use_idx: u32,
    idx_off: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    use_w: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> halt: array<u32>;
@group(0) @binding(7) var<storage, read> w: array<f32>;

var<workgroup> part: array<f32, WG>;

fn target_row(r: u32) -> u32 {
    if (P.use_idx == 1u) {
        return idx[P.idx_off + r];
    }
    return P.idx_off + r;
}

fn weight(t: u32) -> f32 {
    if (P.use_w == 1u) {
        return w[t];
    }
    return 1.0;
}

// Tree-reduces the invocations' partial sums and stores their mean in losses[slot].
fn finish(t: u32, acc: f32) {
    part[t] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            part[t] += part[t + s];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        record_loss(part[0] / f32(P.m), P.slot, P.halt_mode, P.tol);
    }
}

@compute @workgroup_size(256)
fn mse(@builtin(local_invocation_id) lid: vec3<u32>) {
    let scale = 2.0 / f32(P.m);
    var acc = 0.0;
    for (var r = lid.x; r < P.m; r += WG) {
        let t = target_row(r);
        let wr = weight(t);
        for (var j = 0u; j < P.cols; j++) {
            let diff = z[r * P.cols + j] - bitcast<f32>(targets[t * P.cols + j]);
            acc += wr * diff * diff;
            dz[r * P.cols + j] = scale * wr * diff;
        }
    }
    finish(lid.x, acc);
}

@compute @workgroup_size(256)
fn sigmoid_bce(@builtin(local_invocation_id) lid: vec3<u32>) {
    let inv_m = 1.0 / f32(P.m);
    var acc = 0.0;
    for (var r = lid.x; r < P.m; r += WG) {
        let t = target_row(r);
        let y = f32(targets[t]);
        let wr = weight(t);
        let v = z[r];
        // softplus(v) − y v, from the logit: finite for any finite v.
        acc += wr * (max(v, 0.0) - y * v + log(1.0 + exp(-abs(v))));
        dz[r] = wr * (sigmoid(v) - y) * inv_m;
    }
    finish(lid.x, acc);
}

@compute @workgroup_size(256)
fn softmax_cce(@builtin(local_invocation_id) lid: vec3<u32>) {
    let inv_m = 1.0 / f32(P.m);
    var acc = 0.0;
    for (var r = lid.x; r < P.m; r += WG) {
        let t = target_row(r);
        let label = targets[t];
        let wr = weight(t);
        let base = r * P.cols;
        var mx = z[base];
        for (var j = 1u; j < P.cols; j++) {
            mx = max(mx, z[base + j]);
        }
        var denom = 0.0;
        for (var j = 0u; j < P.cols; j++) {
            denom += exp(z[base + j] - mx);
        }
        let lse = mx + log(denom);
        acc += wr * (lse - z[base + label]);
        for (var j = 0u; j < P.cols; j++) {
            let p = exp(z[base + j] - lse);
            dz[base + j] = wr * (p - select(0.0, 1.0, j == label)) * inv_m;
        }
    }
    finish(lid.x, acc);
}
