//! A model's training step as data: a fixed list of kernel calls over named buffers.
//!
//! This is the contract between the models and the backends. A model does not run
//! anything; it *describes* its forward and backward pass as a [`Program`], and a backend
//! executes it: the [`CpuEngine`](crate::cpu::engine::CpuEngine) by calling the reference
//! kernels in [`crate::cpu`], the GPU backend by recording one dispatch per op or a fused
//! kernel for a pattern it recognises (with the bind group for each op created once,
//! since the buffers never change during a fit).
//! Verify mode and the gradient check run the very same program on the CPU, so there is
//! one description of each model's mathematics, not one per backend.
//!
//! A step is: `forward` (features → `output`), the fused loss (`output`, targets →
//! loss and `delta` = ∂L/∂output), `backward` (delta → every parameter's gradient), then
//! one update per [`ParamDecl`].

mod mlp;
mod words;

pub(crate) use mlp::mlp;

pub use words::{Activation, Layout, LossKind, Real, Rule, Scalars, StepScalars, sigmoid};

use crate::error::{Error, Result};

/// Index of a buffer in [`Program::bufs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufId(pub usize);

/// A row count: fixed, or the current batch's size (which varies for a last partial batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// The number of rows in the current batch.
    Batch,
}

impl Dim {
    /// The size for a batch of `batch` rows.
    pub fn eval(self, batch: usize) -> usize {
        match self {
            Dim::Fixed(v) => v,
            Dim::Batch => batch,
        }
    }
}

/// An operand that is either a program buffer or the batch's rows of the features `X`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Src {
    /// A program buffer.
    Buf(BufId),
    /// The current batch's feature rows (n × p dataset, gathered through the epoch order).
    Features,
}

/// One kernel call. Shapes follow the kernels in [`crate::cpu`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `c = op(a) · op(b)`, see [`crate::cpu::matmul`].
    Matmul {
        /// Which operands are transposed.
        layout: Layout,
        /// Rows of C.
        m: Dim,
        /// Inner dimension.
        k: Dim,
        /// Columns of C.
        n: Dim,
        /// Left operand.
        a: Src,
        /// Right operand.
        b: BufId,
        /// Output.
        c: BufId,
    },
    /// `z[i, :] += bias`.
    BiasAdd {
        /// Matrix, batch rows × `cols`.
        z: BufId,
        /// Columns.
        cols: usize,
        /// Row vector of length `cols`.
        bias: BufId,
    },
    /// `a = f(z)`, element-wise over batch rows × `cols`.
    Activate {
        /// Activation function.
        f: Activation,
        /// Input.
        z: BufId,
        /// Output.
        a: BufId,
        /// Columns.
        cols: usize,
    },
    /// `grad *= f′(a)` in place, batch rows × `cols`.
    ActivateBackward {
        /// Activation function.
        f: Activation,
        /// The forward output `a = f(z)`.
        a: BufId,
        /// Gradient, updated in place.
        grad: BufId,
        /// Columns.
        cols: usize,
    },
    /// `out = 1ᵀ x`: column sums of batch rows × `cols`.
    ColSums {
        /// Input.
        x: BufId,
        /// Columns.
        cols: usize,
        /// Output, length `cols`.
        out: BufId,
    },
}

/// A buffer of the program: `rows × cols` values.
#[derive(Debug, Clone, PartialEq)]
pub struct BufDecl {
    /// Name, for reports (`W1`, `grad b2`, `z1`).
    pub name: String,
    /// Rows: fixed for parameters, the batch for activations.
    pub rows: Dim,
    /// Columns.
    pub cols: usize,
}

impl BufDecl {
    /// Number of values for a batch capacity of `cap` rows.
    pub fn len(&self, cap: usize) -> usize {
        self.rows.eval(cap) * self.cols
    }
}

/// A trainable tensor: its value buffer and its gradient buffer, both `rows × cols`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// Name (`W1`, `b1`, …).
    pub name: &'static str,
    /// Buffer holding the value.
    pub value: BufId,
    /// Buffer holding ∂L/∂value after `backward`.
    pub grad: BufId,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Whether this is a bias (never penalised by regularisation).
    pub is_bias: bool,
}

/// A model's step, ready for a backend. Built by the models; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Every buffer, parameters and gradients included.
    pub bufs: Vec<BufDecl>,
    /// The trainable tensors, in the order their values are stored in a fitted model.
    pub params: Vec<ParamDecl>,
    /// Features → `output`.
    pub forward: Vec<Op>,
    /// The model output (logits or predictions), batch rows × `out_cols`.
    pub output: BufId,
    /// Columns of the output.
    pub out_cols: usize,
    /// The loss fused with its gradient, applied to `output`.
    pub loss: LossKind,
    /// ∂L/∂output, written by the loss.
    pub delta: BufId,
    /// `delta` → every parameter's gradient.
    pub backward: Vec<Op>,
    /// Set by the model for a GLM program (see [`Program::as_glm`]).
    pub(crate) glm: Option<GlmBufs>,
    /// Set by the model for a two-layer MLP's program (see [`Program::as_mlp`]).
    pub(crate) mlp: Option<MlpBufs>,
}

/// The buffers of a generalised linear model's program, as [`Program::as_glm`] finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GlmBufs {
    pub w: BufId,
    pub b: BufId,
    pub grad_w: BufId,
    pub grad_b: BufId,
}

/// The buffers and shape of a two-layer MLP's program (seed 001), as
/// [`Program::as_mlp`] finds them: what a backend's fused step reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MlpBufs {
    /// W¹, b¹, W², b².
    pub params: [BufId; 4],
    /// Their gradients, in the same order.
    pub grads: [BufId; 4],
    /// The hidden activations a = f(z¹), ∂L/∂z² and ∂L/∂z¹ (batch rows × h, k, h).
    pub a: BufId,
    pub delta2: BufId,
    pub delta1: BufId,
    /// Hidden units h, classes k, the hidden activation f.
    pub hidden: usize,
    pub classes: usize,
    pub activation: Activation,
}

impl Program {
    /// The MLP's buffers when [`Spec::program`](crate::model::Spec::program) built this
    /// program for seed 001's network (`z¹ = X W¹ + b¹`, `a = f(z¹)`, `z² = a W² + b²`,
    /// softmax + CCE, and its backpropagation): the shape the GPU runs as one fused step.
    pub(crate) fn as_mlp(&self) -> Option<MlpBufs> {
        self.mlp
    }

    /// The GLM's buffers when [`Spec::program`](crate::model::Spec::program) built this
    /// program for a generalised linear model (`z = X W + b`, a loss on z, `∂W = Xᵀ δ`,
    /// `∂b = 1ᵀ δ`): the shape the fast CPU engine runs as one fused pass.
    pub(crate) fn as_glm(&self) -> Option<GlmBufs> {
        self.glm
    }

    /// Checks optimizer state against the parameters: two tensors per parameter, each
    /// as long as it.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the lengths expected and given.
    pub fn check_state(&self, state: &[[Vec<f32>; 2]]) -> Result<()> {
        let lens: Vec<usize> = self.params.iter().map(|d| d.rows * d.cols).collect();
        let ok = state.len() == lens.len()
            && state
                .iter()
                .zip(&lens)
                .all(|([a, b], &len)| a.len() == len && b.len() == len);
        if ok {
            return Ok(());
        }
        Err(Error::ShapeMismatch {
            what: "optimizer state",
            expected: format!("two tensors per parameter, of lengths {lens:?}"),
            got: format!(
                "{:?}",
                state
                    .iter()
                    .map(|[a, b]| (a.len(), b.len()))
                    .collect::<Vec<_>>()
            ),
        })
    }

    /// Checks that `values` holds one tensor per [`ParamDecl`], each `rows × cols` long: the
    /// one check every engine's `set_params` makes.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the tensor and both sizes.
    pub fn check_params(&self, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.params.len() {
            return Err(Error::ShapeMismatch {
                what: "parameters",
                expected: format!("{} tensors", self.params.len()),
                got: format!("{} tensors", values.len()),
            });
        }
        for (decl, v) in self.params.iter().zip(values) {
            if v.len() != decl.rows * decl.cols {
                return Err(Error::ShapeMismatch {
                    what: "parameter tensor",
                    expected: format!("{} = {} × {} values", decl.name, decl.rows, decl.cols),
                    got: format!("{} values", v.len()),
                });
            }
        }
        Ok(())
    }
}

/// Builds a [`Program`] buffer by buffer.
#[derive(Debug, Default)]
pub(crate) struct ProgramBuilder {
    bufs: Vec<BufDecl>,
    params: Vec<ParamDecl>,
}

impl ProgramBuilder {
    /// A batch-sized activation buffer.
    pub fn batch_buf(&mut self, name: &str, cols: usize) -> BufId {
        self.bufs.push(BufDecl {
            name: name.to_string(),
            rows: Dim::Batch,
            cols,
        });
        BufId(self.bufs.len() - 1)
    }

    /// A parameter and its gradient; returns `(value, grad)`.
    pub fn param(
        &mut self,
        name: &'static str,
        rows: usize,
        cols: usize,
        is_bias: bool,
    ) -> (BufId, BufId) {
        self.bufs.push(BufDecl {
            name: name.to_string(),
            rows: Dim::Fixed(rows),
            cols,
        });
        self.bufs.push(BufDecl {
            name: format!("grad {name}"),
            rows: Dim::Fixed(rows),
            cols,
        });
        let (value, grad) = (BufId(self.bufs.len() - 2), BufId(self.bufs.len() - 1));
        self.params.push(ParamDecl {
            name,
            value,
            grad,
            rows,
            cols,
            is_bias,
        });
        (value, grad)
    }

    pub fn finish(
        self,
        forward: Vec<Op>,
        output: BufId,
        out_cols: usize,
        loss: LossKind,
        delta: BufId,
        backward: Vec<Op>,
    ) -> Program {
        Program {
            bufs: self.bufs,
            params: self.params,
            forward,
            output,
            out_cols,
            loss,
            delta,
            backward,
            glm: None,
            mlp: None,
        }
    }
}
