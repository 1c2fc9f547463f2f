//! The training loop.

use std::time::Instant;

use super::{Report, StopReason, TrainConfig};
use crate::data::{Dataset, epoch_plan};
use crate::engine::{CpuEngine, Rows};
use crate::error::{Error, Result};
use crate::model::{Fitted, Model, init_params};

/// Runs gradient descent on a model. Built from a [`TrainConfig`], which is validated
/// once here, so a `Trainer` that exists is always valid.
///
/// One step on a batch is, as in seed 000's loop: forward pass and loss with the current
/// parameters; the stopping rule (when `tol` is set), checked *before* the update; the
/// backward pass and the update `θ ← θ − η ∂L/∂θ`.
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::Mlp, TrainConfig, Trainer};
/// let trainer = Trainer::new(TrainConfig::default().batch_size(16).epochs(3).seed(7))?;
/// let data = Synthetic::blobs(200, 2, 2).seed(1).dataset()?;
/// let report = trainer.fit(&mut Mlp::new(8), &data)?;
/// assert_eq!(report.epoch_losses.len(), 3);
/// assert_eq!(report.steps, 3 * 13); // ⌈200 / 16⌉ batches per epoch
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainConfig,
}

impl Trainer {
    /// A trainer for `config`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for the first invalid field (see [`TrainConfig::validate`]).
    pub fn new(config: TrainConfig) -> Result<Self> {
        config.validate()?;
        Ok(Trainer { config })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Fits `model` to `data` from a fresh initialisation and stores the parameters in it.
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] when the data do not suit the model; [`Error::InvalidParameter`]
    /// for a bad model setting (hidden width 0, a constant MLP init); [`Error::Diverged`] when
    /// the loss becomes NaN or infinite; the model then holds the last finite parameters.
    pub fn fit<M: Model + ?Sized>(&self, model: &mut M, data: &Dataset) -> Result<Report> {
        let cfg = &self.config;
        let started = Instant::now();
        let spec = model.spec_for(data)?;
        let init = init_params(&spec, model.init(), cfg.seed)?;
        let n = data.n();
        let mut engine = CpuEngine::<f32>::new(
            spec.program(),
            data.features(),
            data.p(),
            Some(data.targets()),
            cfg.batch_size.min(n),
        );
        engine.set_params(&init)?;
        let mut last_finite = init;

        let mut report = Report {
            model: model.name(),
            backend: "cpu".into(),
            epoch_losses: Vec::new(),
            step_losses: Vec::new(),
            steps: 0,
            samples: 0,
            stop: StopReason::MaxEpochs,
            wall: Default::default(),
        };
        let mut previous = f64::INFINITY;
        'epochs: for epoch in 0..cfg.epochs {
            let plan = epoch_plan(
                cfg.seed,
                epoch,
                n,
                cfg.batch_size,
                cfg.shuffle,
                cfg.drop_last,
            )?;
            let (mut loss_sum, mut rows_seen) = (0f64, 0usize);
            for batch in plan.batches() {
                let rows = match plan.order() {
                    Some(order) => Rows::Gather(&order[batch.start..batch.start + batch.len]),
                    None => Rows::Range {
                        start: batch.start,
                        len: batch.len,
                    },
                };
                engine.forward(rows)?;
                let loss = engine.loss(rows)?;
                if !loss.is_finite() {
                    let current = engine.params();
                    let params = if all_finite(&current) {
                        current
                    } else {
                        last_finite
                    };
                    model.set_fitted(Fitted { spec, params });
                    return Err(Error::Diverged {
                        step: report.steps,
                        epoch,
                        loss,
                        learning_rate: cfg.learning_rate,
                    });
                }
                if let Some(tol) = cfg.tol {
                    let delta = (loss - previous).abs();
                    if delta < tol {
                        report.stop = StopReason::Tolerance {
                            step: report.steps,
                            delta,
                        };
                        if rows_seen > 0 {
                            report.epoch_losses.push(loss_sum / rows_seen as f64);
                        }
                        break 'epochs;
                    }
                }
                previous = loss;
                if cfg.record_steps {
                    report.step_losses.push(loss);
                }
                engine.backward(rows)?;
                engine.sgd(cfg.learning_rate);
                loss_sum += loss * batch.len as f64;
                rows_seen += batch.len;
                report.steps += 1;
                report.samples += batch.len as u64;
            }
            report.epoch_losses.push(loss_sum / rows_seen as f64);
            // Snapshot once per epoch: the fallback if a later step diverges.
            let params = engine.params();
            if !all_finite(&params) {
                model.set_fitted(Fitted {
                    spec,
                    params: last_finite,
                });
                return Err(Error::Diverged {
                    step: report.steps,
                    epoch,
                    loss: f64::NAN,
                    learning_rate: cfg.learning_rate,
                });
            }
            last_finite = params;
        }
        model.set_fitted(Fitted {
            spec,
            params: engine.params(),
        });
        report.wall = started.elapsed();
        Ok(report)
    }
}

fn all_finite(params: &[Vec<f32>]) -> bool {
    params.iter().flatten().all(|v| v.is_finite())
}
