//! Training configuration, validated once when the [`Trainer`](super::Trainer) is built.

use crate::error::{Error, Result};

/// Hyper-parameters of a gradient-descent fit.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `batch_size` | 32 | rows per update: 1 = stochastic GD, ≥ n = full-batch GD |
/// | `learning_rate` | 0.1 | step size η (seed 000's default) |
/// | `epochs` | 100 | passes over the data (seed 000's `max_iter`) |
/// | `shuffle` | true | reshuffle the rows every epoch |
/// | `seed` | 0 | seeds the shuffles and the initialisation |
/// | `drop_last` | false | drop the last partial batch (the seeds' loop does; PyTorch does not by default) |
/// | `tol` | None | seed 000's rule: stop when \|loss − previous batch loss\| < tol |
/// | `record_steps` | false | keep every batch loss in the report, not only epoch means |
///
/// # Example
/// ```
/// use gradflow::{TrainConfig, Trainer};
/// // Seed 000's lr_gradient_descent(X, y, batch_size=3, max_iter=1000):
/// let seed_loop = TrainConfig::default().batch_size(3).epochs(1000).drop_last(true).tol(1e-8);
/// assert!(Trainer::new(seed_loop).is_ok());
/// let err = Trainer::new(TrainConfig::default().batch_size(0)).unwrap_err();
/// assert_eq!(err.to_string(), "batch_size 0: must be ≥ 1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Rows per update.
    pub batch_size: usize,
    /// Step size η.
    pub learning_rate: f64,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Reshuffle every epoch.
    pub shuffle: bool,
    /// Seed of shuffles and initialisation.
    pub seed: u64,
    /// Drop the last partial batch.
    pub drop_last: bool,
    /// Seed 000's stopping tolerance on consecutive batch losses.
    pub tol: Option<f64>,
    /// Record every batch loss.
    pub record_steps: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 32,
            learning_rate: 0.1,
            epochs: 100,
            shuffle: true,
            seed: 0,
            drop_last: false,
            tol: None,
            record_steps: false,
        }
    }
}

impl TrainConfig {
    /// Sets `batch_size`.
    pub fn batch_size(mut self, v: usize) -> Self {
        self.batch_size = v;
        self
    }
    /// Sets `learning_rate`.
    pub fn learning_rate(mut self, v: f64) -> Self {
        self.learning_rate = v;
        self
    }
    /// Sets `epochs`.
    pub fn epochs(mut self, v: usize) -> Self {
        self.epochs = v;
        self
    }
    /// Sets `shuffle`.
    pub fn shuffle(mut self, v: bool) -> Self {
        self.shuffle = v;
        self
    }
    /// Sets `seed`.
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }
    /// Sets `drop_last`.
    pub fn drop_last(mut self, v: bool) -> Self {
        self.drop_last = v;
        self
    }
    /// Sets `tol` (seed 000's stopping rule).
    pub fn tol(mut self, v: f64) -> Self {
        self.tol = Some(v);
        self
    }
    /// Sets `record_steps`.
    pub fn record_steps(mut self, v: bool) -> Self {
        self.record_steps = v;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad field and its value.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::param("batch_size", 0, "must be ≥ 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::param(
                "learning_rate",
                self.learning_rate,
                "must be finite and > 0",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::param("epochs", 0, "must be ≥ 1"));
        }
        if let Some(tol) = self.tol {
            if !(tol.is_finite() && tol >= 0.0) {
                return Err(Error::param("tol", tol, "must be finite and ≥ 0"));
            }
        }
        Ok(())
    }
}
