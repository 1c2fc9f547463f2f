//! What the trainer loop drives: one backend's running fit.
//!
//! The loop never waits on a backend per step. It queues steps and calls
//! [`Session::sync`] every `loss_every` steps or at the end of an epoch; the session
//! answers with the losses of the steps since the last sync and whether it halted.
//!
//! **Halting is decided inside the session, before the update of the step that triggers
//! it**, exactly as in seed 000's loop (`if |error − prev_error| < tol: return`): a
//! session that halts applies no further updates, so its parameters are those of the
//! step that fired, whenever the host finds out. The same holds for a non-finite loss,
//! which is how the last finite parameters survive a divergence. On the GPU this is a
//! flag on the device that the update kernels read; on the CPU it is a branch.

use std::sync::Arc;
use std::time::Duration;

use crate::cpu::engine::{CpuEngine, Rows};
use crate::data::{Batch, EpochPlan};
use crate::error::Result;
use crate::program::{Rule, StepScalars};
use crate::schedule::{Prefetcher, Stream};

/// Rows of the next shuffled batch the CPU session prefetches after each step (the fused
/// GLM pass prefetches the rest of a batch as it goes).
const PREFETCH_ROWS: usize = crate::cpu::fast::glm::PREFETCH_AHEAD;

/// Why a session stopped updating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Halt {
    /// `|loss − previous loss| < tol`.
    Tolerance {
        /// The change that was below tol.
        delta: f64,
    },
    /// The loss was NaN or infinite.
    NonFinite {
        /// The loss seen.
        loss: f64,
    },
}

/// The outcome of the steps since the last sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Synced {
    /// Loss of each step that ran, in order (the halting step included).
    pub losses: Vec<f64>,
    /// Set when a step halted the session: the index into `losses` and the reason.
    pub halt: Option<(usize, Halt)>,
}

/// A backend's running fit.
pub(crate) trait Session {
    /// Backend name for the report (`cpu`, or the GPU adapter).
    fn backend(&self) -> String;
    /// Starts an epoch that reads its rows as `plan` says.
    fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) -> Result<()>;
    /// Queues one step on positions `batch.start .. + batch.len` of the epoch order, with
    /// the update's scalars. A halted session ignores further steps.
    fn step(&mut self, batch: Batch, update: &StepScalars) -> Result<()>;
    /// Waits for the queued steps and returns their losses.
    fn sync(&mut self) -> Result<Synced>;
    /// Current parameters.
    fn params(&mut self) -> Result<Vec<Vec<f32>>>;
    /// The optimizer's state tensors (two per parameter).
    fn optimizer_state(&mut self) -> Result<Vec<[Vec<f32>; 2]>>;
    /// Restores the optimizer's state tensors.
    fn set_optimizer_state(&mut self, state: &[[Vec<f32>; 2]]) -> Result<()>;
    /// How the data are held, bytes sent to the device and the waits so far.
    fn traffic(&self) -> Traffic;
    /// Verify mode's deviations so far (none for sessions that do not verify).
    fn deviations(&self) -> Vec<super::Deviation> {
        Vec::new()
    }
}

/// A session's data movement, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Traffic {
    pub mode: &'static str,
    pub bytes: u64,
    /// GPU: compute dispatches and queue submissions.
    pub dispatches: u64,
    pub submissions: u64,
    pub gather: Duration,
    pub upload_wait: Duration,
    pub gpu_wait: Duration,
}

/// The seed's rule and the divergence check, shared by every session.
#[derive(Debug, Clone)]
pub(crate) struct HaltRule {
    tol: Option<f64>,
    previous: f64,
}

impl HaltRule {
    pub fn new(tol: Option<f64>) -> Self {
        HaltRule {
            tol,
            previous: f64::INFINITY,
        }
    }

    /// Checks a step's loss; `Some` means: do not update, stop.
    ///
    /// Training runs in f32, so a loss beyond f32's range counts as non-finite even when
    /// the reference kernels, which sum in f64, could still represent it: CPU and GPU then
    /// halt on the same condition.
    pub fn check(&mut self, loss: f64) -> Option<Halt> {
        if !(loss as f32).is_finite() {
            return Some(Halt::NonFinite { loss });
        }
        let delta = (loss - self.previous).abs();
        self.previous = loss;
        match self.tol {
            Some(tol) if delta < tol => Some(Halt::Tolerance { delta }),
            _ => None,
        }
    }
}

/// The CPU session: runs each step at once (with the engine's kernels), on an in-memory
/// dataset read in place or on groups of batches streamed from any other source.
pub(crate) struct CpuSession<'a> {
    engine: CpuEngine<'a, f32>,
    update: Rule,
    plan: Option<Arc<EpochPlan>>,
    /// Streaming: the engine holds one gathered group at a time.
    stream: Option<Stream>,
    rule: HaltRule,
    pending: Synced,
    halted: bool,
}

impl<'a> CpuSession<'a> {
    /// Over an engine that reads the whole dataset, updating by `rule`.
    pub fn new(engine: CpuEngine<'a, f32>, rule: Rule, tol: Option<f64>) -> Self {
        CpuSession {
            engine,
            update: rule,
            plan: None,
            stream: None,
            rule: HaltRule::new(tol),
            pending: Synced::default(),
            halted: false,
        }
    }

    /// Loads the parameters.
    pub fn set_params(&mut self, params: &[Vec<f32>]) -> Result<()> {
        self.engine.set_params(params)
    }

    /// Over a batch engine ([`CpuEngine::for_batches`]) fed by a prefetcher.
    pub fn streaming(
        engine: CpuEngine<'a, f32>,
        feed: Prefetcher,
        rule: Rule,
        tol: Option<f64>,
    ) -> Self {
        CpuSession {
            stream: Some(Stream::new(feed)),
            ..Self::new(engine, rule, tol)
        }
    }
}

impl Session for CpuSession<'_> {
    fn backend(&self) -> String {
        "cpu".into()
    }

    fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) -> Result<()> {
        match &mut self.stream {
            Some(stream) => stream.begin_epoch(plan),
            None => self.plan = Some(Arc::clone(plan)),
        }
        Ok(())
    }

    fn step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        if self.halted {
            return Ok(());
        }
        let rows = match &mut self.stream {
            Some(stream) => {
                let engine = &mut self.engine;
                let (_, start) = stream.locate(batch, |_, group| {
                    engine.load(&group.x, group.targets.view(), group.row_weights())
                })?;
                Rows::Range {
                    start,
                    len: batch.len,
                }
            }
            None => match self.plan.as_deref().and_then(EpochPlan::order) {
                Some(order) => Rows::Gather(&order[batch.start..batch.start + batch.len]),
                None => Rows::Range {
                    start: batch.start,
                    len: batch.len,
                },
            },
        };
        // The gradients are computed with the loss (one fused pass on the fast kernels)
        // and simply not applied when the loss halts the fit.
        let loss = self.engine.loss_and_grads(rows)?;
        self.pending.losses.push(loss);
        if let Some(halt) = self.rule.check(loss) {
            self.pending.halt = Some((self.pending.losses.len() - 1, halt));
            self.halted = true;
            return Ok(());
        }
        self.engine.update(self.update, update);
        if let Some(order) = self.plan.as_deref().and_then(EpochPlan::order) {
            let next = (batch.start + batch.len).min(order.len());
            self.engine
                .prefetch(&order[next..(next + PREFETCH_ROWS).min(order.len())]);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<Synced> {
        Ok(std::mem::take(&mut self.pending))
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>> {
        Ok(self.engine.params())
    }

    fn optimizer_state(&mut self) -> Result<Vec<[Vec<f32>; 2]>> {
        Ok(self.engine.optimizer_state())
    }

    fn set_optimizer_state(&mut self, state: &[[Vec<f32>; 2]]) -> Result<()> {
        self.engine.set_optimizer_state(state)
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            mode: if self.stream.is_some() {
                "streaming"
            } else {
                "in-memory"
            },
            upload_wait: self.stream.as_ref().map_or(Duration::ZERO, Stream::waited),
            gather: self
                .stream
                .as_ref()
                .map_or(Duration::ZERO, Stream::gathering),
            ..Traffic::default()
        }
    }
}
