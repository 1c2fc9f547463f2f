//! The GPU engine: runs a [`Program`] on the device, the twin of
//! [`CpuEngine`](crate::cpu::engine::CpuEngine).
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
//! | an update per parameter | the optimizer's step ([`Rule`]), skipped once the halt flag is set |
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
//! slots ([`GpuEngine::ring`], in `engine/ring.rs`), each holding a group of consecutive
//! batches, which a host scheduler fills group by group ([`GpuEngine::write_slot`]) when
//! the dataset exceeds the device budget or is not in memory. Ops that read features or
//! targets are bound once per view of the data (one resident view, or one per slot);
//! everything else is shared.
//!
//! | file | holds |
//! |---|---|
//! | `engine.rs` | the types and the public API: parameters, orders, steps, readbacks |
//! | `engine/build.rs` | construction: data upload, buffers, every op bound once |
//! | `engine/record.rs` | recording a step's dispatches, submitting |
//! | `engine/chunks.rs` | resident features split over up to 4 storage bindings |
//! | `engine/ring.rs` | the streaming ring and its slot-reuse rule |
//! | `engine/ahead.rs` | snapshots for epochs queued ahead of the host's reads |
//!
//! **Upload hazard.** Queued writes (`set_order`, `set_params`) land before the *next*
//! submission, so they would overtake steps already recorded but not yet submitted. Both
//! therefore flush first.

use crate::data::Targets;
use crate::error::{Error, Result};
use crate::program::LossKind;
use crate::program::{BufId, Op, Program};
use crate::program::{Rule, StepScalars};

use super::context::GpuContext;
use super::kernels::{self, Bound, Halting, ParamRing};
use super::readback;

mod ahead;
mod build;
mod chunks;
mod record;
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
    /// The optimizer's update rule (its scalars come with each step).
    pub rule: Rule,
    /// Run a one-output GLM's steps (linear regression, logistic regression) many to a
    /// dispatch, the weights in workgroup memory (`shaders/glm_epoch.wgsl`), where the
    /// engine can: resident data, no row weights, plain SGD, p ≤ 1024, a device that
    /// allows 11 storage bindings per shader.
    /// Elsewhere (and for steps with a penalty) the ops run one dispatch each.
    pub fuse_glm: bool,
    /// Run a small two-layer MLP's steps many to a dispatch, every parameter and its
    /// gradient in one workgroup's memory (`shaders/mlp_epoch.wgsl`), where the adapter's
    /// tuning chose it ([`Tuning::mlp_many`](super::tune::Tuning::mlp_many)) and the
    /// engine can: resident data in one binding, no row weights, plain SGD, batches of at
    /// most [`kernels::MLP_EPOCH_MAX_BATCH`] rows, a network that
    /// [`kernels::mlp_epoch_tile`] holds, a device that allows 10 storage bindings per
    /// shader. Elsewhere the MLP step runs as [`GpuEngineOptions::fuse_mlp`] says.
    pub fuse_mlp_steps: bool,
    /// Compute a one-output GLM's loss and gradients (linear regression, logistic
    /// regression, `p` ≤ 1024) in one pass over the batch's rows, cut into segments over
    /// many workgroups (`shaders/glm_grad.wgsl`, then `glm_finish.wgsl` adds the segments
    /// in order): two dispatches (plus one per further feature chunk) instead of the
    /// per-op forward, loss and backward's seven, and X read once instead of twice. Any
    /// batch size, row weights, rule and penalty (the updates stay the per-op kernels);
    /// on by default. `false` runs the per-op path, its twin in the tests.
    pub fuse_glm_grad: bool,
    /// Run a two-layer MLP's forward, loss and backward (seed 001's network) as two
    /// dispatches (`shaders/mlp_rows.wgsl`: each row's forward, softmax + CCE, δ² and δ¹
    /// with the rows in workgroup memory; `shaders/mlp_grads.wgsl`: the four gradients
    /// and the loss summed over the rows) instead of the per-op path's dozen, where the
    /// adapter's tuning chose it ([`MlpStep::Fused`](super::tune::MlpStep::Fused): the
    /// H200's, not lavapipe's) and the engine can: batches of at most [`kernels::MLP_STEP_MAX_BATCH`] rows, a shape
    /// within [`kernels::mlp_step_fits`], features in one storage binding, a device that
    /// allows 13 storage bindings per shader. Any rule, penalty and row weights (the
    /// updates stay the per-op kernels); on by default. `false` runs the per-op path,
    /// its twin in the tests.
    pub fuse_mlp: bool,
    /// Fold the bias add, the activation and the activation's backward that follow a
    /// product into its store (`shaders/matmul.wgsl`'s epilogues): the same bits, three
    /// dispatches and passes fewer per MLP layer step; on by default.
    pub fuse_epilogues: bool,
    /// Update up to four parameter tensors in one dispatch (`shaders/update_all.wgsl`)
    /// where the device allows its 17 storage bindings: an MLP's four updates in one
    /// dispatch instead of four, the same bits; on by default. `false` (or a device with
    /// fewer bindings) updates one tensor a dispatch.
    pub fuse_updates: bool,
    /// The device halts on a non-finite loss (or by `tol`), as the host would (the
    /// default). `false` leaves halting to the host: a distributed fit halts on the
    /// global batch's loss, which no one device sees.
    pub halts: bool,
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
            rule: Rule::Sgd,
            fuse_glm: false,
            fuse_mlp_steps: false,
            fuse_glm_grad: true,
            fuse_mlp: true,
            fuse_epilogues: true,
            fuse_updates: true,
            halts: true,
            max_chunk_rows: None,
        }
    }
}

/// One op, bound once per view of the data (ops that read no data: one bind group).
struct BoundOp {
    op: OpKind,
    bound: Vec<Bound>,
    /// A sum over the batch's rows split over many workgroups (engines whose batches can
    /// pass [`kernels::SPLIT_MIN_ROWS`]): `bound` writes partial sums into a scratch
    /// buffer of `segments` blocks, this second pass adds them into the op's output.
    split: Option<SplitPass>,
    /// The element-wise ops folded into a product's store (matmuls only).
    epi: kernels::Epilogue,
}

/// The second pass of a split sum and the scratch room it was sized for.
struct SplitPass {
    finish: Bound,
    segments: usize,
    /// Rows (values of k) a segment holds at least (`kernels::split_with`).
    min_segment: usize,
    /// Keeps the scratch buffer alive beside the bind groups that use it.
    _scratch: wgpu::Buffer,
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
        /// Row weights for the loss, when given.
        weights: Option<wgpu::Buffer>,
        order: wgpu::Buffer,
        order_len: usize,
        /// The order uploaded is 0, 1, 2, …: the fused GLM gradient then reads rows in
        /// stored order, each chunk only its own.
        order_identity: bool,
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
    weights: Option<&'a wgpu::Buffer>,
}

impl Data {
    fn views(&self) -> Vec<View<'_>> {
        match self {
            Data::Resident {
                chunks,
                targets,
                weights,
                order,
                ..
            } => vec![View {
                features: chunks.bufs.iter().collect(),
                rows_per_chunk: chunks.rows_per_chunk,
                index: Some(order),
                targets,
                weights: weights.as_ref(),
            }],
            Data::Ring(r) => r.views(),
        }
    }
}

/// What the engine is built over.
enum Source<'x> {
    Resident {
        x: &'x [f32],
        targets: &'x Targets,
        weights: Option<&'x [f32]>,
    },
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
    /// The optimizer step on parameter `i`.
    Update(usize),
    /// The optimizer steps on up to four parameters in one dispatch: each one's length
    /// and whether it is a bias (fixed when the engine is built).
    UpdateAll(Vec<(usize, bool)>),
}

impl OpKind {
    /// Whether this op is an optimizer step (the part of a step that runs without its
    /// forward and backward, and that a fused gradient does not stand for).
    fn is_update(&self) -> bool {
        matches!(self, OpKind::Update(_) | OpKind::UpdateAll(_))
    }
}

/// What [`GpuEngine::read_sync`] brings back in one readback.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRead {
    /// The losses of the slots asked for.
    pub losses: Vec<f32>,
    /// The slot of the step that halted training, as [`GpuEngine::halted_at`].
    pub halted_at: Option<usize>,
    /// The parameters, as [`GpuEngine::params`], when asked for.
    pub params: Option<Vec<Vec<f32>>>,
}

/// A [`GpuEngine::start_sync`] on its way.
pub(crate) struct PendingSync {
    read: readback::Pending<u32>,
    with_params: bool,
}

/// Runs a model's [`Program`] on the GPU, with the dataset resident on the device
/// ([`GpuEngine::new`]) or streamed through a ring of batch slots ([`GpuEngine::ring`]).
pub struct GpuEngine {
    ctx: GpuContext,
    rule: Rule,
    /// Optimizer state per parameter (see [`crate::program::Rule`]).
    state: Vec<[wgpu::Buffer; 2]>,
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
    /// The unsubmitted steps, recorded since the last submission.
    open: Option<OpenSteps>,
    steps_pending: usize,
    steps_per_submit: usize,
    /// Parameter blocks one step takes at most (a long matmul takes several).
    dispatches_per_step: usize,
    last_submission: Option<wgpu::SubmissionIndex>,
    bytes_uploaded: u64,
    /// Dispatches recorded and submissions made so far (the bench reports them).
    dispatches: u64,
    submissions: u64,
    /// The many-step GLM path, when [`GpuEngineOptions::fuse_glm`] applies.
    fused: Option<Fused>,
    /// The fused GLM gradient, when [`GpuEngineOptions::fuse_glm_grad`] applies.
    grad: Option<FusedGrad>,
    /// The fused MLP step, when [`GpuEngineOptions::fuse_mlp`] applies.
    mlp: Option<FusedMlp>,
    /// Copies of the state at the ends of epochs queued ahead of the host's reads
    /// ([`GpuEngine::keep_snapshots`]).
    snapshots: Option<ahead::Snapshots>,
}

/// The unsubmitted steps: one command encoder and one compute pass for all of them, with
/// the ring's fill level and the dispatch count when it was opened (what a step that
/// fails to record rewinds to).
struct OpenSteps {
    enc: wgpu::CommandEncoder,
    pass: wgpu::ComputePass<'static>,
    start: (usize, u64),
}

/// A two-layer MLP's forward, loss and backward as two dispatches: the rows pass
/// (`shaders/mlp_rows.wgsl`, bound per view of the data) and the sums pass
/// (`shaders/mlp_grads.wgsl`).
struct FusedMlp {
    rows: Vec<Bound>,
    grads: Bound,
    /// Inputs p, hidden units h, classes k, the hidden activation.
    shape: (usize, usize, usize, crate::program::Activation),
    /// Keep the gathered rows and the loss parts alive beside the bind groups.
    _scratch: [wgpu::Buffer; 2],
}

/// A one-output GLM's forward, loss and backward as one pass over the rows
/// (`shaders/glm_grad.wgsl`, one dispatch per feature chunk) and the ordered sum of its
/// segments (`shaders/glm_finish.wgsl`).
struct FusedGrad {
    /// First passes: per view of the data (as [`BoundOp::bound`]), one per feature chunk.
    chunks: Vec<Vec<Bound>>,
    finish: Bound,
    /// Segments per chunk the partial buffer holds.
    room: usize,
    kind: LossKind,
    p: usize,
    variant: crate::gpu::tune::GlmGradVariant,
    /// Keeps the partial sums alive beside the bind groups that use them.
    _partials: wgpu::Buffer,
}

/// The many-step path: steps queue here and reach the device as dispatches of
/// `shaders/glm_epoch.wgsl` or `shaders/mlp_epoch.wgsl` at the next flush.
struct Fused {
    bound: Bound,
    steps: wgpu::Buffer,
    capacity: usize,
    /// Steps one dispatch runs ([`kernels::glm_steps_per_dispatch`] or
    /// [`kernels::mlp_epoch_steps_per_dispatch`] of the batch size).
    per_dispatch: usize,
    pending: Vec<kernels::GlmStep>,
    model: ManySteps,
}

/// The model a many-step engine runs.
#[derive(Debug, Clone, Copy)]
enum ManySteps {
    /// A one-output GLM with its loss (`glm_epoch.wgsl`).
    Glm(LossKind),
    /// A small two-layer MLP: inputs, hidden units, classes, the hidden activation
    /// (`mlp_epoch.wgsl`).
    Mlp(usize, usize, usize, crate::program::Activation),
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
        if p == 0 || !x.len().is_multiple_of(p) {
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
            Source::Resident {
                x,
                targets,
                weights: None,
            },
        )
    }

    /// As [`GpuEngine::with_options`], with row weights for the loss (one per row, read
    /// like the targets; see [`crate::cpu::loss`]).
    ///
    /// # Errors
    /// As [`GpuEngine::with_options`]; [`Error::ShapeMismatch`] when the weights are not
    /// one per row.
    #[allow(clippy::too_many_arguments)] // the dataset's parts, the cap and the options
    pub fn weighted(
        ctx: &GpuContext,
        program: Program,
        x: &[f32],
        p: usize,
        targets: &Targets,
        weights: &[f32],
        cap: usize,
        options: GpuEngineOptions,
    ) -> Result<Self> {
        if p == 0 || !x.len().is_multiple_of(p) || weights.len() * p != x.len() {
            return Err(Error::ShapeMismatch {
                what: "features and weights",
                expected: format!("n × p values with p = {p} ≥ 1, and n weights"),
                got: format!("{} values, {} weights", x.len(), weights.len()),
            });
        }
        let source = Source::Resident {
            x,
            targets,
            weights: Some(weights),
        };
        Self::build(ctx, program, p, cap, options, source)
    }

    /// The optimizer's update rule.
    pub fn rule(&self) -> Rule {
        self.rule
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

    /// Compute dispatches recorded and queue submissions made so far (steps and
    /// submissions: the launch overhead a step pays).
    pub fn launches(&self) -> (u64, u64) {
        (self.dispatches, self.submissions)
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
        // Every tensor in one readback: one wait, not one per tensor.
        let parts: Vec<_> = self.param_parts().collect();
        readback::read_parts(&self.ctx, &parts)
    }

    /// Each parameter tensor's buffer and length, in [`Program::params`] order.
    fn param_parts(&self) -> impl Iterator<Item = (&wgpu::Buffer, usize)> {
        let params = self.program.params.iter();
        params.map(|d| (&self.bufs[d.value.0], d.rows * d.cols))
    }

    /// What the host reads at the end of an epoch, in one readback (one wait where
    /// [`GpuEngine::read_losses`], [`GpuEngine::halted_at`] and [`GpuEngine::params`]
    /// take three): the losses of slots `0 .. count`, the halting slot, and the
    /// parameters when `with_params`. On a real GPU each wait costs a round trip that
    /// a full-batch fit, one step an epoch, would otherwise pay three times a step.
    ///
    /// # Errors
    /// As [`GpuEngine::read_losses`].
    pub fn read_sync(&mut self, count: usize, with_params: bool) -> Result<SyncRead> {
        let pending = self.start_sync(count, with_params)?;
        self.finish_sync(pending)
    }

    /// [`GpuEngine::read_sync`]'s copies, submitted after every step recorded so far,
    /// without waiting: steps recorded afterwards run while the host waits in
    /// [`GpuEngine::finish_sync`] (an epoch queued ahead of the host's decision on the
    /// one before).
    pub(crate) fn start_sync(&mut self, count: usize, with_params: bool) -> Result<PendingSync> {
        self.check_loss_count(count)?;
        self.flush()?;
        let mut parts = vec![(&self.losses, count), (&self.halt, 2)];
        if with_params {
            parts.extend(self.param_parts());
        }
        // The halt flags are u32s: read with the rest as bits, turned back below.
        Ok(PendingSync {
            read: readback::start::<u32>(&self.ctx, &parts)?,
            with_params,
        })
    }

    /// Waits for a [`GpuEngine::start_sync`]'s copies (not for steps queued after them).
    pub(crate) fn finish_sync(&mut self, pending: PendingSync) -> Result<SyncRead> {
        let mut read = pending.read.finish(&self.ctx)?.into_iter();
        let mut next = || read.next().unwrap_or_default();
        let losses = next().into_iter().map(f32::from_bits).collect();
        let h = next();
        let halted_at = (h.first().is_some_and(|&f| f != 0)).then(|| h[1] as usize);
        let params = pending.with_params.then(|| {
            let tensors = self.program.params.len();
            (0..tensors)
                .map(|_| next().into_iter().map(f32::from_bits).collect())
                .collect()
        });
        Ok(SyncRead {
            losses,
            halted_at,
            params,
        })
    }

    /// The optimizer state, two tensors per parameter in [`Program::params`] order (waits
    /// for pending steps): what a checkpoint keeps besides the parameters.
    ///
    /// # Errors
    /// [`Error::Device`].
    pub fn optimizer_state(&mut self) -> Result<Vec<[Vec<f32>; 2]>> {
        self.flush()?;
        self.program
            .params
            .iter()
            .zip(&self.state)
            .map(|(d, [a, b])| {
                let len = d.rows * d.cols;
                Ok([
                    readback::read_f32(&self.ctx, a, len)?,
                    readback::read_f32(&self.ctx, b, len)?,
                ])
            })
            .collect()
    }

    /// Restores the optimizer state (as [`GpuEngine::optimizer_state`] returned it).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the count or a length differs from the program.
    pub fn set_optimizer_state(&mut self, state: &[[Vec<f32>; 2]]) -> Result<()> {
        self.program.check_state(state)?;
        self.flush()?;
        for ([a, b], [va, vb]) in self.state.iter().zip(state) {
            self.ctx.write(a, va);
            self.ctx.write(b, vb);
        }
        Ok(())
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
        if let Data::Resident {
            order_len,
            order_identity,
            ..
        } = &mut self.data
        {
            *order_len = order.len();
            *order_identity = order.iter().enumerate().all(|(i, &r)| r as usize == i);
        }
        self.bytes_uploaded += order.len() as u64 * 4;
        Ok(())
    }

    /// The stored order as the epoch order (an unshuffled epoch, a full batch): uploaded
    /// the first time, a no-op while it is still in place — a full-batch fit's epochs
    /// are single steps, and 4 MB of identity per step (10⁶ rows) cost more than the step.
    ///
    /// # Errors
    /// As [`GpuEngine::set_order`].
    pub fn set_identity_order(&mut self) -> Result<()> {
        let n = self.rows();
        if let Data::Resident {
            order_len,
            order_identity,
            ..
        } = &self.data
            && *order_identity
            && *order_len == n
        {
            return Ok(());
        }
        let identity: Vec<u32> = (0..n as u32).collect();
        self.set_order(&identity)
    }

    fn order_buffer(&self) -> Result<&wgpu::Buffer> {
        match &self.data {
            Data::Resident { order, .. } => Ok(order),
            Data::Ring(_) => Err(Error::param("epoch order", "ring engine", "has none")),
        }
    }

    /// Records one step on the batch `order[start .. start + len]` with the update's
    /// scalars (a learning rate alone means plain SGD at that rate), writing its loss
    /// (before the update) to slot `loss_slot`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty or too large batch, a batch beyond the
    /// order, a slot beyond [`GpuEngine::loss_slots`], or a ring engine (use
    /// [`GpuEngine::step_slot`]); [`Error::Device`].
    pub fn step(
        &mut self,
        start: usize,
        len: usize,
        update: impl Into<StepScalars>,
        loss_slot: usize,
    ) -> Result<()> {
        if matches!(self.data, Data::Ring(_)) {
            return Err(Error::param(
                "step",
                "on a ring engine",
                "reads slots: use step_slot",
            ));
        }
        let start32 = self.in_order(start, len)?;
        let update = update.into();
        if self.fused.is_some() {
            return self.queue_fused(start32, len, &update, loss_slot);
        }
        self.record(StepRows::Gather(start32), len, Some(&update), loss_slot)
    }

    /// Replaces every parameter's gradient (in [`Program::params`] order) and records
    /// the update alone: how a distributed fit applies the global batch's gradients, all-
    /// reduced on the host, after [`GpuEngine::loss_and_grads`] or
    /// [`GpuEngine::loss_and_grads_slot`] computed this rank's.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for gradients of another shape; [`Error::Device`].
    pub fn apply_grads(
        &mut self,
        grads: &[Vec<f32>],
        update: impl Into<StepScalars>,
    ) -> Result<()> {
        self.program.check_params(grads)?;
        self.flush()?;
        for (d, g) in self.program.params.iter().zip(grads) {
            self.ctx.write(&self.bufs[d.grad.0], g);
        }
        self.record_update(&update.into())
    }

    /// The mean loss and every parameter's gradient (in [`Program::params`] order) over
    /// the batch `order[start .. start + len]` at the current parameters, with no update:
    /// what a full-batch solver evaluates. Only the loss and the gradients are read back.
    ///
    /// # Errors
    /// As [`GpuEngine::step`], on an engine built without `fuse_glm`.
    pub fn loss_and_grads(&mut self, start: usize, len: usize) -> Result<(f32, Vec<Vec<f32>>)> {
        if matches!(self.data, Data::Ring(_)) || self.fused.is_some() {
            return Err(Error::param(
                "loss_and_grads",
                "on a ring or many-step engine",
                "needs resident data and an engine built without fuse_glm",
            ));
        }
        let start32 = self.in_order(start, len)?;
        self.read_step(StepRows::Gather(start32), len)
    }

    /// Records a step with no update on `rows` and reads back its loss and gradients.
    fn read_step(&mut self, rows: StepRows, len: usize) -> Result<(f32, Vec<Vec<f32>>)> {
        self.record(rows, len, None, 0)?;
        self.flush()?;
        // The loss and every gradient in one readback: one wait, not one per tensor.
        let mut parts = vec![(&self.losses, 1)];
        let grads = self.program.params.iter();
        parts.extend(grads.map(|d| (&self.bufs[d.grad.0], d.rows * d.cols)));
        let mut read = readback::read_parts::<f32>(&self.ctx, &parts)?.into_iter();
        let loss = read
            .next()
            .and_then(|l| l.first().copied())
            .unwrap_or(f32::NAN);
        Ok((loss, read.collect()))
    }

    /// The losses of slots `0 .. count` (waits for pending steps).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] beyond the slots; [`Error::Device`].
    pub fn read_losses(&mut self, count: usize) -> Result<Vec<f32>> {
        self.check_loss_count(count)?;
        self.flush()?;
        readback::read_f32(&self.ctx, &self.losses, count)
    }

    /// Checks that slots `0 .. count` exist.
    fn check_loss_count(&self, count: usize) -> Result<()> {
        if count > self.loss_slots {
            return Err(Error::param(
                "loss count",
                count,
                "must not exceed the engine's loss_slots",
            ));
        }
        Ok(())
    }

    /// Checks that positions `start .. start + len` lie within the resident order;
    /// returns `start` as the kernels read it.
    fn in_order(&self, start: usize, len: usize) -> Result<u32> {
        let order_len = match &self.data {
            Data::Resident { order_len, .. } => *order_len,
            Data::Ring(_) => 0,
        };
        if start + len > order_len {
            return Err(Error::param(
                "batch start + rows",
                start + len,
                "must not exceed the order's length (call set_order first)",
            ));
        }
        u32::try_from(start).map_err(|_| Error::param("batch start", start, "must fit in u32"))
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
