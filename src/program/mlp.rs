//! Seed 001's network as a program: the one definition of the two-layer MLP's step, read
//! by the model ([`Spec::program`](crate::model::Spec::program)) and by the GPU tuner's
//! probe of the fused MLP step.

use super::{Activation, Dim, Layout, LossKind, MlpBufs, Op, Program, ProgramBuilder, Src};

/// The training program of a two-layer MLP with `p` inputs, `h` hidden units of
/// activation `f` and `k` classes: `z¹ = X W¹ + b¹`, `a = f(z¹)`, `z² = a W² + b²`,
/// softmax + CCE, and its backpropagation.
pub(crate) fn mlp(p: usize, h: usize, k: usize, f: Activation) -> Program {
    let mut b = ProgramBuilder::default();
    let (w1, gw1) = b.param("W1", p, h, false);
    let (b1, gb1) = b.param("b1", 1, h, true);
    let (w2, gw2) = b.param("W2", h, k, false);
    let (b2, gb2) = b.param("b2", 1, k, true);
    let z1 = b.batch_buf("z1", h);
    let a1 = b.batch_buf("a1", h);
    let z2 = b.batch_buf("z2", k);
    let dz2 = b.batch_buf("dL/dz2", k);
    let da1 = b.batch_buf("dL/da1 → dL/dz1", h);
    let forward = vec![
        Op::Matmul {
            layout: Layout::NN,
            m: Dim::Batch,
            k: Dim::Fixed(p),
            n: Dim::Fixed(h),
            a: Src::Features,
            b: w1,
            c: z1,
        },
        Op::BiasAdd {
            z: z1,
            cols: h,
            bias: b1,
        },
        Op::Activate {
            f,
            z: z1,
            a: a1,
            cols: h,
        },
        Op::Matmul {
            layout: Layout::NN,
            m: Dim::Batch,
            k: Dim::Fixed(h),
            n: Dim::Fixed(k),
            a: Src::Buf(a1),
            b: w2,
            c: z2,
        },
        Op::BiasAdd {
            z: z2,
            cols: k,
            bias: b2,
        },
    ];
    // Seed 001: ∂L/∂W² = Σₙ aⁿᵀ δ²ⁿ, ∂L/∂b² = Σₙ δ²ⁿ, ∂L/∂a = δ² W²ᵀ,
    // δ¹ = ∂L/∂a ⊙ f′(a), ∂L/∂W¹ = Σₙ xⁿᵀ δ¹ⁿ, ∂L/∂b¹ = Σₙ δ¹ⁿ.
    let backward = vec![
        Op::Matmul {
            layout: Layout::TN,
            m: Dim::Fixed(h),
            k: Dim::Batch,
            n: Dim::Fixed(k),
            a: Src::Buf(a1),
            b: dz2,
            c: gw2,
        },
        Op::ColSums {
            x: dz2,
            cols: k,
            out: gb2,
        },
        Op::Matmul {
            layout: Layout::NT,
            m: Dim::Batch,
            k: Dim::Fixed(k),
            n: Dim::Fixed(h),
            a: Src::Buf(dz2),
            b: w2,
            c: da1,
        },
        Op::ActivateBackward {
            f,
            a: a1,
            grad: da1,
            cols: h,
        },
        Op::Matmul {
            layout: Layout::TN,
            m: Dim::Fixed(p),
            k: Dim::Batch,
            n: Dim::Fixed(h),
            a: Src::Features,
            b: da1,
            c: gw1,
        },
        Op::ColSums {
            x: da1,
            cols: h,
            out: gb1,
        },
    ];
    let mut program = b.finish(forward, z2, k, LossKind::SoftmaxCce, dz2, backward);
    program.mlp = Some(MlpBufs {
        params: [w1, b1, w2, b2],
        grads: [gw1, gb1, gw2, gb2],
        a: a1,
        delta2: dz2,
        delta1: da1,
        hidden: h,
        classes: k,
        activation: f,
    });
    program
}
