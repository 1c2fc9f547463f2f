//! Parameter updates.
//!
//! Every update has the same shape: it reads a parameter tensor, its gradient, a list of
//! per-parameter state tensors (none for plain SGD; one velocity for momentum; two moments
//! for Adam) and a few scalars, and writes the parameter and the state in place. Later
//! optimizers add a kernel of this shape without changing the models.

use super::Real;

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
