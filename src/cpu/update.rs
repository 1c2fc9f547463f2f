//! Parameter updates: the optimizers, with the penalties applied inside the update.
//!
//! Every update has the same shape: it reads a parameter tensor, its gradient, two
//! per-parameter state tensors (unused by plain SGD; a velocity for momentum; the two
//! moments for Adam; the squared-gradient sum for AdaGrad) and the [`Scalars`] of the
//! step, and writes the parameter and the state in place. The GPU's `update.wgsl` has one
//! entry point per [`Rule`] with exactly this arithmetic.
//!
//! Order of operations, for every rule (PyTorch's, with scikit-learn's L1 truncation):
//!
//! 1. `g = ∂L/∂θ + l2 · θ` (coupled L2 penalty, or weight decay; 0 for biases);
//! 2. the rule's step with `g`;
//! 3. with `l1 > 0`: `θ ← sign(θ) · max(|θ| − lr · l1, 0)` (the truncated-gradient step:
//!    a weight that would cross zero stops at zero).

use super::Real;

pub use crate::program::{Rule, Scalars, StepScalars};

/// Applies `rule` to `param` with gradient `grad` and state `s1`, `s2` (each as long as
/// `param`; untouched when the rule needs fewer).
///
/// # Example
/// ```
/// use gradflow::cpu::update::{apply, Rule, Scalars};
/// // Adam's first step moves every weight by lr (times the sign of its gradient).
/// let (mut w, mut m, mut v) = ([1.0f64, -2.0], [0.0; 2], [0.0; 2]);
/// let s = Scalars { beta1: 0.9, beta2: 0.999, eps: 1e-8, c1: 10.0, c2: 1000.0, ..Scalars::sgd(0.1) };
/// apply(Rule::Adam, &mut w, &[0.5, -3.0], &mut m, &mut v, &s);
/// assert!((w[0] - 0.9).abs() < 1e-7 && (w[1] + 1.9).abs() < 1e-7);
/// ```
pub fn apply<T: Real>(
    rule: Rule,
    param: &mut [T],
    grad: &[T],
    s1: &mut [T],
    s2: &mut [T],
    s: &Scalars<T>,
) {
    debug_assert!(grad.len() >= param.len());
    let n = param.len();
    let (grad, s1, s2) = (&grad[..n], &mut s1[..n], &mut s2[..n]);
    for i in 0..n {
        let theta = param[i];
        let g = grad[i] + s.l2 * theta;
        let next = match rule {
            Rule::Sgd => theta - s.lr * g,
            Rule::Momentum { nesterov } => {
                let v = s.beta1 * s1[i] + g;
                s1[i] = v;
                let d = if nesterov { g + s.beta1 * v } else { v };
                theta - s.lr * d
            }
            Rule::Adam => {
                let one = T::one();
                let m = s.beta1 * s1[i] + (one - s.beta1) * g;
                let v = s.beta2 * s2[i] + (one - s.beta2) * g * g;
                s1[i] = m;
                s2[i] = v;
                theta - s.lr * (m * s.c1) / ((v * s.c2).sqrt() + s.eps)
            }
            Rule::AdaGrad => {
                let acc = s1[i] + g * g;
                s1[i] = acc;
                theta - s.lr * g / (acc.sqrt() + s.eps)
            }
        };
        param[i] = truncate(next, s.lr * s.l1);
    }
}

/// The L1 truncation: `sign(θ) · max(|θ| − t, 0)`; identity for `t = 0`.
fn truncate<T: Real>(theta: T, t: T) -> T {
    if t <= T::zero() {
        theta
    } else if theta > t {
        theta - t
    } else if theta < -t {
        theta + t
    } else {
        T::zero()
    }
}

/// Plain SGD: `param -= lr · grad`.
///
/// # Example
/// ```
/// // Seed 000, step 5: w⁽¹⁾ = w⁽⁰⁾ − η ∂L/∂w with η = 0.1.
/// let mut w = [1.0f32, 1.0];
/// gradflow::cpu::update::sgd(&mut w, &[-6.0, -4.266_667], 0.1);
/// assert!((w[0] - 1.6).abs() < 1e-6 && (w[1] - 1.426_666_7).abs() < 1e-6);
/// ```
pub fn sgd<T: Real>(param: &mut [T], grad: &[T], lr: T) {
    debug_assert!(grad.len() >= param.len());
    for (p, &g) in param.iter_mut().zip(grad) {
        *p = *p - lr * g;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed steps on one weight θ₀ = 1 with gradients 0.5 then −0.25.
    #[test]
    fn rules_step_by_hand() {
        let base = Scalars::sgd(0.1f64);
        let run = |rule: Rule, s: Scalars<f64>, s2nd: Scalars<f64>| {
            let (mut w, mut a, mut b) = ([1.0f64], [0.0], [0.0]);
            apply(rule, &mut w, &[0.5], &mut a, &mut b, &s);
            let first = w[0];
            apply(rule, &mut w, &[-0.25], &mut a, &mut b, &s2nd);
            (first, w[0])
        };
        // SGD: 1 − 0.05 = 0.95; 0.95 + 0.025 = 0.975.
        let (a, b) = run(Rule::Sgd, base, base);
        assert!((a - 0.95).abs() < 1e-15 && (b - 0.975).abs() < 1e-15);
        // Momentum μ = 0.9: v = 0.5, θ = 0.95; v = 0.45 − 0.25 = 0.2, θ = 0.93.
        let m = Scalars { beta1: 0.9, ..base };
        let (a, b) = run(Rule::Momentum { nesterov: false }, m, m);
        assert!(
            (a - 0.95).abs() < 1e-15 && (b - 0.93).abs() < 1e-15,
            "{a} {b}"
        );
        // Nesterov: d = g + μv = 0.5 + 0.45 = 0.95, θ = 0.905;
        // v = 0.2, d = −0.25 + 0.18 = −0.07, θ = 0.912.
        let (a, b) = run(Rule::Momentum { nesterov: true }, m, m);
        assert!(
            (a - 0.905).abs() < 1e-15 && (b - 0.912).abs() < 1e-12,
            "{a} {b}"
        );
        // Adam β = (0.9, 0.999), ε = 0: step 1 moves by lr exactly: θ = 0.9.
        // Step 2: m = 0.045 − 0.025 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225;
        // m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999; θ = 0.9 − 0.1·m̂/√v̂.
        let adam = |t: i32| Scalars {
            beta1: 0.9,
            beta2: 0.999,
            eps: 0.0,
            c1: 1.0 / (1.0 - 0.9f64.powi(t)),
            c2: 1.0 / (1.0 - 0.999f64.powi(t)),
            ..base
        };
        let (a, b) = run(Rule::Adam, adam(1), adam(2));
        let want = 0.9 - 0.1 * (0.02 / 0.19) / (0.000_312_25f64 / 0.001_999).sqrt();
        assert!(
            (a - 0.9).abs() < 1e-12 && (b - want).abs() < 1e-12,
            "{a} {b} {want}"
        );
        // AdaGrad ε = 0: s = 0.25, θ = 1 − 0.1·0.5/0.5 = 0.9;
        // s = 0.3125, θ = 0.9 + 0.1·0.25/√0.3125.
        let (a, b) = run(Rule::AdaGrad, base, base);
        let want = 0.9 + 0.025 / 0.3125f64.sqrt();
        assert!(
            (a - 0.9).abs() < 1e-15 && (b - want).abs() < 1e-12,
            "{a} {b}"
        );
    }

    /// L2 adds l2·θ to the gradient; L1 truncates at zero instead of crossing it.
    #[test]
    fn penalties() {
        let (mut w, mut a, mut b) = ([1.0f64, 0.02, -0.5], [0.0; 3], [0.0; 3]);
        let s = Scalars {
            l2: 0.5,
            l1: 0.3,
            ..Scalars::sgd(0.1f64)
        };
        apply(Rule::Sgd, &mut w, &[0.0; 3], &mut a, &mut b, &s);
        // θ − 0.1·0.5·θ = 0.95θ, then shrunk by 0.03 towards 0 (0.019 → 0).
        assert!((w[0] - 0.92).abs() < 1e-15);
        assert_eq!(w[1], 0.0);
        assert!((w[2] + 0.445).abs() < 1e-15);
    }
}
