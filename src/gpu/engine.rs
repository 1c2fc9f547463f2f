//! The GPU engine: runs a [`Program`] on the device, the twin of
//! [`CpuEngine`](crate::engine::CpuEngine).
//!
//! The dataset is *resident*: features and targets are uploaded once (the features in up to
//! four chunks of whole rows when they exceed one storage binding); each epoch uploads
//! only its order (a `u32` permutation), and every batch is gathered through it by the
//! kernels (`Src::Features` matmuls and the loss's targets). Parameters stay on the device
//! for the whole fit.
//!
//! Everything is built in [`GpuEngine::new`]: one buffer per [`BufDecl`](crate::program::BufDecl),
//! one bind group per op (the buffers never change), the pipelines. A step only pushes
//! its per-dispatch parameters (batch start, batch length, learning rate) into the
//! parameter ring and records its dispatches:
//!
//! | in one compute pass per step | |
//! |---|---|
//! | forward ops | features (gathered) → `output` |
//! | fused loss | `output`, targets (gathered) → `delta`, loss slot s |
//! | backward ops | `delta` → every gradient |
//! | SGD, one per parameter | `θ −= lr · ∂L/∂θ`, skipped once the halt flag is set |
//!
//! Steps accumulate in one encoder and are submitted together, every
//! [`GpuEngineOptions::steps_per_submit`] steps or at [`GpuEngine::flush`]. The losses are
//! read back only when asked ([`GpuEngine::read_losses`]), normally once per epoch.
//!
//! **Halting on the device.** The loss kernel sets a halt flag when a loss is non-finite
//! or, with [`GpuEngineOptions::tol`], when seed 000's rule fires; the updates then stop,
//! so the parameters stay those of the halting step even though the host only reads the
//! flag at the next sync ([`GpuEngine::halted_at`]).
//!
//! **Upload hazard.** Queued writes (`set_order`, `set_params`) land before the *next*
//! submission, so they would overtake steps already recorded but not yet submitted. Both
//! therefore flush first.

use crate::cpu::loss::LossKind;
use crate::data::Targets;
use crate::error::{Error, Result};
use crate::program::{BufId, Op, Program, Src};

use super::context::GpuContext;
use super::kernels::{self, Bound, Halting, ParamRing, TargetRows};
use super::pipelines::Kernel;
use super::readback;

/// Knobs of a [`GpuEngine`]; the defaults suit training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuEngineOptions {
    /// Steps recorded before a submission (bounds the parameter ring).
    pub steps_per_submit: usize,
    /// Loss slots: the steps whose losses can wait on the device before a readback
    /// (`None`: one epoch's batches, ⌈n / cap⌉).
    pub loss_slots: Option<usize>,
    /// Seed 000's stopping rule, decided on the device: halt when
    /// |loss − previous loss| < tol. A non-finite loss always halts.
    pub tol: Option<f32>,
    /// Test-only: caps the rows of a feature chunk below what the binding limit allows,
    /// so that tests exercise chunking on small data (`None`: the device's limit).
    #[doc(hidden)]
    pub max_chunk_rows: Option<usize>,
}

impl Default for GpuEngineOptions {
    fn default() -> Self {
        GpuEngineOptions {
            steps_per_submit: 32,
            loss_slots: None,
            tol: None,
            max_chunk_rows: None,
        }
    }
}

/// The resident features, split into whole-row chunks that each fit one storage binding.
///
/// Why chunks rather than one buffer: `max_buffer_size` is often far above
/// `max_storage_buffer_binding_size` (2 GiB vs 128 MiB on llvmpipe), so the data fit the
/// device but not one binding. Binding a buffer in several ranges (offsets) would need
/// the offsets aligned to `min_storage_buffer_offset_alignment` and cap the buffer at
/// `max_buffer_size` anyway; separate buffers of whole rows need neither, and a row never
/// straddles two bindings, so the kernel picks one chunk per row.
struct FeatureChunks {
    bufs: Vec<wgpu::Buffer>,
    rows_per_chunk: usize,
}

impl FeatureChunks {
    /// Uploads `x` (n × p) in chunks of at most `rows_per_chunk` rows: the most that fit
    /// both limits, or fewer with `max_rows`.
    fn upload(ctx: &GpuContext, x: &[f32], p: usize, max_rows: Option<usize>) -> Result<Self> {
        let n = x.len() / p;
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let row_bytes = (p as u64).saturating_mul(4);
        let fit = usize::try_from(limit / row_bytes).unwrap_or(usize::MAX);
        if fit == 0 {
            return Err(Error::DeviceLimit {
                what: "bytes of one feature row (a row must fit one storage binding)",
                requested: row_bytes,
                limit,
            });
        }
        let rows_per_chunk = match max_rows {
            Some(0) => return Err(Error::param("max_chunk_rows", 0, "must be ≥ 1")),
            Some(r) => fit.min(r),
            None => fit,
        };
        let chunks = n.div_ceil(rows_per_chunk).max(1);
        if chunks > kernels::MAX_A_CHUNKS {
            return Err(Error::DeviceLimit {
                what: "resident feature bytes (4 storage bindings of whole rows; \
                       a larger dataset needs streaming, a later stage)",
                requested: (x.len() as u64).saturating_mul(4),
                limit: (kernels::MAX_A_CHUNKS as u64)
                    .saturating_mul(rows_per_chunk as u64)
                    .saturating_mul(row_bytes),
            });
        }
        let bufs = (0..chunks)
            .map(|c| {
                let rows = c * rows_per_chunk..((c + 1) * rows_per_chunk).min(n);
                ctx.upload(
                    &format!("features, chunk {c}"),
                    &x[rows.start * p..rows.end * p],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FeatureChunks {
            bufs,
            rows_per_chunk,
        })
    }
}

/// One op, bound once.
struct BoundOp {
    op: OpKind,
    bound: Bound,
}

enum OpKind {
    /// A program op (forward or backward).
    Program(Op),
    /// The fused loss.
    Loss,
    /// SGD on parameter `i`.
    Sgd(usize),
}

/// Runs a model's [`Program`] on the GPU with the dataset resident on the device.
pub struct GpuEngine {
    ctx: GpuContext,
    program: Program,
    cap: usize,
    n: usize,
    bufs: Vec<wgpu::Buffer>,
    feature_chunks: usize,
    order: wgpu::Buffer,
    order_len: usize,
    losses: wgpu::Buffer,
    loss_slots: usize,
    halt: wgpu::Buffer,
    halting: Halting,
    ring: ParamRing,
    ops: Vec<BoundOp>,
    pending: Vec<wgpu::CommandBuffer>,
    steps_pending: usize,
    steps_per_submit: usize,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine")
            .field("ctx", &self.ctx)
            .field("cap", &self.cap)
            .field("n", &self.n)
            .field("feature_chunks", &self.feature_chunks)
            .field("loss_slots", &self.loss_slots)
            .field("steps_pending", &self.steps_pending)
            .finish()
    }
}

impl GpuEngine {
    /// An engine over features `x` (n × p, row-major) and `targets`, for batches of at
    /// most `cap` rows, with default [`GpuEngineOptions`]. Parameters start at zero.
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] when the targets do not suit the program's loss;
    /// [`Error::ShapeMismatch`] when `x` or the targets do not have n rows;
    /// [`Error::DeviceLimit`] when a tensor does not fit a binding (the features may span
    /// up to 4 bindings of whole rows); [`Error::Device`].
    pub fn new(
        ctx: &GpuContext,
        program: Program,
        x: &[f32],
        p: usize,
        targets: &Targets,
        cap: usize,
    ) -> Result<Self> {
        Self::with_options(
            ctx,
            program,
            x,
            p,
            targets,
            cap,
            GpuEngineOptions::default(),
        )
    }

    /// As [`GpuEngine::new`], with explicit options.
    ///
    /// # Errors
    /// As [`GpuEngine::new`]; [`Error::InvalidParameter`] for zero `cap`, `p`,
    /// `steps_per_submit` or `max_chunk_rows`; [`Error::DeviceLimit`] when the features
    /// need more than 4 chunks (streaming, a later stage, is the way then).
    pub fn with_options(
        ctx: &GpuContext,
        program: Program,
        x: &[f32],
        p: usize,
        targets: &Targets,
        cap: usize,
        options: GpuEngineOptions,
    ) -> Result<Self> {
        if cap == 0 {
            return Err(Error::param("batch capacity", cap, "must be ≥ 1"));
        }
        if p == 0 || x.len() % p != 0 {
            return Err(Error::ShapeMismatch {
                what: "features",
                expected: format!("n × p values with p = {p} ≥ 1"),
                got: format!("{} values", x.len()),
            });
        }
        if options.steps_per_submit == 0 {
            return Err(Error::param("steps_per_submit", 0, "must be ≥ 1"));
        }
        let n = x.len() / p;
        if targets.len() != n {
            return Err(Error::ShapeMismatch {
                what: "targets",
                expected: format!("{n} rows, as the features"),
                got: format!("{} rows", targets.len()),
            });
        }
        let tgt = match (program.loss, targets) {
            (LossKind::Mse, Targets::Real(y)) if program.out_cols == 1 => {
                ctx.upload("targets", y)?
            }
            (LossKind::SigmoidBce | LossKind::SoftmaxCce, Targets::Classes { labels, .. }) => {
                ctx.upload("labels", labels)?
            }
            (kind, t) => {
                return Err(Error::TargetMismatch {
                    model: "GPU engine",
                    expected: format!("targets for {kind:?} with {} outputs", program.out_cols),
                    got: t.describe(),
                });
            }
        };
        let features = FeatureChunks::upload(ctx, x, p, options.max_chunk_rows)?;
        let feature_bufs: Vec<&wgpu::Buffer> = features.bufs.iter().collect();
        let bufs = program
            .bufs
            .iter()
            .map(|b| ctx.storage(&b.name, b.len(cap)))
            .collect::<Result<Vec<_>>>()?;
        let order = ctx.storage("epoch order", n)?;
        let loss_slots = options.loss_slots.unwrap_or(n.div_ceil(cap)).max(1);
        let losses = ctx.storage("losses", loss_slots)?;
        let halt = ctx.upload("halt flag", &[0u32; 4])?;
        let ops_per_step =
            program.forward.len() + 1 + program.backward.len() + program.params.len();
        let ring = ParamRing::new(ctx, ops_per_step * options.steps_per_submit)?;

        // Bind every op once; warm its pipeline so that no step builds anything.
        let mut ops = Vec::with_capacity(ops_per_step);
        let buf = |id: BufId| &bufs[id.0];
        for op in program.forward.iter().chain(&program.backward) {
            let (bound, kernel) = match *op {
                Op::Matmul {
                    layout, a, b, c, ..
                } => {
                    let bound = match a {
                        Src::Features => kernels::bind_matmul_chunked(
                            ctx,
                            &ring,
                            &feature_bufs,
                            features.rows_per_chunk,
                            Some(&order),
                            buf(b),
                            buf(c),
                        )?,
                        Src::Buf(a) => {
                            kernels::bind_matmul(ctx, &ring, buf(a), None, buf(b), buf(c))?
                        }
                    };
                    (bound, Kernel::Matmul(layout))
                }
                Op::BiasAdd { z, bias, .. } => (
                    kernels::bind_bias_add(ctx, &ring, buf(z), buf(bias))?,
                    Kernel::BiasAdd,
                ),
                Op::Activate { f, z, a, .. } => (
                    kernels::bind_activation(ctx, &ring, buf(z), buf(a))?,
                    Kernel::Activate(f),
                ),
                Op::ActivateBackward { f, a, grad, .. } => (
                    kernels::bind_activation(ctx, &ring, buf(a), buf(grad))?,
                    Kernel::ActivateBackward(f),
                ),
                Op::ColSums { x, out, .. } => (
                    kernels::bind_col_sums(ctx, &ring, buf(x), buf(out))?,
                    Kernel::ColSums,
                ),
            };
            ctx.pipelines().get(kernel);
            ops.push(BoundOp {
                op: OpKind::Program(op.clone()),
                bound,
            });
        }
        // Order of recording: forward, loss, backward, updates.
        let n_fwd = program.forward.len();
        let loss = kernels::bind_loss(
            ctx,
            &ring,
            buf(program.output),
            &tgt,
            Some(&order),
            buf(program.delta),
            &losses,
            Some(&halt),
        )?;
        ctx.pipelines().get(Kernel::Loss(program.loss));
        ops.insert(
            n_fwd,
            BoundOp {
                op: OpKind::Loss,
                bound: loss,
            },
        );
        for (i, d) in program.params.iter().enumerate() {
            let bound = kernels::bind_sgd(ctx, &ring, buf(d.value), buf(d.grad), Some(&halt))?;
            ops.push(BoundOp {
                op: OpKind::Sgd(i),
                bound,
            });
        }
        ctx.pipelines().get(Kernel::Sgd);
        // The features and targets stay alive through the bind groups that hold them.
        Ok(GpuEngine {
            ctx: ctx.clone(),
            program,
            cap,
            n,
            bufs,
            feature_chunks: features.bufs.len(),
            order,
            order_len: 0,
            losses,
            loss_slots,
            halt,
            halting: options.tol.map_or(Halting::NonFinite, Halting::Tolerance),
            ring,
            ops,
            pending: Vec::new(),
            steps_pending: 0,
            steps_per_submit: options.steps_per_submit,
        })
    }

    /// The program being run.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Rows n of the resident dataset.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Buffers the resident features are split into (1 unless they exceed one storage
    /// binding; at most 4).
    pub fn feature_chunks(&self) -> usize {
        self.feature_chunks
    }

    /// Batch capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Loss slots available to [`GpuEngine::step`].
    pub fn loss_slots(&self) -> usize {
        self.loss_slots
    }

    /// Sets every parameter from `values` (in [`Program::params`] order).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the count or a length differs from the program;
    /// [`Error::Device`].
    pub fn set_params(&mut self, values: &[Vec<f32>]) -> Result<()> {
        self.program.check_params(values)?;
        self.flush()?;
        for (decl, v) in self.program.params.iter().zip(values) {
            self.ctx.write(&self.bufs[decl.value.0], v);
        }
        Ok(())
    }

    /// The parameter values, in [`Program::params`] order (waits for pending steps).
    ///
    /// # Errors
    /// [`Error::Device`].
    pub fn params(&mut self) -> Result<Vec<Vec<f32>>> {
        self.flush()?;
        self.program
            .params
            .iter()
            .map(|d| readback::read_f32(&self.ctx, &self.bufs[d.value.0], d.rows * d.cols))
            .collect()
    }

    /// Buffer `id` as it is now on the device (verify mode compares it with the CPU's).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for an id outside the program; [`Error::Device`].
    pub fn read_buf(&mut self, id: BufId) -> Result<Vec<f32>> {
        let Some(decl) = self.program.bufs.get(id.0) else {
            return Err(Error::ShapeMismatch {
                what: "buffer id",
                expected: format!("below {}", self.program.bufs.len()),
                got: id.0.to_string(),
            });
        };
        let len = decl.len(self.cap);
        self.flush()?;
        readback::read_f32(&self.ctx, &self.bufs[id.0], len)
    }

    /// Uploads the epoch's order: batch rows are read as `order[start ..][.. len]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when it is longer than n or holds a row ≥ n.
    pub fn set_order(&mut self, order: &[u32]) -> Result<()> {
        if order.len() > self.n || order.iter().any(|&r| r as usize >= self.n) {
            return Err(Error::ShapeMismatch {
                what: "epoch order",
                expected: format!("at most n = {} row indices below n", self.n),
                got: format!("{} indices, max {:?}", order.len(), order.iter().max()),
            });
        }
        self.flush()?;
        self.ctx.write(&self.order, order);
        self.order_len = order.len();
        Ok(())
    }

    /// Records one step on the batch `order[start .. start + len]` with learning rate
    /// `lr`, writing its loss (before the update) to slot `loss_slot`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty or too large batch, a batch beyond the
    /// order, or a slot beyond [`GpuEngine::loss_slots`]; [`Error::Device`].
    pub fn step(&mut self, start: usize, len: usize, lr: f64, loss_slot: usize) -> Result<()> {
        if len == 0 || len > self.cap {
            return Err(Error::param(
                "batch rows",
                len,
                "must be between 1 and the engine's batch capacity",
            ));
        }
        if start + len > self.order_len {
            return Err(Error::param(
                "batch start + rows",
                start + len,
                "must not exceed the order's length (call set_order first)",
            ));
        }
        if loss_slot >= self.loss_slots {
            return Err(Error::param(
                "loss slot",
                loss_slot,
                "must be below the engine's loss_slots",
            ));
        }
        if self.ring.free() < self.ops.len() {
            self.flush()?;
        }
        // Each step is its own command buffer, so a step that fails to record is dropped
        // alone; the recorded ones still share one submission.
        let mark = self.ring.mark();
        let mut enc = self
            .ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradflow step"),
            });
        let recorded = {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gradflow step"),
                timestamp_writes: None,
            });
            record_step(
                &self.ctx,
                &mut pass,
                &mut self.ring,
                &self.ops,
                &self.program,
                (start, len),
                lr as f32,
                (loss_slot, self.halting),
            )
        };
        if let Err(e) = recorded {
            self.ring.rewind(mark);
            return Err(e);
        }
        self.pending.push(enc.finish());
        self.steps_pending += 1;
        if self.steps_pending >= self.steps_per_submit {
            self.flush()?;
        }
        Ok(())
    }

    /// Submits the recorded steps.
    ///
    /// # Errors
    /// [`Error::Device`] for a wgpu error in the recorded work.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.steps_pending = 0;
        let steps = std::mem::take(&mut self.pending);
        let ctx = self.ctx.clone();
        let ring = &mut self.ring;
        ctx.scoped("submitting training steps", || {
            ring.upload(&ctx);
            ctx.queue().submit(steps);
            Ok(())
        })
    }

    /// The losses of slots `0 .. count` (waits for pending steps).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] beyond the slots; [`Error::Device`].
    pub fn read_losses(&mut self, count: usize) -> Result<Vec<f32>> {
        if count > self.loss_slots {
            return Err(Error::param(
                "loss count",
                count,
                "must not exceed the engine's loss_slots",
            ));
        }
        self.flush()?;
        readback::read_f32(&self.ctx, &self.losses, count)
    }

    /// The loss slot of the step that halted training (non-finite loss, or the tol rule),
    /// or `None` while training runs (waits for pending steps). Once halted, no update
    /// runs: the parameters are those the halting step saw.
    ///
    /// # Errors
    /// [`Error::Device`].
    pub fn halted_at(&mut self) -> Result<Option<usize>> {
        self.flush()?;
        let h = readback::read::<u32>(&self.ctx, &self.halt, 2)?;
        Ok((h[0] != 0).then_some(h[1] as usize))
    }
}

#[allow(clippy::too_many_arguments)] // one step's context, passed apart to split borrows
fn record_step(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    ops: &[BoundOp],
    program: &Program,
    (start, m): (usize, usize),
    lr: f32,
    (slot, halting): (usize, Halting),
) -> Result<()> {
    let start32 =
        u32::try_from(start).map_err(|_| Error::param("batch start", start, "must fit in u32"))?;
    for BoundOp { op, bound } in ops {
        match op {
            OpKind::Program(Op::Matmul {
                layout,
                m: dm,
                k: dk,
                n: dn,
                a,
                ..
            }) => {
                let rows = (*a == Src::Features).then_some(start32);
                kernels::matmul(
                    ctx,
                    pass,
                    ring,
                    bound,
                    *layout,
                    (dm.eval(m), dk.eval(m), dn.eval(m)),
                    rows,
                )?
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
            OpKind::Program(Op::ColSums { cols, .. }) => {
                kernels::col_sums(ctx, pass, ring, bound, m, *cols)?
            }
            OpKind::Loss => kernels::loss(
                ctx,
                pass,
                ring,
                bound,
                program.loss,
                TargetRows::Gather(start32),
                (m, program.out_cols),
                slot as u32,
                halting,
            )?,
            OpKind::Sgd(i) => {
                let d = &program.params[*i];
                kernels::sgd(ctx, pass, ring, bound, d.rows * d.cols, lr)?
            }
        }
    }
    Ok(())
}
