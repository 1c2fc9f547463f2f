// The optimizers' rules as functions of values: the twins of `cpu::update::apply`,
// shared by update.wgsl (one tensor a dispatch) and update_all.wgsl (up to four), which
// the pipelines compile with this file in front. The order of operations is the CPU
// twin's:
//   g = grad + l2·θ;  the rule's step;  with l1 > 0, θ = sign(θ)·max(|θ| − lr·l1, 0).
// A rule takes (θ, gradient, state 1, state 2) and returns (θ, state 1, state 2): the
// state is a velocity for momentum, the two moments for Adam, the squared-gradient sum
// for AdaGrad, unused by SGD.

// One step's scalars for one tensor (weights and biases may differ).
struct Scal {
    lr: f32,
    l2: f32,
    l1: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    c1: f32,
    c2: f32,
}

// The L1 truncation: a weight that would cross zero stops at zero.
fn truncate(theta: f32, s: Scal) -> f32 {
    let t = s.lr * s.l1;
    if (t <= 0.0) {
        return theta;
    }
    if (theta > t) {
        return theta - t;
    }
    if (theta < -t) {
        return theta + t;
    }
    return 0.0;
}

// θ −= lr·g.
fn sgd_rule(x: vec4<f32>, s: Scal) -> vec3<f32> {
    let g = x.y + s.l2 * x.x;
    return vec3<f32>(truncate(x.x - s.lr * g, s), x.z, x.w);
}

// v = μv + g; θ −= lr·v, or lr·(g + μv) with Nesterov.
fn momentum_rule(x: vec4<f32>, s: Scal, nesterov: bool) -> vec3<f32> {
    let g = x.y + s.l2 * x.x;
    let v = s.beta1 * x.z + g;
    var d = v;
    if (nesterov) {
        d = g + s.beta1 * v;
    }
    return vec3<f32>(truncate(x.x - s.lr * d, s), v, x.w);
}

// m = β₁m + (1 − β₁)g; v = β₂v + (1 − β₂)g²; θ −= lr·(m·c₁)/(√(v·c₂) + ε).
fn adam_rule(x: vec4<f32>, s: Scal) -> vec3<f32> {
    let g = x.y + s.l2 * x.x;
    let m = s.beta1 * x.z + (1.0 - s.beta1) * g;
    let v = s.beta2 * x.w + (1.0 - s.beta2) * g * g;
    return vec3<f32>(truncate(x.x - s.lr * (m * s.c1) / (sqrt(v * s.c2) + s.eps), s), m, v);
}

// s = s + g²; θ −= lr·g/(√s + ε).
fn adagrad_rule(x: vec4<f32>, s: Scal) -> vec3<f32> {
    let g = x.y + s.l2 * x.x;
    let acc = x.z + g * g;
    return vec3<f32>(truncate(x.x - s.lr * g / (sqrt(acc) + s.eps), s), acc, x.w);
}
