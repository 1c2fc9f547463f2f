//! The CPU session.

use std::sync::Arc;
use std::time::Duration;

use super::{HaltRule, Session, Shard, Synced, Traffic};
use crate::cpu::engine::{CpuEngine, Rows};
use crate::data::{Batch, EpochPlan};
use crate::error::Result;
use crate::program::{Rule, StepScalars};
use crate::schedule::{Prefetcher, Stream};

/// Rows of the next shuffled batch the CPU session prefetches after each step (the fused
/// GLM pass prefetches the rest of a batch as it goes).
const PREFETCH_ROWS: usize = crate::cpu::fast::glm::PREFETCH_AHEAD;

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
    /// A distributed fit: this rank's part of each batch, all-reduced per step.
    shard: Option<Shard>,
    /// Local SGD: average the parameters every this many steps (1: all-reduce the
    /// gradients every step instead).
    sync_every: usize,
    /// Local SGD: each step since the last average, as (this rank's loss, its rows, the
    /// global batch's rows), and the first error this rank met since (reported to every
    /// rank at the next average).
    local_steps: Vec<(f64, usize, usize)>,
    failed: Option<crate::Error>,
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
            shard: None,
            sync_every: 1,
            local_steps: Vec::new(),
            failed: None,
        }
    }

    /// Runs this rank's part of each batch of a distributed fit, all-reducing the
    /// gradients every step, or (`sync_every > 1`, local SGD) updating on its own and
    /// averaging the parameters every `sync_every` steps.
    pub fn sharded(self, shard: Option<Shard>, sync_every: usize) -> Self {
        CpuSession {
            shard,
            sync_every,
            ..self
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

impl CpuSession<'_> {
    /// Local SGD: this rank's share of `batch`, updated on at once with its own
    /// gradient; the parameters are averaged every `sync_every` steps.
    fn local_step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        let local = self.shard.as_ref().map_or(batch, |s| s.local(batch));
        let ran = match self.failed {
            Some(_) => Ok(None),
            None => self.loss_and_grads(local).map(Some),
        };
        match ran {
            Ok(Some(loss)) => {
                if local.len > 0 {
                    self.engine.update(self.update, update);
                }
                self.local_steps.push((loss, local.len, batch.len));
            }
            Ok(None) => self.local_steps.push((0.0, 0, batch.len)),
            Err(e) => {
                self.failed = Some(e);
                self.local_steps.push((0.0, 0, batch.len));
            }
        }
        if self.local_steps.len() >= self.sync_every {
            self.average()?;
        }
        Ok(())
    }

    /// Local SGD: the ranks' parameters averaged, the steps' global losses learned (and
    /// checked for a non-finite one).
    fn average(&mut self) -> Result<()> {
        let steps = std::mem::take(&mut self.local_steps);
        let status = self.failed.take().map_or(Ok(()), Err);
        let Some(shard) = &mut self.shard else {
            unreachable!("local SGD runs sharded")
        };
        let mut params = self.engine.params();
        let losses = shard.average(&mut params, &steps, status)?;
        self.engine.set_params(&params)?;
        self.halted = losses
            .into_iter()
            .any(|loss| self.pending.push_checked(&mut self.rule, loss));
        Ok(())
    }

    /// The loss and gradients of `batch` (a rank's empty share of a short batch: none).
    fn loss_and_grads(&mut self, batch: Batch) -> Result<f64> {
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
        if rows.is_empty() {
            return Ok(0.0);
        }
        self.engine.loss_and_grads(rows)
    }
}

impl Session for CpuSession<'_> {
    fn backend(&self) -> String {
        "cpu".into()
    }

    fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) -> Result<()> {
        let part = self.shard.as_mut().map(|s| s.begin_epoch(plan));
        let plan = part.as_ref().unwrap_or(plan);
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
        if self.shard.is_some() && self.sync_every > 1 {
            return self.local_step(batch, update);
        }
        let global = batch;
        let batch = self.shard.as_ref().map_or(batch, |s| s.local(batch));
        // The gradients are computed with the loss (one fused pass on the fast kernels)
        // and simply not applied when the loss halts the fit.
        let loss = self.loss_and_grads(batch);
        let loss = match &mut self.shard {
            Some(shard) => shard.reduce(self.engine.grads_mut(), loss, batch, global)?,
            None => loss?,
        };
        if self.pending.push_checked(&mut self.rule, loss) {
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
        if !self.local_steps.is_empty() {
            self.average()?;
        }
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
