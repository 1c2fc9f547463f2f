//! The training loop.

use std::time::Instant;

use super::session::{CpuSession, Halt, Session};
use super::{Report, StopReason, TrainConfig};
use crate::data::{Dataset, epoch_plan};
use crate::engine::CpuEngine;
use crate::error::{Error, Result};
use crate::model::{Fitted, Model, init_params};

/// Runs gradient descent on a model. Built from a [`TrainConfig`], which is validated
/// once here, so a `Trainer` that exists is always valid.
///
/// One step on a batch is, as in seed 000's loop: forward pass and loss with the current
/// parameters; the stopping rule (when `tol` is set) and the divergence check, both
/// *before* the update; the backward pass and the update `θ ← θ − η ∂L/∂θ`.
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
    /// the loss becomes NaN or infinite; the model then holds the last finite parameters
    /// (those of the step whose loss was non-finite: its update is never applied).
    pub fn fit<M: Model + ?Sized>(&self, model: &mut M, data: &Dataset) -> Result<Report> {
        let started = Instant::now();
        let spec = model.spec_for(data)?;
        let init = init_params(&spec, model.init(), self.config.seed)?;
        let cap = self.config.batch_size.min(data.n());
        let mut engine = CpuEngine::<f32>::new(
            spec.program(),
            data.features(),
            data.p(),
            Some(data.targets()),
            cap,
        );
        engine.set_params(&init)?;
        let mut session = CpuSession::new(engine, self.config.tol);
        let (mut report, ended) = self.run(&mut session, model.name(), data.n(), started)?;
        // Stored whether or not the fit ended in an error: a halted session holds the
        // parameters of its last applied update.
        model.set_fitted(Fitted {
            spec,
            params: session.params()?,
        });
        report.wall = started.elapsed();
        ended.map(|()| report)
    }

    /// The epoch loop over any session. Returns the report and, separately, the error that
    /// ended the fit (if any), so that the caller stores the parameters either way.
    fn run(
        &self,
        session: &mut dyn Session,
        model: &'static str,
        n: usize,
        started: Instant,
    ) -> Result<(Report, Result<()>)> {
        let cfg = &self.config;
        let mut report = Report {
            model,
            backend: session.backend(),
            epoch_losses: Vec::new(),
            step_losses: Vec::new(),
            steps: 0,
            samples: 0,
            stop: StopReason::MaxEpochs,
            wall: started.elapsed(),
        };
        for epoch in 0..cfg.epochs {
            let plan = epoch_plan(
                cfg.seed,
                epoch,
                n,
                cfg.batch_size,
                cfg.shuffle,
                cfg.drop_last,
            )?;
            session.begin_epoch(plan.order())?;
            let sizes: Vec<usize> = plan.batches().map(|b| b.len).collect();
            for batch in plan.batches() {
                session.step(batch, cfg.learning_rate)?;
            }
            let synced = session.sync()?;
            let ran = synced.halt.map_or(synced.losses.len(), |(i, _)| i);
            let (mut loss_sum, mut rows) = (0f64, 0usize);
            for (&loss, &len) in synced.losses.iter().zip(&sizes).take(ran) {
                loss_sum += loss * len as f64;
                rows += len;
                if cfg.record_steps {
                    report.step_losses.push(loss);
                }
            }
            report.steps += ran as u64;
            report.samples += rows as u64;
            if rows > 0 {
                report.epoch_losses.push(loss_sum / rows as f64);
            }
            match synced.halt {
                None => {}
                Some((_, Halt::Tolerance { delta })) => {
                    report.stop = StopReason::Tolerance {
                        step: report.steps,
                        delta,
                    };
                    break;
                }
                Some((_, Halt::NonFinite { loss })) => {
                    let err = Error::Diverged {
                        step: report.steps,
                        epoch,
                        loss,
                        learning_rate: cfg.learning_rate,
                    };
                    return Ok((report, Err(err)));
                }
            }
        }
        Ok((report, Ok(())))
    }
}
