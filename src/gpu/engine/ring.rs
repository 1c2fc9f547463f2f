//! The streaming side of [`GpuEngine`]: a ring of `depth` slots that a host scheduler
//! fills while the device computes on the others.
//!
//! Each slot is a pair of buffers (features `slot_rows × p`, targets `slot_rows`) holding
//! one *group* of consecutive batches back to back, so that small batches cost one upload
//! per group. Every op that reads features or targets was bound once per slot when the
//! engine was built, so a step only picks the slot's bind groups. A step reads rows
//! `offset .. offset + len` of its slot through a shared identity index (the kernels'
//! gather path with `index[i] = i`), so no kernel needs a second addressing mode.
//!
//! **The reuse hazard.** `queue.write_buffer` is applied at the *next* `submit`, before
//! that submission's command buffers. A write into slot s therefore must not happen
//! while a step that reads slot s is recorded but unsubmitted: the new rows would
//! overtake it. The rule kept here:
//!
//! 1. the engine remembers which slots the recorded, unsubmitted steps read; at each
//!    submission it stamps those slots with the submission's index;
//! 2. [`GpuEngine::write_slot`] submits first when a pending step reads the slot (so the
//!    write lands after it, in queue order), then waits until the submission that last
//!    read the slot has *completed* (`device.poll` on its index). With `depth` slots the
//!    device keeps up to `depth − 1` groups queued while the host waits, and the data in
//!    flight stay bounded by the ring instead of growing with wgpu's staging copies.
//!
//! The time spent in that wait is [`GpuEngine::gpu_wait`]: the host waiting for the GPU.

use std::time::{Duration, Instant};

use crate::data::{BatchTargets, TargetKind};
use crate::error::{Error, Result};
use crate::program::LossKind;
use crate::program::Program;
use crate::program::StepScalars;

use super::super::context::GpuContext;
use super::{Data, GpuEngine, GpuEngineOptions, Source, StepRows, View};

/// The shape of a streaming ring: `depth` slots of `slot_rows` rows each, and the kind of
/// target a row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingShape {
    /// Slots (≥ 2: one uploading while another is read).
    pub depth: usize,
    /// Rows per slot: a group of consecutive batches (≥ the batch capacity).
    pub slot_rows: usize,
    /// Real targets or class labels.
    pub targets: TargetKind,
    /// Whether each row carries a loss weight (written with the rows).
    pub weighted: bool,
}

/// Whether the program's loss reads targets of `kind`; `got` describes them.
pub(super) fn check_kind(kind: TargetKind, program: &Program, got: String) -> Result<()> {
    match (program.loss, kind) {
        (LossKind::Mse, TargetKind::Real) if program.out_cols == 1 => Ok(()),
        (LossKind::SigmoidBce | LossKind::SoftmaxCce, TargetKind::Labels) => Ok(()),
        (loss, _) => Err(Error::TargetMismatch {
            model: "GPU engine",
            expected: format!("targets for {loss:?} with {} outputs", program.out_cols),
            got,
        }),
    }
}

/// The slots on the device and what the host knows of them.
pub(super) struct Ring {
    x: Vec<wgpu::Buffer>,
    t: Vec<wgpu::Buffer>,
    /// Row weights per slot, for a weighted ring (else empty).
    w: Vec<wgpu::Buffer>,
    /// `index[i] = i` for every row of a slot: steps read their rows through it.
    identity: wgpu::Buffer,
    slot_rows: usize,
    kind: TargetKind,
    /// Rows written into each slot (0: never written).
    rows: Vec<usize>,
    /// Whether a recorded, unsubmitted step reads each slot.
    pending: Vec<bool>,
    /// The submission that last read each slot.
    last_read: Vec<Option<wgpu::SubmissionIndex>>,
    gpu_wait: Duration,
}

impl Ring {
    pub(super) fn new(ctx: &GpuContext, shape: RingShape, p: usize) -> Result<Self> {
        let RingShape {
            depth,
            slot_rows,
            targets: kind,
            weighted,
        } = shape;
        if depth < 2 {
            return Err(Error::param(
                "ring_depth",
                depth,
                "must be ≥ 2 (one slot uploading while another is read)",
            ));
        }
        let features = slot_rows.checked_mul(p).ok_or_else(|| {
            Error::param("slot rows × p", format!("{slot_rows} × {p}"), "overflows")
        })?;
        let rows = u32::try_from(slot_rows)
            .map_err(|_| Error::param("slot rows", slot_rows, "must fit in u32"))?;
        let identity: Vec<u32> = (0..rows).collect();
        let mut ring = Ring {
            x: Vec::with_capacity(depth),
            t: Vec::with_capacity(depth),
            w: Vec::new(),
            identity: ctx.upload("ring slot index", &identity)?,
            slot_rows,
            kind,
            rows: vec![0; depth],
            pending: vec![false; depth],
            last_read: vec![None; depth],
            gpu_wait: Duration::ZERO,
        };
        for s in 0..depth {
            ring.x
                .push(ctx.storage(&format!("ring slot {s}: features"), features)?);
            ring.t
                .push(ctx.storage(&format!("ring slot {s}: targets"), slot_rows)?);
            if weighted {
                ring.w
                    .push(ctx.storage(&format!("ring slot {s}: weights"), slot_rows)?);
            }
        }
        Ok(ring)
    }

    /// One view per slot: its features in one chunk, the identity index, its targets.
    pub(super) fn views(&self) -> Vec<View<'_>> {
        self.x
            .iter()
            .zip(&self.t)
            .enumerate()
            .map(|(s, (x, t))| View {
                features: vec![x],
                rows_per_chunk: u32::MAX as usize,
                index: Some(&self.identity),
                targets: t,
                weights: self.w.get(s),
            })
            .collect()
    }

    /// Marks `slot` as read by a recorded, unsubmitted step.
    pub(super) fn read_pending(&mut self, slot: usize) {
        self.pending[slot] = true;
    }

    /// Stamps the slots read by the steps just submitted with the submission's index.
    pub(super) fn submitted(&mut self, index: &wgpu::SubmissionIndex) {
        for (pending, last) in self.pending.iter_mut().zip(&mut self.last_read) {
            if std::mem::take(pending) {
                *last = Some(index.clone());
            }
        }
    }
}

impl GpuEngine {
    /// Checks that rows `offset .. offset + len` were written to ring slot `slot`;
    /// returns `offset` as the kernels read it.
    fn slot_rows(&self, slot: usize, offset: usize, len: usize) -> Result<u32> {
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
        if offset + len > ring.rows[slot] {
            return Err(Error::param(
                "slot offset + batch rows",
                offset + len,
                "must not exceed the rows written to the slot",
            ));
        }
        Ok(offset as u32) // below slot_rows, which fits u32
    }

    /// An engine that holds no dataset: `depth` slots of `slot_rows` rows of `p`
    /// features and targets of kind `targets`, filled by [`GpuEngine::write_slot`] and
    /// read by [`GpuEngine::step_slot`], in batches of at most `cap` rows.
    /// `options.loss_slots` must be set (the engine does not know n).
    ///
    /// ```no_run
    /// use gradflow::data::{BatchTargets, TargetKind};
    /// use gradflow::gpu::{GpuContext, GpuEngine, GpuEngineOptions, RingShape};
    /// use gradflow::model::{LinearRegression, Model};
    /// # use gradflow::data::Synthetic;
    /// let ctx = GpuContext::new()?;
    /// let data = Synthetic::linear(8, 2).dataset()?;
    /// let program = LinearRegression::new().spec_for(&data)?.program();
    /// let options = GpuEngineOptions { loss_slots: Some(2), ..Default::default() };
    /// let shape = RingShape { depth: 2, slot_rows: 4, targets: TargetKind::Real, weighted: false };
    /// let mut engine = GpuEngine::ring(&ctx, program, 2, 2, shape, options)?;
    /// // Two batches of 2 rows in slot 0, one upload.
    /// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    /// engine.write_slot(0, &x, BatchTargets::Real(&[1.0, 2.0, 3.0, 4.0]), None)?;
    /// engine.step_slot(0, 0, 2, 0.1, 0)?;
    /// engine.step_slot(0, 2, 2, 0.1, 1)?;
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `depth < 2` (named `ring_depth`), zero `cap`,
    /// `p` or `slot_rows`, `slot_rows < cap`, or no `loss_slots`; [`Error::TargetMismatch`];
    /// [`Error::DeviceLimit`] when a slot exceeds one storage binding; [`Error::Device`].
    pub fn ring(
        ctx: &GpuContext,
        program: Program,
        p: usize,
        cap: usize,
        shape: RingShape,
        options: GpuEngineOptions,
    ) -> Result<Self> {
        if shape.slot_rows < cap {
            return Err(Error::param(
                "slot rows",
                shape.slot_rows,
                "must hold at least one batch (≥ the batch capacity)",
            ));
        }
        Self::build(ctx, program, p, cap, options, Source::Ring(shape))
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

    /// Writes rows (`x`: rows × p, row-major, one target per row, and one weight per row
    /// for a weighted ring) into `slot`, once the last step that read the slot has
    /// completed (see the module docs).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] on a resident engine, for a slot beyond the ring, or
    /// for 0 or more than `slot_rows` rows; [`Error::ShapeMismatch`] when `x` is not whole
    /// rows, the targets differ in count or kind, or weights are missing, extra or not one
    /// per row; [`Error::Device`].
    pub fn write_slot(
        &mut self,
        slot: usize,
        x: &[f32],
        targets: BatchTargets<'_>,
        weights: Option<&[f32]>,
    ) -> Result<()> {
        // A recorded step that reads the slot would be overtaken by the write: submit it.
        if matches!(&self.data, Data::Ring(r) if r.pending.get(slot) == Some(&true)) {
            self.flush()?;
        }
        let p = self.p;
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
        if !x.len().is_multiple_of(p) || targets.len() != rows || targets.kind() != ring.kind {
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
        let weights_fit = match weights {
            Some(w) => !ring.w.is_empty() && w.len() == rows,
            None => ring.w.is_empty(),
        };
        if !weights_fit {
            return Err(Error::ShapeMismatch {
                what: "ring slot weights",
                expected: if ring.w.is_empty() {
                    "none (the ring is unweighted)".into()
                } else {
                    format!("one per row: {rows}")
                },
                got: weights.map_or("none".into(), |w| w.len().to_string()),
            });
        }
        if rows == 0 || rows > ring.slot_rows {
            return Err(Error::param(
                "ring slot rows",
                rows,
                "must be between 1 and the ring's slot_rows",
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
            BatchTargets::Real(y) => self.ctx.write(&ring.t[slot], y),
            BatchTargets::Labels(l) => self.ctx.write(&ring.t[slot], l),
        }
        if let Some(w) = weights {
            self.ctx.write(&ring.w[slot], w);
            self.bytes_uploaded += rows as u64 * 4;
        }
        ring.rows[slot] = rows;
        self.bytes_uploaded += (x.len() + rows) as u64 * 4;
        Ok(())
    }

    /// The mean loss and gradients of rows `offset .. offset + len` of ring slot `slot`
    /// at the current parameters, with no update (a distributed fit's share of a step;
    /// [`GpuEngine::apply_grads`] then applies the global batch's).
    ///
    /// # Errors
    /// As [`GpuEngine::step_slot`].
    pub fn loss_and_grads_slot(
        &mut self,
        slot: usize,
        offset: usize,
        len: usize,
    ) -> Result<(f32, Vec<Vec<f32>>)> {
        let offset = self.slot_rows(slot, offset, len)?;
        self.read_step(StepRows::Slot { slot, offset }, len)
    }

    /// Records one step on rows `offset .. offset + len` of `slot`, writing its loss to
    /// `loss_slot`. It is submitted with the next [`GpuEngine::flush`] (or sooner, when a
    /// write to the same slot needs it out of the way).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] on a resident engine, for a slot beyond the ring, rows
    /// beyond those written to it, more rows than the batch capacity, or a loss slot
    /// beyond [`GpuEngine::loss_slots`]; [`Error::Device`].
    pub fn step_slot(
        &mut self,
        slot: usize,
        offset: usize,
        len: usize,
        update: impl Into<StepScalars>,
        loss_slot: usize,
    ) -> Result<()> {
        let offset = self.slot_rows(slot, offset, len)?;
        self.record(
            StepRows::Slot { slot, offset },
            len,
            Some(&update.into()),
            loss_slot,
        )?;
        if let Data::Ring(ring) = &mut self.data {
            ring.read_pending(slot);
        }
        Ok(())
    }
}
