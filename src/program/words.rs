//! The program's vocabulary: the words a model's [`Program`](super::Program) is written in
//! and that every backend reads — the activations, the fused losses, the matmul layouts,
//! the update rules and their scalars, and the precisions a program runs in. The CPU
//! kernels (`crate::cpu`) and the GPU kernels (`crate::gpu`) both implement them; neither
//! owns them.

use std::borrow::Cow;
use std::fmt::Debug;

/// The floating-point types a program runs in: `f32` (training, on every backend) and
/// `f64` (the reference kernels' oracle and the gradient check).
pub trait Real: num_traits::Float + Debug + Default + Send + Sync + 'static {
    /// Converts from `f64` (rounding to nearest).
    fn of(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn f64(self) -> f64;
    /// Views `f32` data in this type: borrowed for `f32`, converted for `f64`.
    fn from_f32_slice(v: &[f32]) -> Cow<'_, [Self]>;
    /// The same values as `f32`, when this type is `f32` (the fast CPU kernels' type).
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

/// Numerically stable logistic function: never evaluates `e^x` for large positive `x`.
pub fn sigmoid<T: Real>(z: T) -> T {
    if z >= T::zero() {
        T::one() / (T::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::one() + e)
    }
}

/// A hidden-layer activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Activation {
    /// The logistic function σ (the seeds' choice).
    #[default]
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Rectified linear unit.
    Relu,
}

impl Activation {
    /// Lower-case name: `sigmoid`, `tanh`, `relu`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "sigmoid" | "logistic" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            "relu" => Ok(Activation::Relu),
            _ => Err(crate::Error::param(
                "activation",
                s,
                "must be sigmoid, tanh or relu",
            )),
        }
    }
}

/// Which operands are transposed; see the module table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `A · B`.
    NN,
    /// `Aᵀ · B`.
    TN,
    /// `A · Bᵀ`.
    NT,
}

/// Which fused loss a model trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Mean squared error on real targets (linear regression).
    Mse,
    /// Sigmoid + binary cross-entropy on labels {0, 1} (logistic regression).
    SigmoidBce,
    /// Softmax + categorical cross-entropy on labels 0..k (softmax regression, MLP).
    SoftmaxCce,
}

/// Which optimizer an update applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `θ −= lr · g`.
    Sgd,
    /// Heavy-ball momentum (PyTorch's `SGD(momentum=μ)`, no dampening): `v = μ v + g`,
    /// then `θ −= lr · v`, or with Nesterov `θ −= lr · (g + μ v)`. `s1` holds `v`.
    Momentum {
        /// Nesterov's variant.
        nesterov: bool,
    },
    /// Adam: `m = β₁ m + (1 − β₁) g`, `v = β₂ v + (1 − β₂) g²`,
    /// `θ −= lr · (m · c₁) / (√(v · c₂) + ε)` with the bias corrections
    /// `c₁ = 1 / (1 − β₁ᵗ)`, `c₂ = 1 / (1 − β₂ᵗ)`. `s1` holds `m`, `s2` holds `v`.
    Adam,
    /// AdaGrad: `s = s + g²`, `θ −= lr · g / (√s + ε)`. `s1` holds `s`.
    AdaGrad,
}

/// The numbers of one update step (all rules read the ones they need).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalars<T> {
    /// Learning rate of this step.
    pub lr: T,
    /// Coupled L2 coefficient (`g += l2 · θ`).
    pub l2: T,
    /// L1 coefficient: the truncation threshold is `lr · l1`.
    pub l1: T,
    /// Momentum μ, or Adam's β₁.
    pub beta1: T,
    /// Adam's β₂.
    pub beta2: T,
    /// Adam's and AdaGrad's ε.
    pub eps: T,
    /// Adam's first-moment bias correction `1 / (1 − β₁ᵗ)`.
    pub c1: T,
    /// Adam's second-moment bias correction `1 / (1 − β₂ᵗ)`.
    pub c2: T,
}

impl Scalars<f64> {
    /// The same numbers in precision `T` (rounded to nearest).
    pub fn of<T: Real>(&self) -> Scalars<T> {
        Scalars {
            lr: T::of(self.lr),
            l2: T::of(self.l2),
            l1: T::of(self.l1),
            beta1: T::of(self.beta1),
            beta2: T::of(self.beta2),
            eps: T::of(self.eps),
            c1: T::of(self.c1),
            c2: T::of(self.c2),
        }
    }
}

impl<T: Real> Scalars<T> {
    /// Plain SGD at `lr`, no penalty.
    pub fn sgd(lr: T) -> Self {
        Scalars {
            lr,
            l2: T::zero(),
            l1: T::zero(),
            beta1: T::zero(),
            beta2: T::zero(),
            eps: T::zero(),
            c1: T::one(),
            c2: T::one(),
        }
    }
}

/// The scalars of one step for the model's weights and for its biases: penalties apply
/// to weights only. `From<f64>` makes plain SGD at that learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepScalars {
    /// For weight tensors.
    pub weights: Scalars<f64>,
    /// For bias tensors.
    pub biases: Scalars<f64>,
}

impl From<f64> for StepScalars {
    fn from(lr: f64) -> Self {
        StepScalars {
            weights: Scalars::sgd(lr),
            biases: Scalars::sgd(lr),
        }
    }
}

impl StepScalars {
    /// The scalars for a tensor.
    pub fn of(&self, is_bias: bool) -> &Scalars<f64> {
        if is_bias { &self.biases } else { &self.weights }
    }
}
