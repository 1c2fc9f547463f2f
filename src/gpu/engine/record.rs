//! Recording steps and submitting them: one compute pass per step, many steps per
//! submission.

use crate::error::{Error, Result};
use crate::program::{Op, Program, Src};
use crate::program::{Rule, StepScalars};

use super::super::context::GpuContext;
use super::super::kernels::{self, Halting, ParamRing, TargetRows};
use super::{
    BoundOp, Data, FusedGrad, FusedMlp, GpuEngine, ManySteps, OpKind, OpenSteps, StepRows,
};

impl GpuEngine {
    /// The checks every step makes, fused or not.
    fn check_step(&self, len: usize, loss_slot: usize) -> Result<()> {
        if len == 0 || len > self.cap {
            return Err(Error::param(
                "batch rows",
                len,
                "must be between 1 and the engine's batch capacity",
            ));
        }
        if loss_slot >= self.loss_slots {
            return Err(Error::param(
                "loss slot",
                loss_slot,
                "must be below the engine's loss_slots",
            ));
        }
        Ok(())
    }

    /// Records one step of `len` rows read by `rows` (one dispatch per op); with
    /// `update: None`, the loss and gradients only (the full-batch solver's evaluation).
    pub(super) fn record(
        &mut self,
        rows: StepRows,
        len: usize,
        update: Option<&StepScalars>,
        loss_slot: usize,
    ) -> Result<()> {
        self.check_step(len, loss_slot)?;
        let step = Step {
            rows: (rows, len),
            update,
            loss_slot,
            compute: true,
        };
        self.record_pass(step)
    }

    /// Records the update alone, on the gradients in the gradient buffers.
    pub(super) fn record_update(&mut self, update: &StepScalars) -> Result<()> {
        let step = Step {
            // No op reads rows or writes a loss.
            rows: (StepRows::Gather(0), 0),
            update: Some(update),
            loss_slot: 0,
            compute: false,
        };
        self.record_pass(step)
    }

    fn record_pass(&mut self, step: Step<'_>) -> Result<()> {
        // Rows in stored order: a ring slot's always, resident ones under the identity.
        let in_order = match &self.data {
            Data::Resident { order_identity, .. } => *order_identity,
            Data::Ring(_) => true,
        };
        if self.ring.free() < self.dispatches_per_step {
            self.flush()?;
        }
        // The steps of a submission share one command buffer and one compute pass: on the
        // H200, recording and submitting a fused W3 step took 35.7 µs with a command
        // buffer each and 18.4 µs so (`gradflow bench --kernels`). A step that fails to
        // record (a shape the engine was not built for) discards the steps recorded since
        // the last submission with it.
        let mark = self.ring.mark();
        let mut open = self.open.take().unwrap_or_else(|| {
            let mut enc =
                self.ctx
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("gradflow steps"),
                    });
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("gradflow steps"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            OpenSteps {
                enc,
                pass,
                start: (mark, self.dispatches),
            }
        });
        let recorded = record_step(
            &self.ctx,
            &mut open.pass,
            &mut self.ring,
            (&self.ops, &self.program, self.rule, self.halting),
            (self.grad.as_ref(), self.mlp.as_ref(), in_order),
            step,
        );
        if let Err(e) = recorded {
            let (ring_mark, dispatches) = open.start;
            self.ring.rewind(ring_mark);
            self.dispatches = dispatches;
            self.steps_pending = 0;
            return Err(e);
        }
        self.dispatches += self.ring.since(mark) as u64;
        self.open = Some(open);
        self.steps_pending += 1;
        if self.steps_pending >= self.steps_per_submit {
            self.flush()?;
        }
        Ok(())
    }

    /// Queues a step for the many-step kernel (the engine has [`Fused`]); the queue
    /// goes to the device, in one submission, when it is full (an epoch's slots, or what
    /// the parameter ring can launch) or at the next flush.
    pub(super) fn queue_fused(
        &mut self,
        start: u32,
        len: usize,
        update: &StepScalars,
        loss_slot: usize,
    ) -> Result<()> {
        self.check_step(len, loss_slot)?;
        let (w, b) = (update.of(false).of::<f32>(), update.of(true).of::<f32>());
        if w.l1 != 0.0 || w.l2 != 0.0 || w.lr != b.lr {
            return Err(Error::param(
                "many-step update",
                format!("l1 {} l2 {}", w.l1, w.l2),
                "must be plain SGD without a penalty (build the engine without fuse_glm and fuse_mlp_steps)",
            ));
        }
        let Some(fused) = &mut self.fused else {
            unreachable!("queue_fused is called on engines with the fused path only")
        };
        fused.pending.push(kernels::GlmStep {
            start,
            len: len as u32,
            lr: w.lr,
            slot: loss_slot as u32,
        });
        if fused.pending.len() == fused.capacity {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the open steps' command buffer and records the many-step kernel's queue, in
    /// the order they were asked for: what comes next (a submission, a snapshot's copies)
    /// sees every step recorded so far.
    pub(super) fn close_steps(&mut self) -> Result<()> {
        if let Some(OpenSteps { enc, pass, .. }) = self.open.take() {
            drop(pass);
            self.pending.push(enc.finish());
        }
        self.record_fused()
    }

    /// Records the queued many-step GLM steps as dispatches of
    /// [`kernels::glm_steps_per_dispatch`] steps in one compute pass.
    fn record_fused(&mut self) -> Result<()> {
        let Some(fused) = &mut self.fused else {
            return Ok(());
        };
        if fused.pending.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx.clone();
        ctx.write(&fused.steps, &fused.pending);
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradflow glm steps"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gradflow glm steps"),
                timestamp_writes: None,
            });
            for first in (0..fused.pending.len()).step_by(fused.per_dispatch) {
                let count = fused.per_dispatch.min(fused.pending.len() - first);
                let (ring, steps) = (&mut self.ring, (first, count));
                match fused.model {
                    ManySteps::Glm(kind) => kernels::glm_epoch(
                        &ctx,
                        &mut pass,
                        ring,
                        &fused.bound,
                        kind,
                        self.p,
                        steps,
                        self.halting,
                    )?,
                    ManySteps::Mlp(p, h, k, act) => kernels::mlp_epoch(
                        &ctx,
                        &mut pass,
                        ring,
                        &fused.bound,
                        (p, h, k, act),
                        steps,
                        self.halting,
                    )?,
                }
                self.dispatches += 1;
            }
        }
        fused.pending.clear();
        self.pending.push(enc.finish());
        Ok(())
    }

    /// Submits the recorded steps.
    ///
    /// # Errors
    /// [`Error::Device`] for a wgpu error in the recorded work.
    pub fn flush(&mut self) -> Result<()> {
        self.close_steps()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        self.steps_pending = 0;
        let steps = std::mem::take(&mut self.pending);
        let ctx = self.ctx.clone();
        let ring = &mut self.ring;
        let index = ctx.scoped("submitting training steps", || {
            ring.upload(&ctx);
            Ok(ctx.queue().submit(steps))
        })?;
        if let Data::Ring(slots) = &mut self.data {
            slots.submitted(&index);
        }
        self.last_submission = Some(index);
        self.submissions += 1;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)] // one step's context, passed apart to split borrows
/// What one recorded pass does.
pub(super) struct Step<'u> {
    /// The rows the step reads, and how many.
    rows: (StepRows, usize),
    /// The update's scalars (`None`: loss and gradients only).
    update: Option<&'u StepScalars>,
    loss_slot: usize,
    /// Forward, loss and backward (`false`: the update alone).
    compute: bool,
}

fn record_step(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    (ops, program, rule, halting): (&[BoundOp], &Program, Rule, Halting),
    (grad, mlp, in_order): (Option<&FusedGrad>, Option<&FusedMlp>, bool),
    step: Step<'_>,
) -> Result<()> {
    let Step {
        rows: (rows, m),
        update,
        loss_slot: slot,
        compute,
    } = step;
    let update = update.map(|u| (rule, u));
    // Resident data are gathered through the epoch order from `start`; a ring slot
    // through its identity index from `offset`.
    let (view, start) = match rows {
        StepRows::Gather(start) => (0, start),
        StepRows::Slot { slot, offset } => (slot, offset),
    };
    let (a_rows, target_rows) = (Some(start), TargetRows::Gather(start));
    // Rows in stored order need no gather.
    let stored_rows = if in_order {
        TargetRows::Range(start)
    } else {
        target_rows
    };
    // A fused gradient (the GLM's, the MLP's) stands for every op before the updates.
    let fused = grad.is_some() || mlp.is_some();
    if let (Some(g), true) = (mlp, compute) {
        let rows_bound = &g.rows[view.min(g.rows.len() - 1)];
        let bound = (rows_bound, &g.grads);
        kernels::mlp_loss_grad(
            ctx,
            pass,
            ring,
            bound,
            g.shape,
            stored_rows,
            m,
            slot as u32,
            halting,
        )?;
    }
    if let (Some(g), true) = (grad, compute) {
        let chunks: Vec<&kernels::Bound> = g.chunks[view.min(g.chunks.len() - 1)].iter().collect();
        kernels::glm_loss_grad(
            ctx,
            pass,
            ring,
            (&chunks, &g.finish),
            (g.kind, g.p, g.variant),
            stored_rows,
            (m, g.room),
            slot as u32,
            halting,
        )?;
    }
    for op in ops {
        if !op.op.is_update() && (fused || !compute) {
            continue;
        }
        let bound = op.at(view);
        match &op.op {
            OpKind::Program(Op::Matmul {
                layout,
                m: dm,
                k: dk,
                n: dn,
                a,
                ..
            }) => {
                let rows = if *a == Src::Features { a_rows } else { None };
                let shape = (dm.eval(m), dk.eval(m), dn.eval(m));
                match &op.split {
                    Some(s) => {
                        let pair = (bound, &s.finish);
                        let room = (s.segments, s.min_segment);
                        kernels::matmul_split(ctx, pass, ring, pair, *layout, shape, rows, room)?
                    }
                    None => {
                        let epi = op.epi;
                        kernels::matmul_with(ctx, pass, ring, bound, *layout, shape, rows, epi)?
                    }
                }
            }
            OpKind::Program(Op::BiasAdd { cols, .. }) => {
                kernels::bias_add(ctx, pass, ring, bound, m, *cols)?
            }
            OpKind::Program(Op::Activate { f, cols, .. }) => {
                kernels::activate(ctx, pass, ring, bound, *f, m * cols)?
            }
            OpKind::Program(Op::ActivateBackward { f, cols, .. }) => {
                kernels::activate_backward(ctx, pass, ring, bound, *f, m * cols)?
            }
            OpKind::Program(Op::ColSums { cols, .. }) => match &op.split {
                Some(s) => {
                    let pair = (bound, &s.finish);
                    kernels::col_sums_split(ctx, pass, ring, pair, (m, *cols), s.segments)?
                }
                None => kernels::col_sums(ctx, pass, ring, bound, m, *cols)?,
            },
            OpKind::Loss => kernels::loss(
                ctx,
                pass,
                ring,
                bound,
                program.loss,
                target_rows,
                (m, program.out_cols),
                slot as u32,
                halting,
            )?,
            OpKind::Update(i) => {
                let Some((rule, update)) = update else {
                    continue;
                };
                let d = &program.params[*i];
                let s = update.of(d.is_bias).of::<f32>();
                kernels::update(ctx, pass, ring, bound, rule, d.rows * d.cols, &s)?
            }
            OpKind::UpdateAll(tensors) => {
                let Some((rule, update)) = update else {
                    continue;
                };
                let scalars = (update.of(false).of::<f32>(), update.of(true).of::<f32>());
                let scalars = (&scalars.0, &scalars.1);
                kernels::update_all(ctx, pass, ring, bound, rule, tensors, scalars)?
            }
        }
    }
    Ok(())
}
