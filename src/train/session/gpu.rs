//! The GPU session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::Scope;
use std::time::{Duration, Instant};

use super::verify::Verifier;
use super::{Halt, HaltRule, Session, Shard, Synced, Traffic};
use crate::data::{Batch, Dataset, EpochPlan, RowSource, RowWeights};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuEngine, GpuEngineOptions, PendingSync, RingShape, SyncRead};
use crate::program::Program;
use crate::program::StepScalars;
use crate::schedule::{Prefetcher, Stream};
use crate::train::{Deviation, Verify};

/// Trains on the device: steps are recorded and submitted in groups, losses and the halt
/// flag are read back only at [`Session::sync`]. The data are resident, or streamed
/// through the engine's ring (`stream`): each group of batches the prefetcher gathers is
/// written into ring slot `group number % depth`, its steps are recorded, and the group is
/// submitted as soon as its last step is, so the device computes on it while the host
/// takes the next group.
pub(crate) struct GpuSession<'a> {
    pub(super) engine: GpuEngine,
    stream: Option<Stream>,
    /// Time spent waiting for loss and halt readbacks.
    sync_wait: Duration,
    backend: String,
    /// The adapter is hardware (not a CPU adapter): its work runs beside the host's.
    hardware: bool,
    pub(super) plan: Option<Arc<EpochPlan>>,
    /// Steps queued in the current epoch (= loss slots used).
    pub(super) queued: usize,
    /// Steps of the current epoch already returned by `sync`.
    synced: usize,
    /// The last loss returned, for the change reported by a tol halt.
    previous: f64,
    halted: bool,
    pub(super) verify: Option<Verifier<'a>>,
    pub(super) step: u64,
    /// A distributed fit: each step's gradients are read back, all-reduced and written
    /// back, and the host halts on the global loss.
    sharded: Option<Sharded>,
    /// The parameters [`Session::sync_epoch`] read with the losses, until a step (or
    /// anything else that changes them) makes them stale.
    params_read: Option<Vec<Vec<f32>>>,
    /// Epochs ended ahead of the host's reads ([`Session::end_epoch_ahead`]), oldest
    /// first, and what `rewind` goes back to.
    ahead: Ahead,
}

/// The epochs a GPU session has queued ahead of the host's reads.
#[derive(Default)]
struct Ahead {
    /// Each unread epoch's read on its way, the loss slot its losses start from, its
    /// snapshot slot.
    unread: VecDeque<(PendingSync, usize, usize)>,
    /// Epochs queued past the oldest unread one, at most (fixed by the first call).
    depth: Option<usize>,
    /// Epochs ended ahead so far: the snapshot slots go round.
    ended: usize,
    /// The snapshot slot of the last epoch read: where a rewind goes back to.
    last_read: Option<usize>,
}

/// A GPU session's share of a distributed fit.
struct Sharded {
    shard: Shard,
    rule: HaltRule,
    pending: Synced,
    /// Local SGD: average the parameters every this many steps (1: all-reduce the
    /// gradients every step).
    sync_every: usize,
    /// Local SGD: the steps since the last average, as (the loss slot of this rank's
    /// step, or none for an empty share; its rows; the global batch's rows), and this
    /// rank's first error since.
    local: Vec<(Option<usize>, usize, usize)>,
    failed: Option<crate::Error>,
}

/// What a GPU session is checked against in verify mode: the CPU twin gathers the same
/// rows (and weights) from `source`.
pub(crate) type VerifyWith<'a> = Option<(Verify, &'a dyn RowSource, Option<&'a RowWeights<'a>>)>;

impl<'a> GpuSession<'a> {
    /// A resident session over `data` (and its rows' weights), uploaded once.
    pub fn resident(
        ctx: &GpuContext,
        program: Program,
        (data, weights): (&Dataset, Option<&RowWeights<'_>>),
        cap: usize,
        options: GpuEngineOptions,
        verify: VerifyWith<'a>,
    ) -> Result<Self> {
        let verifier = verify.map(|(v, source, w)| Verifier::new(&program, source, w, cap, v));
        let (x, p, t) = (data.features(), data.p(), data.targets());
        let engine = match weights {
            Some(w) => GpuEngine::weighted(ctx, program, x, p, t, &w.all(t), cap, options)?,
            None => GpuEngine::with_options(ctx, program, x, p, t, cap, options)?,
        };
        Ok(Self::with_engine(ctx, engine, None, verifier))
    }

    /// A streaming session: a worker on `scope` gathers each epoch's batches from
    /// `source`, `group` batches at a time, into `depth` host buffers, uploaded into the
    /// engine's `depth` slots.
    #[allow(clippy::too_many_arguments)] // the resident constructor's, plus the ring
    pub fn streaming<'s>(
        ctx: &GpuContext,
        program: Program,
        (source, weights): (&'a dyn RowSource, Option<&'a RowWeights<'a>>),
        cap: usize,
        (depth, group): (usize, usize),
        options: GpuEngineOptions,
        verify: Option<Verify>,
        scope: &'s Scope<'s, 'a>,
    ) -> Result<Self> {
        let options = GpuEngineOptions {
            loss_slots: Some(source.n().div_ceil(cap)),
            ..options
        };
        let verifier = verify.map(|v| Verifier::new(&program, source, weights, cap, v));
        let shape = RingShape {
            depth,
            slot_rows: group * cap,
            targets: source.target_kind(),
            weighted: weights.is_some(),
        };
        let engine = GpuEngine::ring(ctx, program, source.p(), cap, shape, options)?;
        let feed = Prefetcher::weighted(scope, source, weights, depth, group)?;
        Ok(Self::with_engine(
            ctx,
            engine,
            Some(Stream::new(feed)),
            verifier,
        ))
    }

    fn with_engine(
        ctx: &GpuContext,
        engine: GpuEngine,
        stream: Option<Stream>,
        verifier: Option<Verifier<'a>>,
    ) -> Self {
        let info = ctx.info();
        GpuSession {
            engine,
            stream,
            sync_wait: Duration::ZERO,
            backend: format!("gpu: {} ({:?})", info.name, info.backend),
            hardware: info.device_type != wgpu::DeviceType::Cpu,
            plan: None,
            queued: 0,
            synced: 0,
            previous: f64::INFINITY,
            halted: false,
            verify: verifier,
            step: 0,
            sharded: None,
            params_read: None,
            ahead: Ahead::default(),
        }
    }

    /// Runs this rank's part of each batch of a distributed fit, on an engine built with
    /// `halts: false` and no many-step kernel (the host decides on the global loss).
    ///
    /// With `sync_every > 1` (local SGD), each rank's steps update on the device as a
    /// single process's do, and the parameters are read back, averaged and written back
    /// every `sync_every` steps.
    pub fn sharded(self, shard: Option<Shard>, tol: Option<f64>, sync_every: usize) -> Self {
        let sharded = shard.map(|shard| Sharded {
            shard,
            rule: HaltRule::new(tol),
            pending: Synced::default(),
            sync_every,
            local: Vec::new(),
            failed: None,
        });
        GpuSession { sharded, ..self }
    }

    pub fn set_params(&mut self, params: &[Vec<f32>]) -> Result<()> {
        self.params_read = None;
        self.engine.set_params(params)
    }
}

impl Session for GpuSession<'_> {
    fn backend(&self) -> String {
        self.backend.clone()
    }

    fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) -> Result<()> {
        self.params_read = None;
        let part = self.sharded.as_mut().map(|s| s.shard.begin_epoch(plan));
        let plan = part.as_ref().unwrap_or(plan);
        match &mut self.stream {
            Some(stream) => stream.begin_epoch(plan),
            // Resident data are gathered through an order; unshuffled epochs read the
            // identity, uploaded once.
            None => match plan.order() {
                Some(order) => self.engine.set_order(order)?,
                None => self.engine.set_identity_order()?,
            },
        }
        self.plan = Some(Arc::clone(plan));
        self.queued = 0;
        self.synced = 0;
        Ok(())
    }

    fn step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        self.params_read = None;
        if self.halted {
            return Ok(());
        }
        match &self.sharded {
            Some(s) if s.sync_every > 1 => return self.local_step(batch, update),
            Some(_) => return self.sharded_step(batch, update),
            None => {}
        }
        let due = self
            .verify
            .as_ref()
            .is_some_and(|v| self.step.is_multiple_of(v.config.every as u64));
        if due {
            self.verified_step(batch, update)?;
        } else {
            self.engine_step(batch, update)?;
        }
        self.queued += 1;
        self.step += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<Synced> {
        self.sync_reading(false)
    }

    fn sync_epoch(&mut self) -> Result<Synced> {
        self.sync_reading(true)
    }

    fn reads_ahead(&self) -> Option<bool> {
        let can = self.stream.is_none() && self.sharded.is_none() && self.verify.is_none();
        can.then_some(self.hardware)
    }

    fn end_epoch_ahead(&mut self, depth: usize) -> Result<()> {
        let depth = *self.ahead.depth.get_or_insert(depth);
        // One snapshot for each unread epoch and one for the last read (the rewind's).
        let slots = depth + 2;
        let slot = self.ahead.ended % slots;
        self.engine.keep_snapshots(slots)?;
        self.engine.snapshot(slot)?;
        let pending = self.engine.start_sync(self.queued, true)?;
        self.ahead.unread.push_back((pending, self.synced, slot));
        self.ahead.ended += 1;
        self.synced = self.queued;
        Ok(())
    }

    fn rewind(&mut self) -> Result<()> {
        if self.ahead.unread.is_empty() {
            return Ok(());
        }
        // The reads on their way are dropped with their staging buffers.
        self.ahead.unread.clear();
        match self.ahead.last_read {
            Some(slot) => self.engine.restore(slot),
            // Nothing read yet: only a fit ending in an error gets here, and it keeps
            // no parameters.
            None => Ok(()),
        }
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>> {
        match self.params_read.take() {
            Some(params) => Ok(params),
            None => self.engine.params(),
        }
    }

    fn optimizer_state(&mut self) -> Result<Vec<[Vec<f32>; 2]>> {
        self.engine.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: &[[Vec<f32>; 2]]) -> Result<()> {
        self.engine.set_optimizer_state(state)
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            mode: if self.stream.is_some() {
                "streaming"
            } else {
                "resident"
            },
            bytes: self.engine.bytes_uploaded(),
            dispatches: self.engine.launches().0,
            submissions: self.engine.launches().1,
            upload_wait: self.stream.as_ref().map_or(Duration::ZERO, Stream::waited),
            gather: self
                .stream
                .as_ref()
                .map_or(Duration::ZERO, Stream::gathering),
            gpu_wait: self.sync_wait + self.engine.gpu_wait(),
        }
    }

    fn deviations(&self) -> Vec<Deviation> {
        self.verify
            .as_ref()
            .map_or_else(Vec::new, |v| v.deviations.clone())
    }
}

impl GpuSession<'_> {
    /// [`Session::sync`], reading the parameters with the losses when `with_params` (kept
    /// for the next [`Session::params`]).
    fn sync_reading(&mut self, with_params: bool) -> Result<Synced> {
        self.params_read = None;
        if self.sharded.as_ref().is_some_and(|s| !s.local.is_empty()) {
            self.average()?;
        }
        if let Some(s) = &mut self.sharded {
            return Ok(std::mem::take(&mut s.pending));
        }
        let waited = Instant::now();
        if let Some((pending, from, slot)) = self.ahead.unread.pop_front() {
            debug_assert!(with_params, "epochs read ahead are read at their ends");
            let read = self.engine.finish_sync(pending)?;
            self.sync_wait += waited.elapsed();
            self.ahead.last_read = Some(slot);
            return Ok(self.absorb_read(read, from));
        }
        if self.halted || self.queued == self.synced {
            return Ok(Synced::default());
        }
        let read = self.engine.read_sync(self.queued, with_params)?;
        self.sync_wait += waited.elapsed();
        let synced = self.absorb_read(read, self.synced);
        self.synced = self.queued;
        Ok(synced)
    }

    /// The losses of slots `from ..` of a read, cut at the halting step, and its
    /// parameters kept for [`Session::params`].
    fn absorb_read(&mut self, read: SyncRead, from: usize) -> Synced {
        self.params_read = read.params;
        let (all, halted_at) = (read.losses, read.halted_at);
        let mut losses: Vec<f64> = all[from..].iter().map(|&l| f64::from(l)).collect();
        let mut halt = None;
        if let Some(slot) = halted_at
            && slot >= from
        {
            let i = slot - from;
            losses.truncate(i + 1);
            let before = if i > 0 { losses[i - 1] } else { self.previous };
            halt = Some((i, Halt::of(losses[i], before)));
            self.halted = true;
        }
        self.previous = losses.last().copied().unwrap_or(self.previous);
        Synced { losses, halt }
    }

    /// One step of a distributed fit: this rank's share of `batch` (perhaps none) on the
    /// device with no update, its loss and gradients read back and all-reduced into the
    /// global batch's, then — unless the global loss halts the fit — those gradients
    /// written back and the update recorded. Every rank applies the same update.
    fn sharded_step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        let Some(s) = &self.sharded else {
            unreachable!("called for sharded sessions only")
        };
        let local = s.shard.local(batch);
        let computed = self.local_grads(local);
        let zeros = || {
            let params = &self.engine.program().params;
            params.iter().map(|d| vec![0f32; d.rows * d.cols]).collect()
        };
        let (loss, mut grads) = match computed {
            Ok(Some((loss, grads))) => (Ok(f64::from(loss)), grads),
            Ok(None) => (Ok(0.0), zeros()),
            Err(e) => (Err(e), zeros()),
        };
        let Some(s) = &mut self.sharded else {
            unreachable!("checked above")
        };
        let slices = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let loss = s.shard.reduce(slices, loss, local, batch)?;
        self.queued += 1;
        self.step += 1;
        if s.pending.push_checked(&mut s.rule, loss) {
            self.halted = true;
            return Ok(());
        }
        self.engine.apply_grads(&grads, *update)
    }

    /// Local SGD: this rank's share of `batch` stepped on the device with its own
    /// gradient (its loss to slot `queued`); the parameters are averaged every
    /// `sync_every` steps.
    fn local_step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        let Some(s) = &self.sharded else {
            unreachable!("called for sharded sessions only")
        };
        let local = s.shard.local(batch);
        let slot = self.queued;
        let ran = match (&s.failed, local.len) {
            (Some(_), _) => Ok(None),
            // An empty share still takes its group from the stream, in order.
            (None, 0) => self.locate(local).map(|_| None),
            (None, _) => self.engine_step(local, update).map(|()| Some(slot)),
        };
        let Some(s) = &mut self.sharded else {
            unreachable!("checked above")
        };
        match ran {
            Ok(slot) => s.local.push((slot, local.len, batch.len)),
            Err(e) => {
                s.failed.get_or_insert(e);
                s.local.push((None, 0, batch.len));
            }
        }
        let due = s.local.len() >= s.sync_every;
        self.queued += 1;
        self.step += 1;
        if due {
            self.average()?;
        }
        Ok(())
    }

    /// Local SGD: the ranks' parameters averaged and written back, the steps' global
    /// losses learned (and checked for a non-finite one).
    fn average(&mut self) -> Result<()> {
        let Some(s) = &mut self.sharded else {
            unreachable!("called for sharded sessions only")
        };
        let steps = std::mem::take(&mut s.local);
        let mut status = s.failed.take().map_or(Ok(()), Err);
        let (mut losses, mut params) = (Vec::new(), Vec::new());
        if status.is_ok() {
            let read = self
                .engine
                .read_losses(self.queued)
                .and_then(|l| Ok((l, self.engine.params()?)));
            match read {
                Ok((l, p)) => (losses, params) = (l, p),
                Err(e) => status = Err(e),
            }
        }
        if params.is_empty() {
            let decls = &self.engine.program().params;
            params = decls.iter().map(|d| vec![0f32; d.rows * d.cols]).collect();
        }
        let own: Vec<(f64, usize, usize)> = steps
            .iter()
            .map(|&(slot, m, total)| {
                let loss = slot
                    .and_then(|i| losses.get(i))
                    .map_or(0.0, |&l| f64::from(l));
                (loss, m, total)
            })
            .collect();
        let Some(s) = &mut self.sharded else {
            unreachable!("checked above")
        };
        let global = s.shard.average(&mut params, &own, status)?;
        self.engine.set_params(&params)?;
        self.halted = global
            .into_iter()
            .any(|loss| s.pending.push_checked(&mut s.rule, loss));
        Ok(())
    }

    /// Takes the stream's group that holds `local` (uploading it when it starts one):
    /// where a ring slot's rows are, `(slot, offset)`; `(0, start)` for resident data.
    fn locate(&mut self, local: Batch) -> Result<(usize, usize)> {
        let Some(stream) = &mut self.stream else {
            return Ok((0, local.start));
        };
        let depth = self.engine.ring_depth() as u64;
        let engine = &mut self.engine;
        let (group, offset) = stream.locate(local, |number, host| {
            let slot = (number % depth) as usize;
            engine.write_slot(slot, &host.x, host.targets.view(), host.row_weights())
        })?;
        Ok(((group % depth) as usize, offset))
    }

    /// The loss and gradients of this rank's share `local` of a step (`None` when it is
    /// empty), from the resident order or the ring slot that holds it.
    fn local_grads(&mut self, local: Batch) -> Result<Option<(f32, Vec<Vec<f32>>)>> {
        let (slot, offset) = self.locate(local)?;
        match (local.len, self.stream.is_some()) {
            (0, _) => Ok(None),
            (len, true) => self.engine.loss_and_grads_slot(slot, offset, len).map(Some),
            (len, false) => self.engine.loss_and_grads(offset, len).map(Some),
        }
    }

    /// One step on the engine: by position in the resident order, or from the ring slot
    /// that holds the batch's group (uploaded first when the batch starts a group). The
    /// engine enforces the slot-reuse rule.
    pub(super) fn engine_step(&mut self, batch: Batch, update: &StepScalars) -> Result<()> {
        let Some(stream) = &mut self.stream else {
            return self
                .engine
                .step(batch.start, batch.len, *update, self.queued);
        };
        let depth = self.engine.ring_depth() as u64;
        let engine = &mut self.engine;
        let (group, offset) = stream.locate(batch, |number, host| {
            // write_buffer copies the rows: the host buffer is recycled after this.
            let slot = (number % depth) as usize;
            engine.write_slot(slot, &host.x, host.targets.view(), host.row_weights())
        })?;
        let slot = (group % depth) as usize;
        self.engine
            .step_slot(slot, offset, batch.len, *update, self.queued)?;
        if stream.ends_group(batch) {
            // The group is recorded: the device starts on it while the host waits for
            // the next one.
            self.engine.flush()?;
        }
        Ok(())
    }
}
