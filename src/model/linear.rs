//! Linear regression (seed 000).

use super::normal_eq::{self, NormalSolution, Precision, Solve};
use super::{Arch, Fitted, Init, Kind, Model, Spec, forward_output};
use crate::data::{Dataset, RowSource, Targets};
use crate::error::{Error, Result};
use crate::program::LossKind;

/// Linear regression `ŷ = x w + b`, trained on seed 000's loss and gradients:
/// `L = 1/N Σ (ŷᵢ − yᵢ)²`, `∂L/∂w = 2/N Xᵀ(ŷ − y)`, `∂L/∂b = 2/N Σ (ŷᵢ − yᵢ)`.
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::LinearRegression, TrainConfig, Trainer};
/// let data = Synthetic::linear(2_000, 3).seed(1).dataset()?;
/// let trainer = Trainer::new(TrainConfig::sgd().batch_size(32).learning_rate(0.05).epochs(20))?;
/// let mut model = LinearRegression::new();
/// let report = model.fit(&data, &trainer)?;
/// assert!(report.final_loss() < 1e-3);
/// let y = model.predict(&data.features()[..3])?; // one row of p = 3 features
/// assert_eq!(y.len(), 1);
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct LinearRegression {
    init: Init,
    fitted: Option<Fitted>,
}

impl LinearRegression {
    common_methods!();

    /// An unfitted model; weights start at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Solves the normal equations `(XᵀX) ŵ = Xᵀy` exactly (seed 001) instead of
    /// descending; see [`normal_eq::solve`].
    ///
    /// # Errors
    /// As [`normal_eq::solve`].
    pub fn fit_normal(&mut self, data: &Dataset, solve: Solve) -> Result<NormalSolution> {
        self.fit_normal_with(data, solve, Precision::Exact)
    }

    /// [`LinearRegression::fit_normal`] with a choice of [`Precision`] for `XᵀX`.
    ///
    /// # Errors
    /// As [`normal_eq::solve`].
    pub fn fit_normal_with(
        &mut self,
        data: &Dataset,
        solve: Solve,
        precision: Precision,
    ) -> Result<NormalSolution> {
        let sol = normal_eq::solve_with(data, solve, precision)?;
        let spec = Spec {
            arch: Arch::Glm {
                loss: LossKind::Mse,
                outputs: 1,
            },
            p: data.p(),
        };
        let w = sol.weights.iter().map(|&v| v as f32).collect();
        self.fitted = Some(Fitted::new(spec, vec![w, vec![sol.bias as f32]]));
        Ok(sol)
    }

    /// scikit-learn's `score`: R² of the predictions on `data`.
    ///
    /// # Errors
    /// [`Error::NotFitted`]; [`Error::TargetMismatch`] for labelled data; the feature
    /// count errors of `predict`.
    pub fn score(&self, data: &Dataset) -> Result<f64> {
        let Targets::Real(y) = data.targets() else {
            return Err(Error::TargetMismatch {
                model: self.name(),
                expected: "real-valued targets".into(),
                got: data.targets().describe(),
            });
        };
        crate::metrics::r2(&self.predict(data.features())?, y)
    }

    /// Predictions for the rows of `x` (row-major, p values per row).
    ///
    /// # Errors
    /// [`Error::NotFitted`], or [`Error::ShapeMismatch`] / [`Error::NonFinite`] for bad input.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<f32>> {
        forward_output(self.name(), self.fitted.as_ref(), x)
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

impl Model for LinearRegression {
    fn name(&self) -> &'static str {
        Kind::Linear.title()
    }
    fn spec_for(&self, data: &dyn RowSource) -> Result<Spec> {
        if data.classes().is_some() {
            return Err(Error::TargetMismatch {
                model: self.name(),
                expected: "real-valued targets".into(),
                got: data.describe_targets(),
            });
        }
        Ok(Spec {
            arch: Arch::Glm {
                loss: LossKind::Mse,
                outputs: 1,
            },
            p: data.p(),
        })
    }
    model_state!();
}
