// The activations' arithmetic, the one copy every kernel that applies one compiles in
// front of its own source (the pipelines concatenate the files): `activation.wgsl`,
// `matmul.wgsl`'s epilogues, `mlp_rows.wgsl` and `mlp_epoch.wgsl` through `act` and
// `act_derivative`; `loss.wgsl`, `glm_grad.wgsl` and `glm_epoch.wgsl` through `sigmoid`.
// One copy is what makes a fused kernel give the bits of the separate ones. The twins
// of `cpu::activation::{activate, activate_backward}`.
//
// | ACT | f(z) | f′ from a = f(z) |
// |---|---|---|
// | 0 sigmoid | 1 / (1 + e^−z), stable | a (1 − a) |
// | 1 tanh | tanh z | 1 − a² |
// | 2 relu | max(z, 0) | 1 if a > 0 else 0 |

// The activation: a pipeline variant, fixed when the pipeline is built (kernels that
// only call `sigmoid` leave it at its default).
override ACT: u32 = 0u;

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

// f(z).
fn act(z: f32) -> f32 {
    switch ACT {
        case 0u: { return sigmoid(z); }
        case 1u: { return stable_tanh(z); }
        default: { return max(z, 0.0); }
    }
}

// f′ from the forward output a = f(z).
fn act_derivative(a: f32) -> f32 {
    switch ACT {
        case 0u: { return a * (1.0 - a); }
        case 1u: { return 1.0 - a * a; }
        default: { return select(0.0, 1.0, a > 0.0); }
    }
}

