//! The 2-layer MLP of seed 001.

use super::{
    Arch, Fitted, Init, Kind, Model, Spec, accuracy_on, predict_classes, predict_softmax,
    require_classes,
};
use crate::data::{Dataset, RowSource};
use crate::error::{Error, Result};
use crate::program::Activation;

/// Seed 001's network: `z¹ = x W¹ + b¹`, `a = f(z¹)`, `z² = a W² + b²`,
/// `ŷ = softmax(z²)`, trained on the mean categorical cross-entropy with the gradients
/// derived there (`f` is the sigmoid unless set otherwise).
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::Mlp, TrainConfig, Trainer};
/// let data = Synthetic::blobs(600, 2, 3).seed(2).dataset()?;
/// let trainer = Trainer::new(TrainConfig::sgd().batch_size(32).learning_rate(0.5).epochs(5))?;
/// let mut mlp = Mlp::new(16);
/// mlp.fit(&data, &trainer)?;
/// assert_eq!(mlp.predict(data.row(0))?.len(), 1);
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mlp {
    hidden: usize,
    activation: Activation,
    init: Init,
    fitted: Option<Fitted>,
}

impl Mlp {
    common_methods!();

    /// An unfitted MLP with `hidden` sigmoid units. A width of 0 is reported by `fit`.
    pub fn new(hidden: usize) -> Self {
        Mlp {
            hidden,
            activation: Activation::Sigmoid,
            init: Init::Auto,
            fitted: None,
        }
    }

    /// Sets the hidden activation (sigmoid, tanh or relu).
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Hidden width h.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Hidden activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// scikit-learn's `score`: accuracy of the predicted classes on `data`.
    ///
    /// # Errors
    /// [`Error::NotFitted`]; [`Error::TargetMismatch`] for real targets; the feature
    /// count errors of `predict`.
    pub fn score(&self, data: &Dataset) -> Result<f64> {
        accuracy_on(self.name(), data, |x| self.predict(x))
    }

    /// Predicted class of each row.
    ///
    /// # Errors
    /// [`Error::NotFitted`], or shape and finiteness errors for bad input.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<u32>> {
        predict_classes(self.name(), self.fitted.as_ref(), x)
    }

    /// Class probabilities `ŷ`, `n × K` row-major.
    ///
    /// # Errors
    /// As [`Mlp::predict`].
    pub fn predict_proba(&self, x: &[f32]) -> Result<Vec<f32>> {
        predict_softmax(self.name(), self.fitted.as_ref(), x)
    }
}

impl Model for Mlp {
    fn name(&self) -> &'static str {
        Kind::Mlp.title()
    }
    fn spec_for(&self, data: &dyn RowSource) -> Result<Spec> {
        if self.hidden == 0 {
            return Err(Error::param("hidden", 0, "must be ≥ 1 unit"));
        }
        let classes = require_classes(self.name(), data, false)?;
        Ok(Spec {
            arch: Arch::Mlp {
                hidden: self.hidden,
                activation: self.activation,
                classes,
            },
            p: data.p(),
        })
    }
    model_state!();
}
