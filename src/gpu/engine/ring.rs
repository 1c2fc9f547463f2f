//! The streaming side of [`GpuEngine`]: a ring of `depth` batch slots that a host
//! scheduler fills while the device computes on the others.
//!
//! Each slot is a pair of buffers (features `cap × p`, targets `cap`); every op that
//! reads features or targets was bound once per slot when the engine was built, so a
//! step only picks the slot's bind groups. A slot holds its batch's rows in order, so
//! the kernels read rows `0 .. len` without an index.
//!
//! **The reuse hazard.** `queue.write_buffer` is applied at the *next* `submit`, before
//! that submission's command buffers. A write into slot s therefore must not happen
//! while a step that reads slot s is recorded but unsubmitted: the new rows would
//! overtake it. The rule kept here:
//!
//! 1. [`GpuEngine::step_slot`] submits its step at once, so no step is ever pending when
//!    the next slot is written (and the write lands after every step already submitted,
//!    in queue order);
//! 2. [`GpuEngine::write_slot`] first waits until the submission that last read the slot
//!    has *completed* (`device.poll` on its index). With `depth` slots the device keeps
//!    `depth − 1` steps queued while the host waits, and the data held in flight stay
//!    bounded by the ring instead of growing with wgpu's staging copies.
//!
//! The time spent in that wait is [`GpuEngine::gpu_wait`]: the host waiting for the GPU.

use std::time::{Duration, Instant};

use crate::data::Targets;
use crate::error::{Error, Result};
use crate::program::Program;

use super::super::context::GpuContext;
use super::{Data, GpuEngine, GpuEngineOptions, Source, StepRows, View};
use crate::cpu::loss::LossKind;

/// What a dataset's targets are, without the values: enough to build a ring engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// One real value per row.
    Real,
    /// One class label per row.
    Labels,
}

impl TargetKind {
    /// The kind of `targets`.
    pub fn of(targets: &Targets) -> Self {
        match targets {
            Targets::Real(_) => TargetKind::Real,
            Targets::Classes { .. } => TargetKind::Labels,
        }
    }

    /// Whether the program's loss reads targets of this kind; `got` describes them.
    pub(super) fn check(self, program: &Program, got: String) -> Result<()> {
        match (program.loss, self) {
            (LossKind::Mse, TargetKind::Real) if program.out_cols == 1 => Ok(()),
            (LossKind::SigmoidBce | LossKind::SoftmaxCce, TargetKind::Labels) => Ok(()),
            (kind, _) => Err(Error::TargetMismatch {
                model: "GPU engine",
                expected: format!("targets for {kind:?} with {} outputs", program.out_cols),
                got,
            }),
        }
    }
}

/// One batch's targets, for [`GpuEngine::write_slot`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotTargets<'a> {
    /// Real values.
    Real(&'a [f32]),
    /// Class labels.
    Labels(&'a [u32]),
}

impl SlotTargets<'_> {
    fn len(&self) -> usize {
        match self {
            SlotTargets::Real(y) => y.len(),
            SlotTargets::Labels(l) => l.len(),
        }
    }

    fn kind(&self) -> TargetKind {
        match self {
            SlotTargets::Real(_) => TargetKind::Real,
            SlotTargets::Labels(_) => TargetKind::Labels,
        }
    }
}

/// The slots on the device and what the host knows of them.
pub(super) struct Ring {
    x: Vec<wgpu::Buffer>,
    t: Vec<wgpu::Buffer>,
    kind: TargetKind,
    /// Rows written into each slot (0: never written).
    rows: Vec<usize>,
    /// The submission that last read each slot.
    last_read: Vec<Option<wgpu::SubmissionIndex>>,
    gpu_wait: Duration,
}

impl Ring {
    pub(super) fn new(
        ctx: &GpuContext,
        cap: usize,
        p: usize,
        depth: usize,
        kind: TargetKind,
    ) -> Result<Self> {
        if depth < 2 {
            return Err(Error::param(
                "ring_depth",
                depth,
                "must be ≥ 2 (one slot uploading while another is read)",
            ));
        }
        let features = cap
            .checked_mul(p)
            .ok_or_else(|| Error::param("batch rows × p", format!("{cap} × {p}"), "overflows"))?;
        let mut ring = Ring {
            x: Vec::with_capacity(depth),
            t: Vec::with_capacity(depth),
            kind,
            rows: vec![0; depth],
            last_read: vec![None; depth],
            gpu_wait: Duration::ZERO,
        };
        for s in 0..depth {
            ring.x
                .push(ctx.storage(&format!("ring slot {s}: features"), features)?);
            ring.t
                .push(ctx.storage(&format!("ring slot {s}: targets"), cap)?);
        }
        Ok(ring)
    }

    /// One view per slot: its features in one chunk, no index, its targets.
    pub(super) fn views(&self) -> Vec<View<'_>> {
        self.x
            .iter()
            .zip(&self.t)
            .map(|(x, t)| View {
                features: vec![x],
                rows_per_chunk: u32::MAX as usize,
                index: None,
                targets: t,
            })
            .collect()
    }
}

impl GpuEngine {
    /// An engine that holds no dataset: `depth` slots of at most `cap` rows of `p`
    /// features and targets of kind `targets`, filled by [`GpuEngine::write_slot`] and
    /// read by [`GpuEngine::step_slot`]. `options.loss_slots` must be set (the engine
    /// does not know n).
    ///
    /// ```no_run
    /// use gradflow::gpu::{GpuContext, GpuEngine, GpuEngineOptions, SlotTargets, TargetKind};
    /// use gradflow::model::{LinearRegression, Model};
    /// # use gradflow::data::Synthetic;
    /// let ctx = GpuContext::new()?;
    /// let data = Synthetic::linear(8, 2).dataset()?;
    /// let program = LinearRegression::new().spec_for(&data)?.program();
    /// let options = GpuEngineOptions { loss_slots: Some(1), ..Default::default() };
    /// let mut engine = GpuEngine::ring(&ctx, program, 2, TargetKind::Real, 4, 2, options)?;
    /// engine.write_slot(0, &[1.0, 2.0, 3.0, 4.0], SlotTargets::Real(&[1.0, 2.0]))?;
    /// engine.step_slot(0, 2, 0.1, 0)?;
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `depth < 2` (named `ring_depth`), zero `cap` or
    /// `p`, or no `loss_slots`; [`Error::TargetMismatch`]; [`Error::DeviceLimit`] when a
    /// slot exceeds one storage binding; [`Error::Device`].
    pub fn ring(
        ctx: &GpuContext,
        program: Program,
        p: usize,
        targets: TargetKind,
        cap: usize,
        depth: usize,
        options: GpuEngineOptions,
    ) -> Result<Self> {
        Self::build(
            ctx,
            program,
            p,
            cap,
            options,
            Source::Ring { depth, targets },
        )
    }

    /// Slots of a ring engine (0 for resident data).
    pub fn ring_depth(&self) -> usize {
        match &self.data {
            Data::Ring(r) => r.x.len(),
            Data::Resident { .. } => 0,
        }
    }

    /// Time the host spent in [`GpuEngine::write_slot`] waiting for the step that last
    /// read the slot to complete.
    pub fn gpu_wait(&self) -> Duration {
        match &self.data {
            Data::Ring(r) => r.gpu_wait,
            Data::Resident { .. } => Duration::ZERO,
        }
    }

    /// Writes one batch (`x`: rows × p, row-major, and one target per row) into `slot`,
    /// once the last step that read the slot has completed (see the module docs).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] on a resident engine, for a slot beyond the ring, or
    /// for 0 or more than `cap` rows; [`Error::ShapeMismatch`] when `x` is not whole rows
    /// or the targets differ in count or kind; [`Error::Device`].
    pub fn write_slot(&mut self, slot: usize, x: &[f32], targets: SlotTargets<'_>) -> Result<()> {
        // A recorded step would be overtaken by the write: submit it first. (step_slot
        // already submits each step; this keeps the rule local to the write.)
        self.flush()?;
        let (p, cap) = (self.p, self.cap);
        let Data::Ring(ring) = &mut self.data else {
            return Err(Error::param(
                "write_slot",
                "on a resident engine",
                "needs a ring engine (GpuEngine::ring)",
            ));
        };
        if slot >= ring.x.len() {
            return Err(Error::param("ring slot", slot, "must be below ring_depth"));
        }
        let rows = x.len() / p;
        if x.len() % p != 0 || targets.len() != rows || targets.kind() != ring.kind {
            return Err(Error::ShapeMismatch {
                what: "ring slot batch",
                expected: format!("rows × {p} features and one {:?} target per row", ring.kind),
                got: format!(
                    "{} values and {} {:?} targets",
                    x.len(),
                    targets.len(),
                    targets.kind()
                ),
            });
        }
        if rows == 0 || rows > cap {
            return Err(Error::param(
                "ring slot rows",
                rows,
                "must be between 1 and the engine's batch capacity",
            ));
        }
        if let Some(index) = ring.last_read[slot].take() {
            let waited = Instant::now();
            self.ctx
                .device()
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| Error::Device {
                    message: format!("waiting for ring slot {slot} to be read: {e}"),
                })?;
            ring.gpu_wait += waited.elapsed();
        }
        self.ctx.write(&ring.x[slot], x);
        match targets {
            SlotTargets::Real(y) => self.ctx.write(&ring.t[slot], y),
            SlotTargets::Labels(l) => self.ctx.write(&ring.t[slot], l),
        }
        ring.rows[slot] = rows;
        self.bytes_uploaded += (x.len() + rows) as u64 * 4;
        Ok(())
    }

    /// Records and submits one step on the first `len` rows of `slot`, writing its loss
    /// to `loss_slot`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] on a resident engine, for a slot beyond the ring, more
    /// rows than were written to it, or a loss slot beyond [`GpuEngine::loss_slots`];
    /// [`Error::Device`].
    pub fn step_slot(&mut self, slot: usize, len: usize, lr: f64, loss_slot: usize) -> Result<()> {
        let Data::Ring(ring) = &self.data else {
            return Err(Error::param(
                "step_slot",
                "on a resident engine",
                "needs a ring engine (GpuEngine::ring); use step",
            ));
        };
        if slot >= ring.x.len() {
            return Err(Error::param("ring slot", slot, "must be below ring_depth"));
        }
        if len > ring.rows[slot] {
            return Err(Error::param(
                "batch rows",
                len,
                "must not exceed the rows written to the slot",
            ));
        }
        self.record(StepRows::Slot(slot), len, lr, loss_slot)?;
        // Submitted at once: the next write_slot can then never overtake this step.
        self.flush()?;
        let last = self.last_submission.clone();
        if let Data::Ring(ring) = &mut self.data {
            ring.last_read[slot] = last;
        }
        Ok(())
    }
}
