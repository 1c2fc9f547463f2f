//! The epoch loop of the mini-batch solver: batches from the epoch plan, syncs, the
//! plateau rule, early stopping's check, the checkpoint at each good epoch's end, and the
//! request to back off when a chosen rate proves too large.

use std::sync::Arc;
use std::time::Instant;

use super::optim::Stepper;
use super::report::Marks;
use super::session::{Halt, Session, Synced};
use super::validation::Watch;
use super::{Progress, Report, StopReason, Trainer};
use crate::data::{epoch_plan, epoch_plan_over};
use crate::error::{Error, Result};

impl Trainer {
    /// The epoch loop over any session, from checkpoint `at` to epoch `horizon`. Returns
    /// how it ended: done (with the error that ended the fit, if any, kept apart so that
    /// the caller stores the parameters either way), or asking to back off (a chosen
    /// rate whose epoch loss was non-finite or rose past twice the best). `at` moves to
    /// each good epoch's end.
    pub(super) fn run(
        &self,
        session: &mut dyn Session,
        (report, started, n): (&mut Report, Instant, usize),
        (stepper, horizon): (&mut Stepper, usize),
        (at, initial): (&mut Checkpoint, &mut Option<f64>),
        mut watch: Option<&mut Watch<'_>>,
        backs_off: bool,
    ) -> Result<Ended> {
        let cfg = &self.config;
        let train_rows = watch.as_ref().map(|w| w.holdout.train_rows.clone());
        // Told at each sync: `synced` holds this epoch's steps so far, of sizes `sizes`.
        let progress = |epoch: usize, synced: &Synced, sizes: &[usize], report: &Report| {
            if let (Some(f), Some(&loss)) = (&self.progress, synced.losses.last()) {
                let done = synced.losses.len();
                let rows = report.samples + sizes.iter().take(done).sum::<usize>() as u64;
                f(Progress {
                    epoch,
                    steps: report.steps + done as u64,
                    loss,
                    samples_per_sec: rows as f64 / started.elapsed().as_secs_f64().max(1e-9),
                });
            }
        };
        // scikit-learn's n_iter_no_change: the best epoch loss and the epochs since.
        let (mut best, mut stale) = at.plateau;
        for epoch in at.epoch..horizon {
            let (seed, batch, shuffle, drop) =
                (cfg.seed, cfg.batch_size, cfg.shuffle, cfg.drop_last);
            let plan = Arc::new(match &train_rows {
                Some(rows) => epoch_plan_over(seed, epoch, rows, batch, shuffle, drop)?,
                None => epoch_plan(seed, epoch, n, batch, shuffle, drop)?,
            });
            session.begin_epoch(&plan)?;
            let sizes: Vec<usize> = plan.batches().map(|b| b.len).collect();
            let mut synced = Synced::default();
            let mut lr = stepper.lr(epoch, horizon, sizes.len());
            for batch in plan.batches() {
                self.check_interrupt(report.steps + batch.index as u64, epoch)?;
                lr = stepper.lr(epoch, horizon, sizes.len());
                session.step(batch, &stepper.next(lr))?;
                let every = cfg.loss_every.unwrap_or(usize::MAX);
                let due = (batch.index + 1) % every == 0 && batch.index + 1 < sizes.len();
                if due {
                    let halted = absorb(&mut synced, session.sync()?);
                    progress(epoch, &synced, &sizes, report);
                    if halted {
                        break;
                    }
                }
            }
            // The parameters come back with the losses (read below, one wait).
            absorb(&mut synced, session.sync_epoch()?);
            progress(epoch, &synced, &sizes, report);
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
                report.epoch_lrs.push(lr);
            }
            match synced.halt {
                None => {
                    let loss = report.final_loss();
                    // A rate too large for this stretch of the loss: the epoch's loss
                    // (over the same rows as every epoch's) is twice the best epoch's
                    // and above the first's — noise near a small loss can double it,
                    // but not lift it back above where the fit began.
                    let first = *initial.get_or_insert(loss);
                    if backs_off && loss > 2.0 * best && loss > first {
                        return Ok(Ended::BackOff {
                            step: report.steps,
                            epoch,
                            loss,
                        });
                    }
                    // One small readback per epoch: the fallback if a later step diverges.
                    let params = session.params()?;
                    if let Some(group) = &self.group {
                        group.check_same(&params, epoch)?;
                    }
                    if let Some(w) = watch.as_deref_mut() {
                        let (loss, stop) = w.epoch(&params, epoch)?;
                        report.validation_losses.push(loss);
                        if stop {
                            report.stop = StopReason::EarlyStopping {
                                epoch,
                                best_epoch: w.best_epoch,
                                best: w.best,
                            };
                            break;
                        }
                    }
                    stepper.end_epoch(loss);
                    let mut plateau = false;
                    if let Some(rule) = cfg.no_improvement {
                        if rule.improves(loss, best) {
                            stale = 0;
                        } else {
                            stale += 1;
                        }
                        plateau = stale >= rule.epochs;
                    }
                    best = best.min(loss);
                    if all_finite(&params) {
                        *at = Checkpoint {
                            epoch: epoch + 1,
                            params,
                            optimizer: if backs_off {
                                session.optimizer_state()?
                            } else {
                                Vec::new()
                            },
                            stepper: *stepper,
                            plateau: (best, stale),
                            marks: report.marks(),
                        };
                    }
                    if plateau {
                        report.stop = StopReason::NoImprovement { epoch, best };
                        break;
                    }
                }
                Some((_, Halt::Tolerance { delta })) => {
                    report.stop = StopReason::Tolerance {
                        step: report.steps,
                        delta,
                    };
                    break;
                }
                Some((_, Halt::NonFinite { loss })) => {
                    if backs_off {
                        return Ok(Ended::BackOff {
                            step: report.steps,
                            epoch,
                            loss,
                        });
                    }
                    let err = Error::Diverged {
                        step: report.steps,
                        epoch,
                        loss,
                        learning_rate: lr,
                    };
                    return Ok(Ended::Done(Err(err)));
                }
            }
        }
        Ok(Ended::Done(Ok(())))
    }
}

/// Times a chosen learning rate is divided by 4 before a fit that still diverges is an
/// error: 4⁻¹⁶ ≈ 2 · 10⁻¹⁰ of the first choice (each costs one epoch).
pub(super) const MAX_BACKOFFS: usize = 16;

/// The last good epoch's end: where a fit goes back to when a chosen rate proves too
/// large, and whose parameters a diverged fit keeps.
pub(super) struct Checkpoint {
    /// The next epoch to run.
    pub(super) epoch: usize,
    pub(super) params: Vec<Vec<f32>>,
    /// The optimizer's tensors (read only when the fit may back off).
    pub(super) optimizer: Vec<[Vec<f32>; 2]>,
    pub(super) stepper: Stepper,
    /// The plateau rule's best epoch loss and epochs since.
    pub(super) plateau: (f64, usize),
    /// The report's lengths at that point.
    pub(super) marks: Marks,
}

/// How [`Trainer::run`] ended.
pub(super) enum Ended {
    /// The fit is over (the error that ended it, if any).
    Done(Result<()>),
    /// A chosen rate's epoch loss was non-finite or rose: go back and slow down.
    BackOff { step: u64, epoch: usize, loss: f64 },
}

pub(super) fn all_finite(params: &[Vec<f32>]) -> bool {
    params.iter().flatten().all(|v| v.is_finite())
}

/// Appends a sync's losses to the epoch's; `true` once the session has halted.
fn absorb(epoch: &mut Synced, next: Synced) -> bool {
    if let Some((i, halt)) = next.halt {
        epoch.halt.get_or_insert((epoch.losses.len() + i, halt));
    }
    epoch.losses.extend(next.losses);
    epoch.halt.is_some()
}
