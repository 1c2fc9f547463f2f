//! Element-wise activations and their derivatives.
//!
//! Derivatives are written in terms of the activation's *output* `a = f(z)`, which the
//! forward pass keeps anyway (seed 001: `∂a/∂z = diag[a (1 − a)]` for the sigmoid):
//!
//! | activation | f(z) | f′ from a = f(z) |
//! |---|---|---|
//! | sigmoid | 1 / (1 + e^−z) | a (1 − a) |
//! | tanh | tanh z | 1 − a² |
//! | relu | max(z, 0) | 1 if a > 0 else 0 |

use super::Real;

pub use crate::program::{Activation, sigmoid};

/// `out[i] = f(z[i])`.
///
/// # Example
/// ```
/// use gradflow::cpu::activation::{activate, Activation};
/// let mut a = [0f32; 3];
/// activate(Activation::Relu, &[-1.0, 0.0, 2.0], &mut a);
/// assert_eq!(a, [0.0, 0.0, 2.0]);
/// ```
pub fn activate<T: Real>(f: Activation, z: &[T], out: &mut [T]) {
    debug_assert!(out.len() >= z.len());
    for (o, &v) in out.iter_mut().zip(z) {
        *o = match f {
            Activation::Sigmoid => sigmoid(v),
            Activation::Tanh => v.tanh(),
            Activation::Relu => v.max(T::zero()),
        };
    }
}

/// Back-propagates through the activation in place: `grad[i] *= f′` evaluated from the
/// forward output `a[i]` (see the module table).
///
/// # Example
/// ```
/// use gradflow::cpu::activation::{activate_backward, Activation};
/// let mut g = [1.0f32, 1.0];
/// activate_backward(Activation::Sigmoid, &[0.5, 0.25], &mut g);
/// assert_eq!(g, [0.25, 0.1875]);
/// ```
pub fn activate_backward<T: Real>(f: Activation, a: &[T], grad: &mut [T]) {
    debug_assert!(a.len() >= grad.len());
    for (g, &y) in grad.iter_mut().zip(a) {
        let d = match f {
            Activation::Sigmoid => y * (T::one() - y),
            Activation::Tanh => T::one() - y * y,
            Activation::Relu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
        };
        *g = *g * d;
    }
}
