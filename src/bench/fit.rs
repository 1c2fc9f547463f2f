//! One timed fit of one of the four models, with its quality score: what the bench and
//! the demo both repeat.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::metrics::{accuracy, r2};
use crate::model::{Kind, Prediction};
use crate::program::Activation;
use crate::{Report, Trainer};

/// Rows scored for R² or accuracy: the first `EVAL_ROWS` training rows (prediction runs
/// on the CPU reference kernels and is not timed; 10⁵ rows score to ±0.003).
pub const EVAL_ROWS: usize = 100_000;

/// Relative tolerance on |loss_GPU − loss_CPU| / |loss_CPU| for the same fit (same data,
/// batches and seed). One step's f32 sums in another order differ by ~1e-6 relative; over
/// thousands of steps the two trajectories drift by up to ~1e-5 (gradient descent on
/// these losses is contractive), while a wrong kernel moves the loss by O(1): 1e-3 keeps
/// a 100× margin on both sides.
pub const LOSS_RTOL: f64 = 1e-3;

/// Absolute floor of the loss comparison, for losses near zero (blobs that separate).
pub const LOSS_ATOL: f64 = 1e-6;

/// The relative difference of two final losses, `|a − b| / max(|a|, |b|)` (0 when equal).
pub fn loss_rel_diff(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if a == b {
        0.0
    } else if scale == 0.0 || !scale.is_finite() {
        f64::INFINITY
    } else {
        (a - b).abs() / scale
    }
}

/// Whether two final losses agree within [`LOSS_RTOL`] (or [`LOSS_ATOL`] absolutely).
pub fn losses_agree(a: f64, b: f64) -> bool {
    a.is_finite()
        && b.is_finite()
        && ((a - b).abs() <= LOSS_ATOL || loss_rel_diff(a, b) <= LOSS_RTOL)
}

/// A fitted model's score on (a prefix of) its training data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// `r2` (regression) or `accuracy` (classification).
    pub metric: Metric,
    /// The score.
    pub value: f64,
}

/// Which score a [`Quality`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Coefficient of determination (1 is perfect).
    R2,
    /// Share of labels predicted exactly.
    Accuracy,
}

impl std::fmt::Display for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.metric {
            Metric::R2 => write!(f, "R² {:.5}", self.value),
            Metric::Accuracy => write!(f, "accuracy {:.4}", self.value),
        }
    }
}

/// Which model to fit: its kind, and for the MLP its hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recipe {
    pub kind: Kind,
    pub hidden: usize,
    pub activation: Activation,
}

impl Recipe {
    /// A linear model of `kind` (no hidden layer).
    pub fn linear(kind: Kind) -> Self {
        Recipe {
            kind,
            hidden: 0,
            activation: Activation::Sigmoid,
        }
    }

    /// A fresh, unfitted model of this recipe.
    pub fn model(self) -> Box<dyn crate::model::Model> {
        self.kind.model(self.hidden, self.activation)
    }

    /// The MLP with `hidden` units of `activation`.
    pub fn mlp(hidden: usize, activation: Activation) -> Self {
        Recipe {
            kind: Kind::Mlp,
            hidden,
            activation,
        }
    }
}

/// The outcome of a timed fit.
#[derive(Debug, Clone)]
pub(crate) struct Fit {
    /// The trainer's report.
    pub report: Report,
    /// Wall time around `Trainer::fit` (session set-up and upload included, data
    /// generation not).
    pub wall: Duration,
    /// Score on the first [`EVAL_ROWS`] rows.
    pub quality: Quality,
    /// The fitted parameters (the linear model's weights are `params[0]`).
    pub params: Vec<Vec<f32>>,
}

/// Fits a fresh model of `recipe` to `data` with `trainer`, timing only the fit, and
/// scores it on the first [`EVAL_ROWS`] rows: R² for a regression, accuracy otherwise.
pub(crate) fn fit(recipe: Recipe, data: &Dataset, trainer: &Trainer) -> Result<Fit> {
    let mut model = recipe.model();
    let started = Instant::now();
    let report = trainer.fit(model.as_mut(), data)?;
    let wall = started.elapsed();
    let rows = data.n().min(EVAL_ROWS);
    let quality = match (
        model.predict(&data.features()[..rows * data.p()])?,
        data.targets(),
    ) {
        (Prediction::Real(pred), Targets::Real(y)) => Quality {
            metric: Metric::R2,
            value: r2(&pred, &y[..rows])?,
        },
        (Prediction::Classes { classes, .. }, Targets::Classes { labels, .. }) => Quality {
            metric: Metric::Accuracy,
            value: accuracy(&classes, &labels[..rows])?,
        },
        _ => return Err(target_error(model.name(), data)),
    };
    let params = model.fitted().map(|f| f.params.clone()).unwrap_or_default();
    Ok(Fit {
        report,
        wall,
        quality,
        params,
    })
}

fn target_error(model: &'static str, data: &Dataset) -> Error {
    Error::TargetMismatch {
        model,
        expected: "the targets its workload generates".into(),
        got: data.targets().describe(),
    }
}

/// The first `rows` rows of `data` (a copy), or `data` itself when it has no more.
pub(crate) fn prefix(data: &Dataset, rows: usize) -> Result<std::borrow::Cow<'_, Dataset>> {
    if rows >= data.n() {
        return Ok(std::borrow::Cow::Borrowed(data));
    }
    let idx: Vec<usize> = (0..rows).collect();
    Ok(std::borrow::Cow::Owned(data.select(&idx)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal losses differ by 0; a 1e-4 relative change passes, a 1e-2 one does not.
    #[test]
    fn loss_agreement_uses_the_relative_tolerance() {
        assert_eq!(loss_rel_diff(0.5, 0.5), 0.0);
        assert!(losses_agree(0.44815, 0.44815 * (1.0 + 1e-4)));
        assert!(!losses_agree(0.44815, 0.44815 * 1.01));
        assert!(losses_agree(1e-9, 2e-9), "both below the absolute floor");
        assert!(!losses_agree(f64::NAN, f64::NAN));
    }
}
