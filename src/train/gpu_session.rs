//! The GPU session, and verify mode: the CPU twin rerunning GPU steps.

use std::sync::Arc;
use std::thread::Scope;
use std::time::{Duration, Instant};

use super::session::{Halt, Session, Synced, Traffic};
use super::{Deviation, Verify};
use crate::data::{Batch, Dataset, EpochPlan};
use crate::engine::{CpuEngine, Rows};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuEngine, GpuEngineOptions, SlotTargets, TargetKind};
use crate::program::Program;
use crate::schedule::{HostTargets, Prefetcher};

/// Trains on the device: steps are recorded and submitted in groups, losses and the halt
/// flag are read back only at [`Session::sync`]. The data are resident, or streamed
/// through the engine's ring by a [`Prefetcher`] (`feed`).
pub(crate) struct GpuSession<'a> {
    engine: GpuEngine,
    feed: Option<Prefetcher>,
    /// Time spent waiting for loss and halt readbacks.
    sync_wait: Duration,
    backend: String,
    order: Vec<u32>,
    /// Steps queued in the current epoch (= loss slots used).
    queued: usize,
    /// Steps of the current epoch already returned by `sync`.
    synced: usize,
    /// The last loss returned, for the change reported by a tol halt.
    previous: f64,
    halted: bool,
    verify: Option<Verifier<'a>>,
    step: u64,
}

impl<'a> GpuSession<'a> {
    pub fn new(
        ctx: &GpuContext,
        program: Program,
        data: &'a Dataset,
        cap: usize,
        tol: Option<f64>,
        verify: Option<Verify>,
    ) -> Result<Self> {
        let options = GpuEngineOptions {
            tol: tol.map(|t| t as f32),
            ..GpuEngineOptions::default()
        };
        let verifier = verify.map(|v| Verifier::new(&program, data, cap, v));
        let engine = GpuEngine::with_options(
            ctx,
            program,
            data.features(),
            data.p(),
            data.targets(),
            cap,
            options,
        )?;
        Ok(Self::with_engine(ctx, engine, None, verifier))
    }

    /// A streaming session: a worker on `scope` gathers each epoch's batches ahead into
    /// `depth` host buffers, uploaded into the engine's `depth` slots.
    #[allow(clippy::too_many_arguments)] // the resident constructor's, plus the ring
    pub fn streaming<'s>(
        ctx: &GpuContext,
        program: Program,
        data: &'a Dataset,
        cap: usize,
        tol: Option<f64>,
        verify: Option<Verify>,
        depth: usize,
        scope: &'s Scope<'s, 'a>,
    ) -> Result<Self> {
        let options = GpuEngineOptions {
            tol: tol.map(|t| t as f32),
            loss_slots: Some(data.n().div_ceil(cap)),
            ..GpuEngineOptions::default()
        };
        let verifier = verify.map(|v| Verifier::new(&program, data, cap, v));
        let kind = TargetKind::of(data.targets());
        let engine = GpuEngine::ring(ctx, program, data.p(), kind, cap, depth, options)?;
        let feed = Prefetcher::spawn(scope, data, depth)?;
        Ok(Self::with_engine(ctx, engine, Some(feed), verifier))
    }

    fn with_engine(
        ctx: &GpuContext,
        engine: GpuEngine,
        feed: Option<Prefetcher>,
        verifier: Option<Verifier<'a>>,
    ) -> Self {
        let info = ctx.info();
        GpuSession {
            engine,
            feed,
            sync_wait: Duration::ZERO,
            backend: format!("gpu: {} ({:?})", info.name, info.backend),
            order: Vec::new(),
            queued: 0,
            synced: 0,
            previous: f64::INFINITY,
            halted: false,
            verify: verifier,
            step: 0,
        }
    }

    pub fn set_params(&mut self, params: &[Vec<f32>]) -> Result<()> {
        self.engine.set_params(params)
    }
}

impl Session for GpuSession<'_> {
    fn backend(&self) -> String {
        self.backend.clone()
    }

    fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) -> Result<()> {
        match &mut self.feed {
            Some(feed) => {
                feed.begin_epoch(plan);
                // Only verify mode reads the order on the host.
                if self.verify.is_some() {
                    self.order = plan.batches().flat_map(|b| plan.rows(b)).collect();
                }
            }
            None => {
                // Resident data are gathered through an order; unshuffled epochs read
                // the identity.
                self.order = match plan.order() {
                    Some(o) => o.to_vec(),
                    None => (0..self.engine_rows()).collect(),
                };
                self.engine.set_order(&self.order)?;
            }
        }
        self.queued = 0;
        self.synced = 0;
        Ok(())
    }

    fn step(&mut self, batch: Batch, lr: f64) -> Result<()> {
        if self.halted {
            return Ok(());
        }
        let due = self
            .verify
            .as_ref()
            .is_some_and(|v| self.step % v.config.every as u64 == 0);
        if due {
            self.verified_step(batch, lr)?;
        } else {
            self.engine_step(batch, lr)?;
        }
        self.queued += 1;
        self.step += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<Synced> {
        if self.halted || self.queued == self.synced {
            return Ok(Synced::default());
        }
        let waited = Instant::now();
        let all = self.engine.read_losses(self.queued)?;
        let halted_at = self.engine.halted_at()?;
        self.sync_wait += waited.elapsed();
        let mut losses: Vec<f64> = all[self.synced..].iter().map(|&l| f64::from(l)).collect();
        let mut halt = None;
        if let Some(slot) = halted_at {
            if slot >= self.synced {
                let i = slot - self.synced;
                losses.truncate(i + 1);
                let loss = losses[i];
                let before = if i > 0 { losses[i - 1] } else { self.previous };
                let reason = if loss.is_finite() {
                    Halt::Tolerance {
                        delta: (loss - before).abs(),
                    }
                } else {
                    Halt::NonFinite { loss }
                };
                halt = Some((i, reason));
                self.halted = true;
            }
        }
        self.previous = losses.last().copied().unwrap_or(self.previous);
        self.synced = self.queued;
        Ok(Synced { losses, halt })
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>> {
        self.engine.params()
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            mode: if self.feed.is_some() {
                "streaming"
            } else {
                "resident"
            },
            bytes: self.engine.bytes_uploaded(),
            upload_wait: self
                .feed
                .as_ref()
                .map_or(Duration::ZERO, Prefetcher::waited),
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
    fn engine_rows(&self) -> u32 {
        self.engine.rows() as u32
    }

    /// One step on the engine: by position in the resident order, or uploaded into ring
    /// slot `step % depth` first. The engine enforces the slot-reuse rule.
    fn engine_step(&mut self, batch: Batch, lr: f64) -> Result<()> {
        let Some(feed) = &mut self.feed else {
            return self.engine.step(batch.start, batch.len, lr, self.queued);
        };
        let host = feed.next(batch)?;
        let slot = (self.step % self.engine.ring_depth() as u64) as usize;
        let targets = match &host.targets {
            HostTargets::Real(y) => SlotTargets::Real(y),
            HostTargets::Labels(l) => SlotTargets::Labels(l),
        };
        let written = self.engine.write_slot(slot, &host.x, targets);
        // write_buffer has copied the rows: the buffer can be refilled.
        feed.recycle(host);
        written?;
        self.engine.step_slot(slot, batch.len, lr, self.queued)
    }

    /// One GPU step checked against the CPU twin started from the same parameters.
    fn verified_step(&mut self, batch: Batch, lr: f64) -> Result<()> {
        // Taken out for the step, so that the engine and the verifier borrow apart.
        let Some(mut v) = self.verify.take() else {
            return self.engine_step(batch, lr);
        };
        let checked = self.check_step(&mut v, batch, lr);
        self.verify = Some(v);
        checked
    }

    fn check_step(&mut self, v: &mut Verifier<'_>, batch: Batch, lr: f64) -> Result<()> {
        v.cpu.set_params(&self.engine.params()?)?;
        // Copied: the step below borrows the whole session.
        let batch_rows = self.order[batch.start..batch.start + batch.len].to_vec();
        let rows = Rows::Gather(&batch_rows);
        v.cpu.forward(rows)?;
        let cpu_loss = v.cpu.loss(rows)?;
        self.engine_step(batch, lr)?;
        if !cpu_loss.is_finite() {
            return Ok(()); // the halt flag reports it; nothing to compare
        }
        v.cpu.backward(rows)?;
        let cpu_grads: Vec<Vec<f32>> = v.cpu.grads().into_iter().map(<[f32]>::to_vec).collect();
        v.cpu.sgd(lr);
        let gpu_loss = self.engine.read_losses(self.queued + 1)?[self.queued];
        v.compare(self.step, "loss", &[gpu_loss], &[cpu_loss as f32])?;
        let params = v.cpu.program().params.clone();
        for (decl, cpu_grad) in params.iter().zip(&cpu_grads) {
            let gpu_grad = self.engine.read_buf(decl.grad)?;
            v.compare(
                self.step,
                &format!("grad {}", decl.name),
                &gpu_grad[..cpu_grad.len()],
                cpu_grad,
            )?;
        }
        let (gpu_after, cpu_after) = (self.engine.params()?, v.cpu.params());
        for (decl, (g, c)) in params.iter().zip(gpu_after.iter().zip(&cpu_after)) {
            v.compare(self.step, decl.name, g, c)?;
        }
        Ok(())
    }
}

/// The CPU twin of a GPU fit and the largest deviations seen so far.
struct Verifier<'a> {
    cpu: CpuEngine<'a, f32>,
    config: Verify,
    deviations: Vec<Deviation>,
}

impl<'a> Verifier<'a> {
    fn new(program: &Program, data: &'a Dataset, cap: usize, config: Verify) -> Self {
        Verifier {
            cpu: CpuEngine::new(
                program.clone(),
                data.features(),
                data.p(),
                Some(data.targets()),
                cap,
            ),
            config,
            deviations: Vec::new(),
        }
    }

    /// Folds one tensor comparison into the report; an error past the tolerance
    /// `|gpu − cpu| ≤ max(rtol · max(|gpu|, |cpu|), atol)`.
    fn compare(&mut self, step: u64, tensor: &str, gpu: &[f32], cpu: &[f32]) -> Result<()> {
        let (mut max_abs, mut max_rel, mut worst) = (0f64, 0f64, None);
        for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
            let (g, c) = (f64::from(g), f64::from(c));
            let abs = (g - c).abs();
            let scale = g.abs().max(c.abs());
            let rel = if scale > 0.0 { abs / scale } else { 0.0 };
            max_abs = max_abs.max(abs);
            max_rel = max_rel.max(rel);
            let allowed = (self.config.rtol * scale).max(self.config.atol);
            if abs > allowed || abs.is_nan() {
                worst.get_or_insert((i, g, c));
            }
        }
        let entry = match self.deviations.iter_mut().find(|d| d.tensor == tensor) {
            Some(d) => d,
            None => {
                self.deviations.push(Deviation {
                    tensor: tensor.to_string(),
                    ..Deviation::default()
                });
                self.deviations.last_mut().expect("just pushed")
            }
        };
        entry.max_abs = entry.max_abs.max(max_abs);
        entry.max_rel = entry.max_rel.max(max_rel);
        entry.checks += 1;
        match worst {
            None => Ok(()),
            Some((index, gpu, cpu)) => Err(Error::VerifyMismatch {
                step,
                tensor: tensor.to_string(),
                index,
                gpu,
                cpu,
                rtol: self.config.rtol,
                atol: self.config.atol,
            }),
        }
    }
}
