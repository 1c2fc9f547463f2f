// The hidden activation of the MLP kernels that run a whole step (`mlp_rows.wgsl`,
// `mlp_epoch.wgsl`, which the pipelines compile with this file in front): forward and
// derivative from the forward output.

// The hidden activation: a pipeline variant, fixed when the pipeline is built.
override ACT: u32 = 0u;

// `sigmoid` and `stable_tanh` are `activation.wgsl`'s, character for character (a test
// compares them): the fused step applies the separate kernels' arithmetic.
// Never evaluates e^x for large positive x, as `cpu::activation::sigmoid`.
fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// tanh through e^(−2|z|) ≤ 1, so it cannot overflow for large |z|.
fn stable_tanh(z: f32) -> f32 {
    let e = exp(-2.0 * abs(z));
    return sign(z) * (1.0 - e) / (1.0 + e);
}

fn activate(z: f32) -> f32 {
    switch ACT {
        case 0u: { return sigmoid(z); }
        case 1u: { return stable_tanh(z); }
        default: { return max(z, 0.0); }
    }
}

// f′ from the forward output a, as `activation.wgsl`'s backward.
fn derivative(y: f32) -> f32 {
    switch ACT {
        case 0u: { return y * (1.0 - y); }
        case 1u: { return 1.0 - y * y; }
        default: { return select(0.0, 1.0, y > 0.0); }
    }
}

