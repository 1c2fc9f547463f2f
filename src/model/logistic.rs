//! Binary logistic regression (seed 000's exercise).

use super::{Arch, Fitted, Init, Kind, Model, Spec, accuracy_on, forward_output, require_classes};
use crate::cpu::activation::sigmoid;
use crate::data::{Dataset, RowSource};
use crate::error::Result;
use crate::program::LossKind;

/// Binary logistic regression: `P(y = 1 | x) = σ(x w + b)`, trained on the mean binary
/// cross-entropy, whose gradient is `∂L/∂w = 1/N Xᵀ(σ(z) − y)`, `∂L/∂b = 1/N Σ (σ(zᵢ) − yᵢ)`.
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::LogisticRegression, TrainConfig, Trainer};
/// let data = Synthetic::logistic(2_000, 4).seed(3).dataset()?;
/// let trainer = Trainer::new(TrainConfig::sgd().batch_size(64).learning_rate(0.5).epochs(10))?;
/// let mut model = LogisticRegression::new();
/// model.fit(&data, &trainer)?;
/// let proba = model.predict_proba(&data.features()[..8])?; // two rows
/// assert_eq!(proba.len(), 4); // n × 2: P(y = 0), P(y = 1)
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct LogisticRegression {
    init: Init,
    fitted: Option<Fitted>,
}

impl LogisticRegression {
    common_methods!();

    /// An unfitted model; weights start at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The logits `z = x w + b`, one per row.
    ///
    /// # Errors
    /// [`crate::Error::NotFitted`], or shape and finiteness errors for bad input.
    pub fn decision_function(&self, x: &[f32]) -> Result<Vec<f32>> {
        forward_output(self.name(), self.fitted.as_ref(), x)
    }

    /// scikit-learn's `score`: accuracy of the predicted classes on `data`.
    ///
    /// # Errors
    /// [`crate::Error::NotFitted`]; [`crate::Error::TargetMismatch`] for real targets; the feature
    /// count errors of `predict`.
    pub fn score(&self, data: &Dataset) -> Result<f64> {
        accuracy_on(self.name(), data, |x| self.predict(x))
    }

    /// Predicted labels (0 or 1): 1 where `σ(z) > 0.5`.
    ///
    /// # Errors
    /// As [`LogisticRegression::decision_function`].
    pub fn predict(&self, x: &[f32]) -> Result<Vec<u32>> {
        Ok(self
            .decision_function(x)?
            .into_iter()
            .map(|z| u32::from(z > 0.0))
            .collect())
    }

    /// Class probabilities, `n × 2` row-major: `[P(y = 0), P(y = 1)]` per row, as
    /// scikit-learn's `predict_proba`.
    ///
    /// # Errors
    /// As [`LogisticRegression::decision_function`].
    pub fn predict_proba(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(self
            .decision_function(x)?
            .into_iter()
            .flat_map(|z| {
                let p1 = sigmoid(z);
                [sigmoid(-z), p1]
            })
            .collect())
    }

    /// The weights `w` (length p), once fitted.
    pub fn weights(&self) -> Option<&[f32]> {
        self.fitted.as_ref().map(|f| &f.params[0][..])
    }

    /// The bias `b`, once fitted.
    pub fn bias(&self) -> Option<f32> {
        self.fitted.as_ref().map(|f| f.params[1][0])
    }
}

impl Model for LogisticRegression {
    fn name(&self) -> &'static str {
        Kind::Logistic.title()
    }
    fn spec_for(&self, data: &dyn RowSource) -> Result<Spec> {
        require_classes(self.name(), data, true)?;
        Ok(Spec {
            arch: Arch::Glm {
                loss: LossKind::SigmoidBce,
                outputs: 1,
            },
            p: data.p(),
        })
    }
    model_state!();
}
