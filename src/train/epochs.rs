//! The epoch loop of the mini-batch solver: batches from the epoch plan, syncs, the
//! plateau rule, early stopping's check, the checkpoint at each good epoch's end, the
//! request to back off when a chosen rate proves too large, and the epochs queued ahead
//! of the host's reads on a GPU.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::optim::Stepper;
use super::report::Marks;
use super::session::{Halt, Session, Synced};
use super::validation::Watch;
use super::{Progress, Report, StopReason, Trainer};
use crate::data::{epoch_plan, epoch_plan_over};
use crate::error::{Error, Result};
use crate::program::StepScalars;

impl Trainer {
    /// The epoch loop over any session, from checkpoint `at` to epoch `horizon`. Returns
    /// how it ended: done (with the error that ended the fit, if any, kept apart so that
    /// the caller stores the parameters either way), or asking to back off (a chosen
    /// rate whose epoch loss was non-finite or rose past twice the best). `at` moves to
    /// each good epoch's end. Whatever was queued ahead of the last epoch read is undone
    /// before it returns: the session holds that epoch's end.
    pub(super) fn run(
        &self,
        session: &mut dyn Session,
        (report, started, n): (&mut Report, Instant, usize),
        (stepper, horizon): (&mut Stepper, usize),
        (at, initial): (&mut Checkpoint, &mut Option<f64>),
        watch: Option<&mut Watch<'_>>,
        backs_off: bool,
    ) -> Result<Ended> {
        let ended = self.run_epochs(
            session,
            (report, started, n),
            (stepper, horizon),
            (at, initial),
            watch,
            backs_off,
        );
        let rewound = session.rewind();
        let ended = ended?;
        rewound?;
        Ok(ended)
    }

    /// [`Trainer::run`]'s loop. Where the session can (a resident GPU fit in one
    /// process, the loss read once an epoch, no optimizer state to checkpoint), the
    /// epochs after the one being read are queued before it is read — up to
    /// `epochs_ahead` of them — with the rates the stepper gives before it has seen that
    /// epoch's loss. The host's decision on the epoch read then either keeps them (the
    /// fit goes on, and the rates the decision gives are those they were queued with:
    /// always, but for an adaptive rate that has just been divided) or undoes them.
    /// Either way the fit takes the steps, and ends with the bits, it would have taken
    /// reading each epoch before queuing the next.
    #[allow(clippy::too_many_lines)] // one epoch's decisions, in the order they are made
    fn run_epochs(
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
        let rows = (n, train_rows.as_deref());
        let reads_ahead = session.reads_ahead();
        let can_ahead = reads_ahead.is_some()
            && self.group.is_none()
            && cfg.loss_every.is_none()
            && !(backs_off && stepper.keeps_state());
        let auto = can_ahead && cfg.epochs_ahead.is_none() && reads_ahead == Some(true);
        let mut depth = if can_ahead {
            cfg.epochs_ahead.unwrap_or(0)
        } else {
            0
        };
        let mut ahead: VecDeque<Queued> = VecDeque::new();
        // scikit-learn's n_iter_no_change: the best epoch loss and the epochs since.
        let (mut best, mut stale) = at.plateau;
        for epoch in at.epoch..horizon {
            let began = Instant::now();
            let mut this = match ahead.pop_front() {
                Some(queued) => queued,
                None => {
                    let marks = (&*report, started);
                    self.queue_epoch(session, (epoch, horizon, rows), *stepper, marks, depth)?
                }
            };
            // The epochs after it go first: the device runs them while the host waits
            // for this one and decides.
            while ahead.len() < depth && epoch + 1 + ahead.len() < horizon {
                let next = epoch + 1 + ahead.len();
                let from = ahead.back().map_or(this.after, |q| q.after);
                let marks = (&*report, started);
                let queued =
                    self.queue_epoch(session, (next, horizon, rows), from, marks, depth)?;
                ahead.push_back(queued);
            }
            let sizes = &this.sizes;
            let mut synced = std::mem::take(&mut this.synced);
            absorb(&mut synced, session.sync_epoch()?);
            self.tell(epoch, &synced, sizes, report, started);
            *stepper = this.after;
            let ran = synced.halt.map_or(synced.losses.len(), |(i, _)| i);
            let (mut loss_sum, mut rows) = (0f64, 0usize);
            for (&loss, &len) in synced.losses.iter().zip(sizes).take(ran) {
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
                report.epoch_lrs.push(this.lr);
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
                            // Plain SGD keeps no state: nothing to read.
                            optimizer: if backs_off && stepper.keeps_state() {
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
                    // The next epoch was queued before this one's loss was known: kept
                    // if its rates are the ones the stepper gives now.
                    if let Some(next) = ahead.front_mut() {
                        match next.replay(*stepper, horizon) {
                            Some(after) => next.after = after,
                            None => {
                                session.rewind()?;
                                ahead.clear();
                            }
                        }
                    }
                    if auto && depth == 0 && began.elapsed() < AUTO_AHEAD_BELOW {
                        depth = AUTO_EPOCHS_AHEAD;
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
                        learning_rate: this.lr,
                    };
                    return Ok(Ended::Done(Err(err)));
                }
            }
        }
        Ok(Ended::Done(Ok(())))
    }

    /// Queues epoch `epoch`'s steps from stepper state `from`, syncing every
    /// `loss_every` steps as configured; with `depth` > 0 its end is read ahead
    /// ([`Session::end_epoch_ahead`]).
    fn queue_epoch(
        &self,
        session: &mut dyn Session,
        (epoch, horizon, (n, train_rows)): (usize, usize, (usize, Option<&[u32]>)),
        from: Stepper,
        (report, started): (&Report, Instant),
        depth: usize,
    ) -> Result<Queued> {
        let cfg = &self.config;
        let (seed, batch, shuffle, drop) = (cfg.seed, cfg.batch_size, cfg.shuffle, cfg.drop_last);
        let plan = Arc::new(match train_rows {
            Some(rows) => epoch_plan_over(seed, epoch, rows, batch, shuffle, drop)?,
            None => epoch_plan(seed, epoch, n, batch, shuffle, drop)?,
        });
        session.begin_epoch(&plan)?;
        let sizes: Vec<usize> = plan.batches().map(|b| b.len).collect();
        let mut queued = Queued {
            sizes,
            lr: 0.0,
            updates: Vec::new(),
            epoch,
            after: from,
            synced: Synced::default(),
        };
        let steps = queued.sizes.len();
        for batch in plan.batches() {
            // The step is named as counted so far: the report has not yet counted
            // the epochs queued ahead of this one.
            self.check_interrupt(report.steps + batch.index as u64, epoch)?;
            queued.lr = queued.after.lr(epoch, horizon, steps);
            let update = queued.after.next(queued.lr);
            session.step(batch, &update)?;
            if depth > 0 {
                queued.updates.push(update);
            }
            let every = cfg.loss_every.unwrap_or(usize::MAX);
            let due = (batch.index + 1) % every == 0 && batch.index + 1 < steps;
            if due {
                let halted = absorb(&mut queued.synced, session.sync()?);
                self.tell(epoch, &queued.synced, &queued.sizes, report, started);
                if halted {
                    break;
                }
            }
        }
        if depth > 0 {
            session.end_epoch_ahead(depth)?;
        }
        Ok(queued)
    }

    /// The progress callback, told at each sync: `synced` holds this epoch's steps so
    /// far, of sizes `sizes`.
    fn tell(
        &self,
        epoch: usize,
        synced: &Synced,
        sizes: &[usize],
        report: &Report,
        started: Instant,
    ) {
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
    }
}

/// Automatic `epochs_ahead`: this many once an epoch, queued and read, takes less than
/// [`AUTO_AHEAD_BELOW`]. Two epochs hide a round trip to the host behind a step of a
/// third of its length (an H200: ~0.1–0.3 ms a round trip, W4's step 0.16 ms); a fit
/// that stops early has queued at most two epochs it undoes, under 10 ms of device time.
pub(crate) const AUTO_EPOCHS_AHEAD: usize = 2;

/// See [`AUTO_EPOCHS_AHEAD`]: epochs longer than this gain too little from it.
pub(crate) const AUTO_AHEAD_BELOW: Duration = Duration::from_millis(5);

/// An epoch's steps as queued: what the host needs to count them once they are read.
struct Queued {
    epoch: usize,
    sizes: Vec<usize>,
    /// The rate of its last step (the report's rate for the epoch).
    lr: f64,
    /// Each step's update, kept for an epoch queued ahead ([`Queued::replay`]).
    updates: Vec<StepScalars>,
    /// The stepper after its steps, before the epoch's loss is told to it.
    after: Stepper,
    /// The losses of its syncs before its end.
    synced: Synced,
}

impl Queued {
    /// An epoch queued ahead, replayed from stepper state `from` (the one that has seen
    /// the loss of the epoch before): the state after its steps when they give the very
    /// updates it was queued with, else `None` (it must be undone and queued again).
    fn replay(&self, mut from: Stepper, horizon: usize) -> Option<Stepper> {
        let steps = self.sizes.len();
        for queued in &self.updates {
            let lr = from.lr(self.epoch, horizon, steps);
            if from.next(lr) != *queued {
                return None;
            }
        }
        Some(from)
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
