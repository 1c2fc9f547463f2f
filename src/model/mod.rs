//! The models: linear, logistic and softmax regression, and the 2-layer MLP of seed 001.
//!
//! A model is its parameters plus a [`Program`]: the ordered kernel calls of its forward
//! and backward pass. Fitting goes through the [`Trainer`](crate::Trainer); prediction
//! runs the forward half of the same program.

/// The methods every model has alike, `with_init` and `fit`: expanded in each model's
/// inherent impl.
macro_rules! common_methods {
    () => {
        /// Sets the initialisation (see [`Init`](crate::model::Init); by default zeros for
        /// the linear models, Glorot or He for the MLP).
        pub fn with_init(mut self, init: $crate::model::Init) -> Self {
            self.init = init;
            self
        }

        /// Trains with the trainer's solver from a fresh initialisation; see
        /// [`Trainer::fit`](crate::Trainer::fit).
        ///
        /// # Errors
        /// As [`Trainer::fit`](crate::Trainer::fit) (for the MLP also
        /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a hidden width
        /// of 0).
        pub fn fit(
            &mut self,
            data: &dyn $crate::data::RowSource,
            trainer: &$crate::Trainer,
        ) -> $crate::Result<$crate::Report> {
            trainer.fit(self, data)
        }
    };
}

/// [`Model`]'s accessors of the initialisation and the fitted state, alike for every
/// model: expanded in each `impl Model`.
macro_rules! model_state {
    () => {
        fn init(&self) -> $crate::model::Init {
            self.init
        }
        fn fitted(&self) -> Option<&$crate::model::Fitted> {
            self.fitted.as_ref()
        }
        fn set_fitted(&mut self, fitted: $crate::model::Fitted) {
            self.fitted = Some(fitted);
        }
    };
}

mod kind;
mod linear;
mod logistic;
mod mlp;
pub mod normal_eq;
mod softmax;
mod state;

pub use kind::{Kind, Prediction};
pub use linear::LinearRegression;
pub use logistic::LogisticRegression;
pub use mlp::Mlp;
pub use softmax::SoftmaxRegression;
pub use state::TrainState;

use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::cpu::engine::{CpuEngine, Rows};
use crate::data::{Dataset, RowSource, Standardizer, Targets, check_finite};
use crate::error::{Error, Result};
use crate::program::Activation;
use crate::program::Layout;
use crate::program::LossKind;
use crate::program::{Dim, GlmBufs, Op, Program, ProgramBuilder, Src};

/// The architecture of a model, independent of its parameter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// A generalised linear model `z = X W + b` with `outputs` columns and a fused loss:
    /// linear (MSE), logistic (sigmoid + BCE, 1 output), softmax (CCE, k outputs).
    Glm {
        /// The loss.
        loss: LossKind,
        /// Output columns.
        outputs: usize,
    },
    /// Seed 001's network: `z¹ = X W¹ + b¹`, `a = f(z¹)`, `z² = a W² + b²`, softmax + CCE.
    Mlp {
        /// Hidden width h.
        hidden: usize,
        /// Hidden activation f.
        activation: Activation,
        /// Classes K.
        classes: usize,
    },
}

/// An architecture applied to `p` input features: everything needed to build the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The architecture.
    pub arch: Arch,
    /// Input features.
    pub p: usize,
}

impl std::fmt::Display for Spec {
    /// `linear regression on 5 features`, `an MLP of 32 relu units for 3 classes on 4
    /// features`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.p;
        match self.arch {
            Arch::Glm {
                loss: LossKind::SoftmaxCce,
                outputs,
            } => write!(
                f,
                "softmax regression for {outputs} classes on {p} features"
            ),
            Arch::Glm {
                loss: LossKind::SigmoidBce,
                ..
            } => write!(f, "logistic regression on {p} features"),
            Arch::Glm { .. } => write!(f, "linear regression on {p} features"),
            Arch::Mlp {
                hidden,
                activation,
                classes,
            } => write!(
                f,
                "an MLP of {hidden} {} units for {classes} classes on {p} features",
                activation.name()
            ),
        }
    }
}

impl Spec {
    /// The training program of this model (see [`crate::program`]).
    pub fn program(&self) -> Program {
        let p = self.p;
        let mut b = ProgramBuilder::default();
        match self.arch {
            Arch::Glm { loss, outputs: k } => {
                let (w, gw) = b.param("W", p, k, false);
                let (bias, gb) = b.param("b", 1, k, true);
                let z = b.batch_buf("z", k);
                let dz = b.batch_buf("dL/dz", k);
                let forward = vec![
                    Op::Matmul {
                        layout: Layout::NN,
                        m: Dim::Batch,
                        k: Dim::Fixed(p),
                        n: Dim::Fixed(k),
                        a: Src::Features,
                        b: w,
                        c: z,
                    },
                    Op::BiasAdd { z, cols: k, bias },
                ];
                // ∂L/∂W = Xᵀ δ (the gradient reduction), ∂L/∂b = 1ᵀ δ.
                let backward = vec![
                    Op::Matmul {
                        layout: Layout::TN,
                        m: Dim::Fixed(p),
                        k: Dim::Batch,
                        n: Dim::Fixed(k),
                        a: Src::Features,
                        b: dz,
                        c: gw,
                    },
                    Op::ColSums {
                        x: dz,
                        cols: k,
                        out: gb,
                    },
                ];
                let mut program = b.finish(forward, z, k, loss, dz, backward);
                program.glm = Some(GlmBufs {
                    w,
                    b: bias,
                    grad_w: gw,
                    grad_b: gb,
                });
                program
            }
            Arch::Mlp {
                hidden: h,
                activation: f,
                classes: k,
            } => crate::program::mlp(p, h, k, f),
        }
    }

    /// Output columns of the model.
    pub fn outputs(&self) -> usize {
        match self.arch {
            Arch::Glm { outputs, .. } => outputs,
            Arch::Mlp { classes, .. } => classes,
        }
    }
}

/// How parameters are initialised before training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Init {
    /// Zeros for the linear models; Glorot for an MLP with sigmoid or tanh, He for relu.
    #[default]
    Auto,
    /// All zeros (linear models only: an MLP would keep every hidden unit identical).
    Zeros,
    /// Weights 1, biases 0: seed 000's `w = np.ones((p, 1))`, `b = 0` (linear models only).
    Ones,
    /// Glorot/Xavier uniform: `U(±√(6 / (fan_in + fan_out)))`, biases 0.
    GlorotUniform,
    /// He/Kaiming uniform: `U(±√(6 / fan_in))`, biases 0; for relu.
    HeUniform,
}

/// A fitted model's architecture and parameter values, and the training state that lets
/// a fit go on ([`Trainer::partial_fit`](crate::Trainer::partial_fit)).
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// Architecture and input width.
    pub spec: Spec,
    /// Parameter values in [`Program::params`] order, each row-major.
    pub params: Vec<Vec<f32>>,
    /// Epochs done, updates, optimizer state (`None` for a model not trained by
    /// gradient descent, such as the normal equations' solution).
    pub state: Option<TrainState>,
    /// The feature standardisation the parameters expect, applied to every input before
    /// the forward pass (`None`: raw features).
    pub scaler: Option<Standardizer>,
}

impl Fitted {
    /// Parameters without training state.
    pub fn new(spec: Spec, params: Vec<Vec<f32>>) -> Self {
        Fitted {
            spec,
            params,
            state: None,
            scaler: None,
        }
    }
}

/// What the [`Trainer`](crate::Trainer) needs from a model.
pub trait Model {
    /// Name for messages and reports (`linear regression`).
    fn name(&self) -> &'static str;
    /// The model's architecture for this dataset.
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] when the targets do not suit the model.
    fn spec_for(&self, data: &dyn RowSource) -> Result<Spec>;
    /// The initialisation scheme.
    fn init(&self) -> Init;
    /// The fitted parameters, if any.
    fn fitted(&self) -> Option<&Fitted>;
    /// Stores fitted parameters.
    fn set_fitted(&mut self, fitted: Fitted);

    /// Predicts the rows of `x` (row-major, p values per row): values for a regression;
    /// classes and their probabilities for a classifier (the arg-max of the logits, and
    /// σ or softmax of them). One definition for every model, through the dyn trait too;
    /// each model's own `predict` returns the values or classes alone.
    ///
    /// ```
    /// use gradflow::data::Synthetic;
    /// use gradflow::model::{Kind, Prediction};
    /// use gradflow::program::Activation;
    /// use gradflow::{TrainConfig, Trainer};
    /// let data = Synthetic::blobs(300, 2, 3).seed(1).dataset()?;
    /// let mut model = Kind::Softmax.model(0, Activation::Sigmoid);
    /// Trainer::new(TrainConfig::default())?.fit(model.as_mut(), &data)?;
    /// let Prediction::Classes { classes, proba, k } = model.predict(&data.features()[..4])? else {
    ///     unreachable!()
    /// };
    /// assert_eq!((classes.len(), proba.len(), k), (2, 6, 3));
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFitted`]; [`Error::ShapeMismatch`] when `x` is not whole rows of p
    /// features; [`Error::NonFinite`] for a NaN or infinite feature; [`Error::Empty`].
    fn predict(&self, x: &[f32]) -> Result<Prediction> {
        predict(self.name(), self.fitted(), x)
    }
}

/// [`Model::predict`] for fitted parameters (a model file's, or a model's): the forward
/// pass, then what the loss makes of the output.
///
/// # Errors
/// As [`Model::predict`].
pub(crate) fn predict(
    name: &'static str,
    fitted: Option<&Fitted>,
    x: &[f32],
) -> Result<Prediction> {
    let Some(f) = fitted else {
        return Err(Error::NotFitted {
            model: name,
            action: "predict",
        });
    };
    Ok(match Kind::of(&f.spec) {
        Kind::Linear => Prediction::Real(forward_output(name, fitted, x)?),
        Kind::Logistic => {
            let z = forward_output(name, fitted, x)?;
            Prediction::Classes {
                classes: z.iter().map(|&v| u32::from(v > 0.0)).collect(),
                proba: z
                    .iter()
                    .flat_map(|&v| [activation_sigmoid(-v), activation_sigmoid(v)])
                    .collect(),
                k: 2,
            }
        }
        Kind::Softmax | Kind::Mlp => Prediction::Classes {
            classes: predict_classes(name, fitted, x)?,
            proba: predict_softmax(name, fitted, x)?,
            k: f.spec.outputs(),
        },
    })
}

fn activation_sigmoid(z: f32) -> f32 {
    crate::cpu::activation::sigmoid(z)
}

/// Initial parameter values for `spec` under `init`, from `seed`.
///
/// # Errors
/// [`Error::InvalidParameter`] for [`Init::Zeros`] or [`Init::Ones`] on an MLP.
pub fn init_params(spec: &Spec, init: Init, seed: u64) -> Result<Vec<Vec<f32>>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x696E_6974_0000_0000); // "init"
    let is_mlp = matches!(spec.arch, Arch::Mlp { .. });
    let init = match (init, spec.arch) {
        (Init::Auto, Arch::Glm { .. }) => Init::Zeros,
        (
            Init::Auto,
            Arch::Mlp {
                activation: Activation::Relu,
                ..
            },
        ) => Init::HeUniform,
        (Init::Auto, Arch::Mlp { .. }) => Init::GlorotUniform,
        (Init::Zeros | Init::Ones, Arch::Mlp { .. }) => {
            return Err(Error::param(
                "init",
                format!("{init:?}"),
                "an MLP needs a random init (GlorotUniform, HeUniform or Auto): a constant one keeps every hidden unit identical",
            ));
        }
        (other, _) => other,
    };
    let program = spec.program();
    Ok(program
        .params
        .iter()
        .map(|d| {
            let len = d.rows * d.cols;
            if d.is_bias {
                return vec![0.0; len];
            }
            let bound = match init {
                Init::Zeros => return vec![0.0; len],
                Init::Ones => return vec![1.0; len],
                Init::GlorotUniform => (6.0 / (d.rows + d.cols) as f32).sqrt(),
                Init::HeUniform | Init::Auto => (6.0 / d.rows as f32).sqrt(),
            };
            debug_assert!(is_mlp || bound > 0.0);
            let dist = Uniform::new_inclusive(-bound, bound).expect("finite bound");
            (0..len).map(|_| dist.sample(&mut rng)).collect()
        })
        .collect())
}

/// Rows per forward chunk at predict time: bounds the activation memory.
const PREDICT_CHUNK: usize = 4096;

/// The raw model output (logits, or predictions for regression), `n × outputs`.
pub(crate) fn forward_output(
    name: &'static str,
    fitted: Option<&Fitted>,
    x: &[f32],
) -> Result<Vec<f32>> {
    let fitted = fitted.ok_or(Error::NotFitted {
        model: name,
        action: "predict",
    })?;
    let p = fitted.spec.p;
    if x.is_empty() {
        return Err(Error::Empty {
            what: "prediction input",
            detail: "0 rows".into(),
        });
    }
    if !x.len().is_multiple_of(p) {
        return Err(Error::ShapeMismatch {
            what: "prediction input",
            expected: format!("a multiple of the model's p = {p} features per row"),
            got: format!("{} values", x.len()),
        });
    }
    check_finite("features", x, p)?;
    let scaled;
    let x = match &fitted.scaler {
        Some(s) => {
            scaled = s.transform(x);
            &scaled[..]
        }
        None => x,
    };
    let n = x.len() / p;
    let program = fitted.spec.program();
    let (out_id, k) = (program.output, program.out_cols);
    let mut engine = CpuEngine::<f32>::new(program, x, p, None, PREDICT_CHUNK.min(n));
    engine.set_params(&fitted.params)?;
    let mut out = Vec::with_capacity(n * k);
    for start in (0..n).step_by(PREDICT_CHUNK) {
        let len = PREDICT_CHUNK.min(n - start);
        engine.forward(Rows::Range { start, len })?;
        out.extend_from_slice(&engine.buf(out_id)[..len * k]);
    }
    Ok(out)
}

/// The class of each row of a softmax classifier: the arg-max of its logits.
pub(crate) fn predict_classes(
    name: &'static str,
    fitted: Option<&Fitted>,
    x: &[f32],
) -> Result<Vec<u32>> {
    let z = forward_output(name, fitted, x)?;
    let k = fitted.map_or(1, |f| f.spec.outputs());
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0
    };
    Ok(z.chunks_exact(k).map(|r| argmax(r) as u32).collect())
}

/// Class probabilities of a softmax classifier, `n × k` row-major.
pub(crate) fn predict_softmax(
    name: &'static str,
    fitted: Option<&Fitted>,
    x: &[f32],
) -> Result<Vec<f32>> {
    let z = forward_output(name, fitted, x)?;
    let k = fitted.map_or(1, |f| f.spec.outputs());
    let mut out = vec![0f32; z.len()];
    crate::cpu::softmax::softmax_rows(&z, z.len() / k, k, &mut out);
    Ok(out)
}

/// Checks that a classifier's dataset has class labels; returns the class count.
/// A classifier's `score`: the accuracy of `predict` on `data`'s features.
pub(crate) fn accuracy_on(
    model: &'static str,
    data: &Dataset,
    predict: impl FnOnce(&[f32]) -> Result<Vec<u32>>,
) -> Result<f64> {
    let Targets::Classes { labels, .. } = data.targets() else {
        return Err(Error::TargetMismatch {
            model,
            expected: "class labels".into(),
            got: data.targets().describe(),
        });
    };
    crate::metrics::accuracy(&predict(data.features())?, labels)
}

pub(crate) fn require_classes(
    model: &'static str,
    data: &dyn RowSource,
    binary: bool,
) -> Result<usize> {
    match data.classes() {
        None => Err(Error::TargetMismatch {
            model,
            expected: "class labels".into(),
            got: data.describe_targets(),
        }),
        Some(k) if binary && k != 2 => Err(Error::TargetMismatch {
            model,
            expected: "class labels with exactly 2 classes (use softmax regression for more)"
                .into(),
            got: data.describe_targets(),
        }),
        Some(k) if k < 2 => Err(Error::TargetMismatch {
            model,
            expected: "class labels with at least 2 classes".into(),
            got: data.describe_targets(),
        }),
        Some(k) => Ok(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast CPU engine's fused pass is chosen by `Program::as_glm`: every GLM's program
    /// must say it is one (with its own parameter buffers), and the MLP's must not.
    #[test]
    fn glm_programs_say_so() {
        for (loss, outputs) in [
            (LossKind::Mse, 1),
            (LossKind::SigmoidBce, 1),
            (LossKind::SoftmaxCce, 4),
        ] {
            let program = Spec {
                arch: Arch::Glm { loss, outputs },
                p: 3,
            }
            .program();
            let glm = program.as_glm().expect("a GLM program");
            let (w, b) = (&program.params[0], &program.params[1]);
            assert_eq!(
                (glm.w, glm.b, glm.grad_w, glm.grad_b),
                (w.value, b.value, w.grad, b.grad)
            );
        }
        let mlp = Spec {
            arch: Arch::Mlp {
                hidden: 4,
                activation: Activation::Sigmoid,
                classes: 3,
            },
            p: 3,
        };
        assert!(mlp.program().as_glm().is_none());
    }
}
