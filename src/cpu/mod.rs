//! CPU reference kernels: the twin of every GPU kernel.
//!
//! One module per kernel family of the design (`docs/ARCHITECTURE.md`). Each kernel is
//! written for clarity and exactness rather than speed: plain loops in a fixed order, with
//! sums accumulated in `f64` and rounded once. They are the oracle that the GPU kernels
//! (and any faster CPU path) are tested against.
//!
//! Every kernel is generic over [`Real`] (`f32` or `f64`). Training runs them in `f32`,
//! the precision of the GPU; the gradient check runs the *same* kernels in `f64`, so that
//! a finite-difference comparison tests the derivation and not rounding.
//!
//! Shapes are passed explicitly and checked with `debug_assert!`: the callers (the
//! [`Engine`](crate::engine::CpuEngine)) size every buffer from the model's program, so a
//! mismatch is a bug in gradflow, not bad user input.

pub mod activation;
pub mod bias;
pub mod fast;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod update;

use std::borrow::Cow;
use std::fmt::Debug;

/// The floating-point types the reference kernels run in: `f32` and `f64`.
pub trait Real: num_traits::Float + Debug + Default + Send + Sync + 'static {
    /// Converts from `f64` (rounding to nearest).
    fn of(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn f64(self) -> f64;
    /// Views `f32` data in this type: borrowed for `f32`, converted for `f64`.
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]>;
    /// The same values as `f32`, when this type is `f32` (the [`fast`] kernels' type).
    fn as_f32(v: &[Self]) -> Option<&[f32]>;
    /// As [`Real::as_f32`], mutably.
    fn as_f32_mut(v: &mut [Self]) -> Option<&mut [f32]>;
}

impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]> {
        Cow::Borrowed(v)
    }
    fn as_f32(v: &[Self]) -> Option<&[f32]> {
        Some(v)
    }
    fn as_f32_mut(v: &mut [Self]) -> Option<&mut [f32]> {
        Some(v)
    }
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]> {
        Cow::Owned(v.iter().map(|&x| f64::from(x)).collect())
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
