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
//! **Two ways to hold the data** (the private `Data` enum): *resident* (above), or a *ring* of `depth`
//! slots of one batch each ([`GpuEngine::ring`], in `engine/ring.rs`), which a host
//! scheduler fills batch by batch ([`GpuEngine::write_slot`]) when the dataset exceeds
//! the device budget. Ops that read features or targets are bound once per view of the
//! data (one resident view, or one per slot); everything else is shared.
//!
//! **Upload hazard.** Queued writes (`set_order`, `set_params`) land before the *next*
//! submission, so they would overtake steps already recorded but not yet submitted. Both
//! therefore flush first.

use crate::data::{TargetKind, Targets};
use crate::error::{Error, Result};
use crate::program::{BufId, Op, Program, Src};

use super::context::GpuContext;
use super::kernels::{self, Bound, Halting, ParamRing, TargetRows};
use super::pipelines::Kernel;
use super::readback;

mod chunks;
mod ring;
use chunks::FeatureChunks;
pub use chunks::resident_row_limit;
pub use ring::RingShape;

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

/// One op, bound once per view of the data (ops that read no data: one bind group).
struct BoundOp {
    op: OpKind,
    bound: Vec<Bound>,
}

impl BoundOp {
    /// The bind group for view `view` (the ring slot; 0 for resident data).
    fn at(&self, view: usize) -> &Bound {
        if self.bound.len() == 1 {
            &self.bound[0]
        } else {
            &self.bound[view]
        }
    }
}

/// Where the steps' rows live on the device.
enum Data {
    /// The whole dataset, gathered through the epoch's order.
    Resident {
        n: usize,
        chunks: FeatureChunks,
        targets: wgpu::Buffer,
        order: wgpu::Buffer,
        order_len: usize,
    },
    /// `depth` slots of one batch each, read in order from row 0.
    Ring(ring::Ring),
}

/// The buffers one set of bind groups reads: features (in chunks), the optional gather
/// index and the targets.
struct View<'a> {
    features: Vec<&'a wgpu::Buffer>,
    rows_per_chunk: usize,
    index: Option<&'a wgpu::Buffer>,
    targets: &'a wgpu::Buffer,
}

impl Data {
    fn views(&self) -> Vec<View<'_>> {
        match self {
            Data::Resident {
                chunks,
                targets,
                order,
                ..
            } => vec![View {
                features: chunks.bufs.iter().collect(),
                rows_per_chunk: chunks.rows_per_chunk,
                index: Some(order),
                targets,
            }],
            Data::Ring(r) => r.views(),
        }
    }
}

/// What the engine is built over.
enum Source<'x> {
    Resident { x: &'x [f32], targets: &'x Targets },
    Ring(RingShape),
}

/// Which rows one step reads.
#[derive(Clone, Copy)]
enum StepRows {
    /// `order[start ..]` of the resident data.
    Gather(u32),
    /// Rows `offset ..` of ring slot `slot`.
    Slot { slot: usize, offset: u32 },
}

enum OpKind {
    /// A program op (forward or backward).
    Program(Op),
    /// The fused loss.
    Loss,
    /// SGD on parameter `i`.
    Sgd(usize),
}

/// Runs a model's [`Program`] on the GPU, with the dataset resident on the device
/// ([`GpuEngine::new`]) or streamed through a ring of batch slots ([`GpuEngine::ring`]).
pub struct GpuEngine {
    ctx: GpuContext,
    program: Program,
    cap: usize,
    p: usize,
    bufs: Vec<wgpu::Buffer>,
    data: Data,
    losses: wgpu::Buffer,
    loss_slots: usize,
    halt: wgpu::Buffer,
    halting: Halting,
    ring: ParamRing,
    ops: Vec<BoundOp>,
    pending: Vec<wgpu::CommandBuffer>,
    steps_pending: usize,
    steps_per_submit: usize,
    last_submission: Option<wgpu::SubmissionIndex>,
    bytes_uploaded: u64,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine")
            .field("ctx", &self.ctx)
            .field("cap", &self.cap)
            .field("n", &self.rows())
            .field("feature_chunks", &self.feature_chunks())
            .field("ring_depth", &self.ring_depth())
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
    /// need more than 4 chunks (streaming, [`GpuEngine::ring`], is the way then).
    pub fn with_options(
        ctx: &GpuContext,
        program: Program,
        x: &[f32],
        p: usize,
        targets: &Targets,
        cap: usize,
        options: GpuEngineOptions,
    ) -> Result<Self> {
        if p == 0 || x.len() % p != 0 {
            return Err(Error::ShapeMismatch {
                what: "features",
                expected: format!("n × p values with p = {p} ≥ 1"),
                got: format!("{} values", x.len()),
            });
        }
        Self::build(
            ctx,
            program,
            p,
            cap,
            options,
            Source::Resident { x, targets },
        )
    }

    /// Checks the arguments, puts the data on the device, binds every op once.
    fn build(
        ctx: &GpuContext,
        program: Program,
        p: usize,
        cap: usize,
        options: GpuEngineOptions,
        source: Source<'_>,
    ) -> Result<Self> {
        if cap == 0 {
            return Err(Error::param("batch capacity", cap, "must be ≥ 1"));
        }
        if p == 0 {
            return Err(Error::param("features per row p", p, "must be ≥ 1"));
        }
        if options.steps_per_submit == 0 {
            return Err(Error::param("steps_per_submit", 0, "must be ≥ 1"));
        }
        let (kind, got) = match source {
            Source::Resident { targets, .. } => (TargetKind::of(targets), targets.describe()),
            Source::Ring(shape) => (shape.targets, format!("{:?} targets", shape.targets)),
        };
        ring::check_kind(kind, &program, got)?;
        let (data, bytes_uploaded, loss_slots) = match source {
            Source::Resident { x, targets } => {
                let n = x.len() / p;
                if targets.len() != n {
                    return Err(Error::ShapeMismatch {
                        what: "targets",
                        expected: format!("{n} rows, as the features"),
                        got: format!("{} rows", targets.len()),
                    });
                }
                let tgt = match targets {
                    Targets::Real(y) => ctx.upload("targets", y)?,
                    Targets::Classes { labels, .. } => ctx.upload("labels", labels)?,
                };
                let chunks = FeatureChunks::upload(ctx, x, p, options.max_chunk_rows)?;
                let data = Data::Resident {
                    n,
                    chunks,
                    targets: tgt,
                    order: ctx.storage("epoch order", n)?,
                    order_len: 0,
                };
                let bytes = (x.len() as u64 + n as u64) * 4;
                (data, bytes, options.loss_slots.unwrap_or(n.div_ceil(cap)))
            }
            Source::Ring(shape) => {
                let Some(slots) = options.loss_slots else {
                    return Err(Error::param(
                        "loss_slots",
                        "None",
                        "must be set for a ring engine (it does not know n)",
                    ));
                };
                (
                    Data::Ring(ring::Ring::new(ctx, shape.slot_rows, p, shape.depth, kind)?),
                    0,
                    slots,
                )
            }
        };
        let bufs = program
            .bufs
            .iter()
            .map(|b| ctx.storage(&b.name, b.len(cap)))
            .collect::<Result<Vec<_>>>()?;
        let loss_slots = loss_slots.max(1);
        let losses = ctx.storage("losses", loss_slots)?;
        let halt = ctx.upload("halt flag", &[0u32; 4])?;
        let ops_per_step =
            program.forward.len() + 1 + program.backward.len() + program.params.len();
        let ring = ParamRing::new(ctx, ops_per_step * options.steps_per_submit)?;

        // Bind every op once (ops reading the data once per view); warm its pipeline so
        // that no step builds anything.
        let views = data.views();
        let mut ops = Vec::with_capacity(ops_per_step);
        let buf = |id: BufId| &bufs[id.0];
        for op in program.forward.iter().chain(&program.backward) {
            let (bound, kernel) = match *op {
                Op::Matmul {
                    layout, a, b, c, ..
                } => {
                    let bound = match a {
                        Src::Features => views
                            .iter()
                            .map(|v| {
                                kernels::bind_matmul_chunked(
                                    ctx,
                                    &ring,
                                    &v.features,
                                    v.rows_per_chunk,
                                    v.index,
                                    buf(b),
                                    buf(c),
                                )
                            })
                            .collect::<Result<Vec<_>>>()?,
                        Src::Buf(a) => vec![kernels::bind_matmul(
                            ctx,
                            &ring,
                            buf(a),
                            None,
                            buf(b),
                            buf(c),
                        )?],
                    };
                    (bound, Kernel::Matmul(layout))
                }
                Op::BiasAdd { z, bias, .. } => (
                    vec![kernels::bind_bias_add(ctx, &ring, buf(z), buf(bias))?],
                    Kernel::BiasAdd,
                ),
                Op::Activate { f, z, a, .. } => (
                    vec![kernels::bind_activation(ctx, &ring, buf(z), buf(a))?],
                    Kernel::Activate(f),
                ),
                Op::ActivateBackward { f, a, grad, .. } => (
                    vec![kernels::bind_activation(ctx, &ring, buf(a), buf(grad))?],
                    Kernel::ActivateBackward(f),
                ),
                Op::ColSums { x, out, .. } => (
                    vec![kernels::bind_col_sums(ctx, &ring, buf(x), buf(out))?],
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
        let loss = views
            .iter()
            .map(|v| {
                kernels::bind_loss(
                    ctx,
                    &ring,
                    buf(program.output),
                    v.targets,
                    v.index,
                    buf(program.delta),
                    &losses,
                    Some(&halt),
                )
            })
            .collect::<Result<Vec<_>>>()?;
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
                bound: vec![bound],
            });
        }
        ctx.pipelines().get(Kernel::Sgd);
        drop(views);
        Ok(GpuEngine {
            ctx: ctx.clone(),
            program,
            cap,
            p,
            bufs,
            data,
            losses,
            loss_slots,
            halt,
            halting: options.tol.map_or(Halting::NonFinite, Halting::Tolerance),
            ring,
            ops,
            pending: Vec::new(),
            steps_pending: 0,
            steps_per_submit: options.steps_per_submit,
            last_submission: None,
            bytes_uploaded,
        })
    }

    /// The program being run.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Rows n of the resident dataset (0 for a ring engine, which holds no dataset).
    pub fn rows(&self) -> usize {
        match &self.data {
            Data::Resident { n, .. } => *n,
            Data::Ring(_) => 0,
        }
    }

    /// Buffers the resident features are split into (1 unless they exceed one storage
    /// binding; at most 4; 0 for a ring engine).
    pub fn feature_chunks(&self) -> usize {
        match &self.data {
            Data::Resident { chunks, .. } => chunks.bufs.len(),
            Data::Ring(_) => 0,
        }
    }

    /// Batch capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Loss slots available to [`GpuEngine::step`].
    pub fn loss_slots(&self) -> usize {
        self.loss_slots
    }

    /// Bytes of data (features, targets, epoch orders, ring slots) written to the device
    /// so far; parameters and per-dispatch constants are not counted.
    pub fn bytes_uploaded(&self) -> u64 {
        self.bytes_uploaded
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
    /// [`Error::ShapeMismatch`] when it is longer than n or holds a row ≥ n;
    /// [`Error::InvalidParameter`] on a ring engine (it reads no order).
    pub fn set_order(&mut self, order: &[u32]) -> Result<()> {
        let n = self.rows();
        if matches!(self.data, Data::Ring(_)) {
            return Err(Error::param(
                "set_order",
                "on a ring engine",
                "needs resident data (a ring reads its slots in order)",
            ));
        }
        if order.len() > n || order.iter().any(|&r| r as usize >= n) {
            return Err(Error::ShapeMismatch {
                what: "epoch order",
                expected: format!("at most n = {n} row indices below n"),
                got: format!("{} indices, max {:?}", order.len(), order.iter().max()),
            });
        }
        self.flush()?;
        self.ctx.write(self.order_buffer()?, order);
        if let Data::Resident { order_len, .. } = &mut self.data {
            *order_len = order.len();
        }
        self.bytes_uploaded += order.len() as u64 * 4;
        Ok(())
    }

    fn order_buffer(&self) -> Result<&wgpu::Buffer> {
        match &self.data {
            Data::Resident { order, .. } => Ok(order),
            Data::Ring(_) => Err(Error::param("epoch order", "ring engine", "has none")),
        }
    }

    /// Records one step on the batch `order[start .. start + len]` with learning rate
    /// `lr`, writing its loss (before the update) to slot `loss_slot`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty or too large batch, a batch beyond the
    /// order, a slot beyond [`GpuEngine::loss_slots`], or a ring engine (use
    /// [`GpuEngine::step_slot`]); [`Error::Device`].
    pub fn step(&mut self, start: usize, len: usize, lr: f64, loss_slot: usize) -> Result<()> {
        let order_len = match &self.data {
            Data::Resident { order_len, .. } => *order_len,
            Data::Ring(_) => {
                return Err(Error::param(
                    "step",
                    "on a ring engine",
                    "reads slots: use step_slot",
                ));
            }
        };
        if start + len > order_len {
            return Err(Error::param(
                "batch start + rows",
                start + len,
                "must not exceed the order's length (call set_order first)",
            ));
        }
        let start32 = u32::try_from(start)
            .map_err(|_| Error::param("batch start", start, "must fit in u32"))?;
        self.record(StepRows::Gather(start32), len, lr, loss_slot)
    }

    /// Records one step of `len` rows read by `rows`; the checks every step makes.
    fn record(&mut self, rows: StepRows, len: usize, lr: f64, loss_slot: usize) -> Result<()> {
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
                (rows, len),
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
        let index = ctx.scoped("submitting training steps", || {
            ring.upload(&ctx);
            Ok(ctx.queue().submit(steps))
        })?;
        if let Data::Ring(slots) = &mut self.data {
            slots.submitted(&index);
        }
        self.last_submission = Some(index);
        Ok(())
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
    (rows, m): (StepRows, usize),
    lr: f32,
    (slot, halting): (usize, Halting),
) -> Result<()> {
    // Resident data are gathered through the epoch order from `start`; a ring slot
    // through its identity index from `offset`.
    let (view, start) = match rows {
        StepRows::Gather(start) => (0, start),
        StepRows::Slot { slot, offset } => (slot, offset),
    };
    let (a_rows, target_rows) = (Some(start), TargetRows::Gather(start));
    for op in ops {
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
                target_rows,
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
