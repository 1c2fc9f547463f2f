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
//! [`Engine`](crate::cpu::engine::CpuEngine)) size every buffer from the model's program, so a
//! mismatch is a bug in gradflow, not bad user input.

pub mod activation;
pub mod bias;
pub mod engine;
pub mod fast;
pub mod kernels;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod update;

pub use crate::program::Real;
