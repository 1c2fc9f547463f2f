//! Multinomial (softmax) regression.

use super::{
    Arch, Fitted, Init, Kind, Model, Spec, accuracy_on, predict_classes, predict_softmax,
    require_classes,
};
use crate::data::{Dataset, RowSource};
use crate::error::Result;
use crate::program::LossKind;

/// Softmax regression: `ŷ = softmax(x W + b)` over k classes, trained on the mean
/// categorical cross-entropy (`∂L/∂W = 1/N Xᵀ(ŷ − onehot(y))`).
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::SoftmaxRegression, TrainConfig, Trainer};
/// let data = Synthetic::blobs(1_500, 2, 3).seed(5).dataset()?;
/// let trainer = Trainer::new(TrainConfig::sgd().batch_size(50).learning_rate(0.1).epochs(20))?;
/// let mut model = SoftmaxRegression::new();
/// model.fit(&data, &trainer)?;
/// assert_eq!(model.predict_proba(data.row(0))?.len(), 3);
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SoftmaxRegression {
    init: Init,
    fitted: Option<Fitted>,
}

impl SoftmaxRegression {
    common_methods!();

    /// An unfitted model; weights start at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// scikit-learn's `score`: accuracy of the predicted classes on `data`.
    ///
    /// # Errors
    /// [`crate::Error::NotFitted`]; [`crate::Error::TargetMismatch`] for real targets; the feature
    /// count errors of `predict`.
    pub fn score(&self, data: &Dataset) -> Result<f64> {
        accuracy_on(self.name(), data, |x| self.predict(x))
    }

    /// Predicted class of each row (arg-max of the logits).
    ///
    /// # Errors
    /// [`crate::Error::NotFitted`], or shape and finiteness errors for bad input.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<u32>> {
        predict_classes(self.name(), self.fitted.as_ref(), x)
    }

    /// Class probabilities, `n × k` row-major.
    ///
    /// # Errors
    /// As [`SoftmaxRegression::predict`].
    pub fn predict_proba(&self, x: &[f32]) -> Result<Vec<f32>> {
        predict_softmax(self.name(), self.fitted.as_ref(), x)
    }
}

impl Model for SoftmaxRegression {
    fn name(&self) -> &'static str {
        Kind::Softmax.title()
    }
    fn spec_for(&self, data: &dyn RowSource) -> Result<Spec> {
        let k = require_classes(self.name(), data, false)?;
        Ok(Spec {
            arch: Arch::Glm {
                loss: LossKind::SoftmaxCce,
                outputs: k,
            },
            p: data.p(),
        })
    }
    model_state!();
}
