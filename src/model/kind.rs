//! The list of models, and what any of them predicts.

use super::{
    Arch, Init, LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression, Spec,
};
use crate::error::{Error, Result};
use crate::program::{Activation, LossKind};

/// The four models: the one list of them that the command, the model file and the bench
/// all read.
///
/// ```
/// use gradflow::model::Kind;
/// let kind: Kind = "softmax".parse()?;
/// assert_eq!((kind.name(), kind.title(), kind.is_classifier()), ("softmax", "softmax regression", true));
/// assert_eq!(Kind::ALL.map(Kind::name), ["linear", "logistic", "softmax", "mlp"]);
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Kind {
    /// Linear regression (real targets).
    Linear,
    /// Binary logistic regression (2 classes).
    Logistic,
    /// Softmax regression (2 or more classes).
    Softmax,
    /// 2-layer MLP with a softmax output (2 or more classes).
    Mlp,
}

impl Kind {
    /// Every kind, in this order.
    pub const ALL: [Kind; 4] = [Kind::Linear, Kind::Logistic, Kind::Softmax, Kind::Mlp];

    /// The name in files and on the command line: `linear`, `logistic`, `softmax`, `mlp`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Linear => "linear",
            Kind::Logistic => "logistic",
            Kind::Softmax => "softmax",
            Kind::Mlp => "mlp",
        }
    }

    /// The kind of model a spec describes.
    pub fn of(spec: &Spec) -> Self {
        match spec.arch {
            Arch::Glm {
                loss: LossKind::Mse,
                ..
            } => Kind::Linear,
            Arch::Glm {
                loss: LossKind::SigmoidBce,
                ..
            } => Kind::Logistic,
            Arch::Glm {
                loss: LossKind::SoftmaxCce,
                ..
            } => Kind::Softmax,
            Arch::Mlp { .. } => Kind::Mlp,
        }
    }

    /// Whether the model predicts classes.
    pub fn is_classifier(self) -> bool {
        self != Kind::Linear
    }

    /// The model's name in messages and reports ([`Model::name`]): `linear regression`,
    /// `logistic regression`, `softmax regression`, `MLP`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Linear => "linear regression",
            Kind::Logistic => "logistic regression",
            Kind::Softmax => "softmax regression",
            Kind::Mlp => "MLP",
        }
    }

    /// A fresh, unfitted model of this kind; `hidden` and `activation` shape the MLP and
    /// are not read for the others.
    ///
    /// ```
    /// use gradflow::model::Kind;
    /// use gradflow::program::Activation;
    /// let mlp = Kind::Mlp.model(16, Activation::Tanh);
    /// assert_eq!(mlp.name(), "MLP");
    /// assert!(mlp.fitted().is_none());
    /// ```
    pub fn model(self, hidden: usize, activation: Activation) -> Box<dyn Model> {
        self.model_with(hidden, activation, Init::Auto)
    }

    /// [`Kind::model`] starting from `init` (checked when the fit starts: a constant init
    /// is for the linear models).
    ///
    /// ```
    /// use gradflow::model::{Init, Kind};
    /// use gradflow::program::Activation;
    /// let seeds = Kind::Linear.model_with(0, Activation::Sigmoid, Init::Ones); // w = 1, b = 0
    /// assert_eq!(seeds.init(), Init::Ones);
    /// ```
    pub fn model_with(self, hidden: usize, activation: Activation, init: Init) -> Box<dyn Model> {
        match self {
            Kind::Linear => Box::new(LinearRegression::new().with_init(init)),
            Kind::Logistic => Box::new(LogisticRegression::new().with_init(init)),
            Kind::Softmax => Box::new(SoftmaxRegression::new().with_init(init)),
            Kind::Mlp => Box::new(Mlp::new(hidden).with_activation(activation).with_init(init)),
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Kind::Linear),
            "logistic" => Ok(Kind::Logistic),
            "softmax" => Ok(Kind::Softmax),
            "mlp" => Ok(Kind::Mlp),
            _ => Err(Error::param(
                "model",
                s,
                "must be linear, logistic, softmax or mlp",
            )),
        }
    }
}

/// What a model predicts for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Regression: one value per row.
    Real(Vec<f32>),
    /// Classification: the class of each row and the class probabilities.
    Classes {
        /// Predicted class per row, in `0..k`.
        classes: Vec<u32>,
        /// Probabilities, `n × k` row-major.
        proba: Vec<f32>,
        /// Classes.
        k: usize,
    },
}

impl Prediction {
    /// Rows predicted.
    pub fn len(&self) -> usize {
        match self {
            Prediction::Real(y) => y.len(),
            Prediction::Classes { classes, .. } => classes.len(),
        }
    }

    /// `true` for no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
