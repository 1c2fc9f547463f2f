//! Host launchers: one per kernel, mirroring its CPU twin in [`crate::cpu`].
//!
//! A kernel call is split in two, so that a training loop builds everything once:
//!
//! 1. **bind** (once per op, when an engine is built): `bind_*` creates a [`Bound`], the
//!    bind group of the op's buffers, remembering their lengths;
//! 2. **launch** (every step): the launcher of the same name pushes the per-dispatch
//!    parameters (shapes, offsets, learning rate) into a [`ParamRing`], checks the shape
//!    against the bound lengths and the device limits, and records one dispatch into a
//!    [`wgpu::ComputePass`]. Nothing is created.
//!
//! The ring is a uniform buffer of 256-byte slots bound with a dynamic offset; its staged
//! contents are written with [`ParamRing::upload`] before the encoder is submitted (queued
//! writes land before the next submission), and the ring is then free for reuse.

use crate::error::{Error, Result};
use crate::program::Activation;
use crate::program::Layout;
use crate::program::LossKind;
use crate::program::{Rule, Scalars};

use super::context::GpuContext;
use super::pipelines::{Family, Kernel};

/// Bytes of every parameter block (the largest WGSL `Params` struct).
const PARAM_BYTES: u64 = 48;

/// Per-dispatch parameters: a uniform buffer of slots addressed by dynamic offsets.
#[derive(Debug)]
pub struct ParamRing {
    buf: wgpu::Buffer,
    stride: u64,
    slots: usize,
    staged: Vec<u8>,
}

impl ParamRing {
    /// A ring of `slots` parameter blocks (one per dispatch until the next upload).
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] when the ring exceeds the device's buffer size.
    pub fn new(ctx: &GpuContext, slots: usize) -> Result<Self> {
        // Dynamic offsets must be multiples of the alignment: the block rounded up to it.
        let align = u64::from(ctx.limits().min_uniform_buffer_offset_alignment).max(1);
        let stride = PARAM_BYTES.div_ceil(align) * align;
        let slots = slots.max(1);
        let size = stride.saturating_mul(slots as u64);
        if size > ctx.limits().max_buffer_size {
            return Err(Error::DeviceLimit {
                what: "parameter ring bytes",
                requested: size,
                limit: ctx.limits().max_buffer_size,
            });
        }
        let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("parameter ring"),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(ParamRing {
            buf,
            stride,
            slots,
            staged: Vec::with_capacity(size as usize),
        })
    }

    /// Slots still free before an [`upload`](ParamRing::upload) is needed.
    pub fn free(&self) -> usize {
        self.slots - self.staged.len() / self.stride as usize
    }

    fn push<T: bytemuck::Pod>(&mut self, params: &T) -> Result<u32> {
        if self.free() == 0 {
            return Err(Error::DeviceLimit {
                what: "dispatches recorded before a parameter-ring upload",
                requested: self.slots as u64 + 1,
                limit: self.slots as u64,
            });
        }
        let offset = self.staged.len();
        self.staged.extend_from_slice(bytemuck::bytes_of(params));
        self.staged.resize(offset + self.stride as usize, 0);
        Ok(offset as u32)
    }

    /// The ring's fill level, to [`rewind`](ParamRing::rewind) to.
    pub fn mark(&self) -> usize {
        self.staged.len()
    }

    /// Dispatches recorded since `mark` (each takes one parameter block).
    pub fn since(&self, mark: usize) -> usize {
        (self.staged.len() - mark) / self.stride as usize
    }

    /// Forgets the blocks pushed since `mark` (their dispatches were never submitted).
    pub fn rewind(&mut self, mark: usize) {
        self.staged.truncate(mark);
    }

    /// Queues the staged parameters for the next submission and empties the ring.
    pub fn upload(&mut self, ctx: &GpuContext) {
        if !self.staged.is_empty() {
            ctx.queue().write_buffer(&self.buf, 0, &self.staged);
            self.staged.clear();
        }
    }
}

/// An op's bind group, created once, with the lengths (in 4-byte values) of its storage
/// buffers so that every launch can check its shape.
#[derive(Debug)]
pub struct Bound {
    family: Family,
    group: wgpu::BindGroup,
    lens: Vec<u64>,
    /// Matmul A split into chunks: rows per chunk (`u32::MAX` for one buffer) and the
    /// number of chunks; unused by the other families.
    chunk_rows: u32,
    chunks: usize,
    /// A loss bound with row weights.
    weighted: bool,
}

/// Most buffers a matmul's A may be split into (bindings `a`, `a1`, `a2`, `a3`).
pub const MAX_A_CHUNKS: usize = 4;

/// Positions in [`Bound::lens`] of A's chunks, in row order (see [`Family::storage`]).
const A_CHUNK_SLOTS: [usize; MAX_A_CHUNKS] = [0, 4, 5, 6];

fn bind(
    ctx: &GpuContext,
    ring: &ParamRing,
    family: Family,
    bufs: &[&wgpu::Buffer],
) -> Result<Bound> {
    debug_assert_eq!(bufs.len(), family.storage().len());
    for b in bufs {
        ctx.check_binding(b.size())?;
    }
    let layout = ctx.pipelines().layout(family);
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &ring.buf,
            offset: 0,
            size: wgpu::BufferSize::new(PARAM_BYTES),
        }),
    }];
    for (i, b) in bufs.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: b.as_entire_binding(),
        });
    }
    let group = ctx.scoped("creating a bind group", || {
        Ok(ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{family:?}")),
            layout: &layout,
            entries: &entries,
        }))
    })?;
    Ok(Bound {
        family,
        group,
        lens: bufs.iter().map(|b| b.size() / 4).collect(),
        chunk_rows: u32::MAX,
        chunks: 1,
        weighted: false,
    })
}

/// Binds `c = op(a) · op(b)`; `a_rows` is the optional gather index of A's stored rows.
///
/// # Errors
/// [`Error::DeviceLimit`] for a buffer beyond the binding limit; [`Error::Device`].
pub fn bind_matmul(
    ctx: &GpuContext,
    ring: &ParamRing,
    a: &wgpu::Buffer,
    a_rows: Option<&wgpu::Buffer>,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Bound> {
    // One buffer: every row is in chunk 0 at its own index.
    bind_matmul_chunked(ctx, ring, &[a], u32::MAX as usize, a_rows, b, c)
}

/// As [`bind_matmul`], with A's stored rows split over up to [`MAX_A_CHUNKS`] buffers
/// (a resident dataset larger than one storage binding): row r is row
/// `r % rows_per_chunk` of `a[r / rows_per_chunk]`. Every chunk but the last must hold
/// `rows_per_chunk` whole rows; that is checked at each launch, when the row length is
/// known. `rows_per_chunk` beyond `u32::MAX` means the same as `u32::MAX` (no row index
/// reaches it).
///
/// # Errors
/// [`Error::InvalidParameter`] for no chunk, more than [`MAX_A_CHUNKS`], or
/// `rows_per_chunk = 0`; as [`bind_matmul`].
pub fn bind_matmul_chunked(
    ctx: &GpuContext,
    ring: &ParamRing,
    a: &[&wgpu::Buffer],
    rows_per_chunk: usize,
    a_rows: Option<&wgpu::Buffer>,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Bound> {
    if a.is_empty() || a.len() > MAX_A_CHUNKS {
        return Err(Error::param(
            "matmul A chunks",
            a.len(),
            "must be between 1 and 4 (MAX_A_CHUNKS)",
        ));
    }
    if rows_per_chunk == 0 {
        return Err(Error::param("matmul A rows per chunk", 0, "must be ≥ 1"));
    }
    // Absent chunks bind the read-only stand-in; the shader never selects them.
    let chunk = |i: usize| a.get(i).copied().unwrap_or(ctx.dummy());
    let mut bound = bind(
        ctx,
        ring,
        Family::Matmul,
        &[
            a[0],
            b,
            c,
            a_rows.unwrap_or(ctx.dummy()),
            chunk(1),
            chunk(2),
            chunk(3),
        ],
    )?;
    bound.chunk_rows = u32::try_from(rows_per_chunk).unwrap_or(u32::MAX);
    bound.chunks = a.len();
    Ok(bound)
}

/// Binds `z[i, :] += bias`.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_bias_add(
    ctx: &GpuContext,
    ring: &ParamRing,
    z: &wgpu::Buffer,
    bias: &wgpu::Buffer,
) -> Result<Bound> {
    bind(ctx, ring, Family::Bias, &[z, bias])
}

/// Binds `out = f(z)` (forward) or `grad *= f′(a)` (backward): `src` is z or a, `dst` is
/// the output or the gradient.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_activation(
    ctx: &GpuContext,
    ring: &ParamRing,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<Bound> {
    bind(ctx, ring, Family::Activation, &[src, dst])
}

/// Binds `out = softmax_rows(z)`.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_softmax_rows(
    ctx: &GpuContext,
    ring: &ParamRing,
    z: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<Bound> {
    bind(ctx, ring, Family::Softmax, &[z, out])
}

/// Binds a fused loss: output `z`, `targets` (f32 values or u32 labels), the gradient
/// `dz`, the optional gather index of the target rows, the `losses` slots, the optional
/// halt flag (4 × u32, see `shaders/loss.wgsl`) that training uses, and optional row
/// weights (one f32 per target row, read like the targets).
///
/// # Errors
/// As [`bind_matmul`].
#[allow(clippy::too_many_arguments)] // one buffer per binding of the kernel
pub fn bind_loss(
    ctx: &GpuContext,
    ring: &ParamRing,
    z: &wgpu::Buffer,
    targets: &wgpu::Buffer,
    rows: Option<&wgpu::Buffer>,
    dz: &wgpu::Buffer,
    losses: &wgpu::Buffer,
    halt: Option<&wgpu::Buffer>,
    weights: Option<&wgpu::Buffer>,
) -> Result<Bound> {
    let mut bound = bind(
        ctx,
        ring,
        Family::Loss,
        &[
            z,
            targets,
            dz,
            rows.unwrap_or(ctx.dummy()),
            losses,
            halt.unwrap_or(ctx.scratch()),
            weights.unwrap_or(ctx.dummy()),
        ],
    )?;
    bound.weighted = weights.is_some();
    Ok(bound)
}

/// Binds the many-step GLM kernel (`shaders/glm_epoch.wgsl`): the resident features (up
/// to [`MAX_A_CHUNKS`] chunks of `chunk_rows` whole rows), the targets, the epoch order,
/// the step list, the parameters `w` and `b` (read and written), the loss slots and the
/// halt flag.
///
/// # Errors
/// As [`bind_matmul`]; [`Error::InvalidParameter`] for no chunk or too many.
#[allow(clippy::too_many_arguments)] // one buffer per binding of the kernel
pub fn bind_glm_epoch(
    ctx: &GpuContext,
    ring: &ParamRing,
    (x, chunk_rows): (&[&wgpu::Buffer], usize),
    targets: &wgpu::Buffer,
    order: &wgpu::Buffer,
    steps: &wgpu::Buffer,
    w: &wgpu::Buffer,
    b: &wgpu::Buffer,
    losses: &wgpu::Buffer,
    halt: &wgpu::Buffer,
) -> Result<Bound> {
    if x.is_empty() || x.len() > MAX_A_CHUNKS {
        return Err(Error::param(
            "many-step GLM feature chunks",
            x.len(),
            "must be between 1 and 4",
        ));
    }
    let chunk = |i: usize| x.get(i).copied().unwrap_or(ctx.dummy());
    let mut bound = bind(
        ctx,
        ring,
        Family::GlmEpoch,
        &[
            chunk(0),
            chunk(1),
            chunk(2),
            chunk(3),
            targets,
            order,
            steps,
            w,
            b,
            losses,
            halt,
        ],
    )?;
    bound.chunk_rows = u32::try_from(chunk_rows).unwrap_or(u32::MAX);
    bound.chunks = x.len();
    Ok(bound)
}

/// One step of the many-step GLM kernel: where its batch starts in the epoch order, its
/// rows, its learning rate and its loss slot (the shader's `Step`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GlmStep {
    /// First position in the epoch order.
    pub start: u32,
    /// Rows.
    pub len: u32,
    /// Learning rate.
    pub lr: f32,
    /// Loss slot.
    pub slot: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GlmEpochParams {
    p: u32,
    chunk_rows: u32,
    first: u32,
    n_steps: u32,
    halt_mode: u32,
    tol: f32,
}

/// The largest `p` the many-step GLM kernel holds in workgroup memory.
pub const GLM_EPOCH_MAX_P: usize = 1024;

/// Steps per dispatch of the many-step GLM kernel. Mesa's llvmpipe (lavapipe) computes
/// wrong results once one dispatch has run a few hundred steps (measured: from step 195
/// at p = 64, 138 at p = 200, 242 at p = 8, with the learning rate 0 — the loops' work,
/// not the data, triggers it): its loop limiter stops an invocation's loops after 65,535
/// iterations in all, counted over every loop of the invocation (the matmul kernel hit the
/// same wall at k ≈ 60,000, see [`MATMUL_K_PER_DISPATCH`]). So a dispatch takes a bounded
/// number of steps and a submission many dispatches.
pub const GLM_STEPS_PER_DISPATCH: usize = 16;

/// Rows one dispatch of the many-step GLM kernel walks at most: sixteen 256-row steps,
/// the regime its tests cover on llvmpipe. A larger batch takes fewer steps a dispatch.
pub const GLM_ROWS_PER_DISPATCH: usize = GLM_STEPS_PER_DISPATCH * 256;

/// The largest batch the many-step GLM kernel takes. One workgroup walks a step's rows,
/// so a large batch is better spread over the device by the per-op path; and a single
/// step of 10⁶ rows (full-batch W4) in one dispatch runs past llvmpipe's loop limit (it
/// ended at loss 9.8e-3 against the CPU's 2.3e-3; the per-op path agrees).
pub const GLM_EPOCH_MAX_BATCH: usize = GLM_ROWS_PER_DISPATCH;

/// Steps per dispatch of the many-step GLM kernel for batches of up to `batch` rows:
/// [`GLM_STEPS_PER_DISPATCH`] for batches up to 256 rows, fewer for larger ones, so that a
/// dispatch walks at most [`GLM_ROWS_PER_DISPATCH`] rows.
///
/// # Example
/// ```
/// use gradflow::gpu::kernels::glm_steps_per_dispatch;
/// assert_eq!(glm_steps_per_dispatch(256), 16);
/// assert_eq!(glm_steps_per_dispatch(1000), 4);
/// assert_eq!(glm_steps_per_dispatch(4096), 1);
/// ```
pub fn glm_steps_per_dispatch(batch: usize) -> usize {
    (GLM_ROWS_PER_DISPATCH / batch.max(1)).clamp(1, GLM_STEPS_PER_DISPATCH)
}

/// Records steps `first .. first + n_steps` of the bound step list as one dispatch of one
/// workgroup (`kind`: MSE or sigmoid + BCE).
///
/// # Errors
/// [`Error::InvalidParameter`] for another loss or `p` beyond [`GLM_EPOCH_MAX_P`];
/// [`Error::ShapeMismatch`] for a step list or parameters shorter than asked.
#[allow(clippy::too_many_arguments)] // the launcher's context, as every launcher's
pub fn glm_epoch(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    kind: LossKind,
    p: usize,
    (first, n_steps): (usize, usize),
    halting: Halting,
) -> Result<()> {
    check_family(bound, Family::GlmEpoch)?;
    if kind == LossKind::SoftmaxCce {
        return Err(Error::param(
            "many-step GLM loss",
            "softmax_cce",
            "must be MSE or sigmoid + BCE (one output)",
        ));
    }
    if p == 0 || p > GLM_EPOCH_MAX_P {
        return Err(Error::param(
            "many-step GLM features p",
            p,
            "must be between 1 and 1024",
        ));
    }
    check_len(
        bound,
        6,
        "many-step GLM step list",
        4 * (first + n_steps) as u64,
    )?;
    check_len(bound, 7, "many-step GLM weights", p as u64)?;
    let (halt_mode, tol) = match halting {
        Halting::Off => (0, 0.0),
        Halting::NonFinite => (1, 0.0),
        Halting::Tolerance(t) => (2, t),
    };
    let count = |v: usize| {
        u32::try_from(v).map_err(|_| Error::param("many-step GLM steps", v, "must fit in u32"))
    };
    let params = GlmEpochParams {
        p: p as u32,
        chunk_rows: bound.chunk_rows,
        first: count(first)?,
        n_steps: count(n_steps)?,
        halt_mode,
        tol,
    };
    dispatch(
        ctx,
        pass,
        ring,
        Kernel::GlmEpoch(kind),
        bound,
        &params,
        (1, 1),
    )
}

/// Binds `out = 1ᵀ x`.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_col_sums(
    ctx: &GpuContext,
    ring: &ParamRing,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<Bound> {
    bind(ctx, ring, Family::Reduce, &[x, out])
}

/// Binds an update of `param` from `grad` with optimizer state `s1`, `s2` (two distinct
/// buffers as long as `param`, zero at first; see [`crate::program::Rule`] for what
/// each rule keeps there), skipped once the optional `halt` flag is set.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_update(
    ctx: &GpuContext,
    ring: &ParamRing,
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    halt: Option<&wgpu::Buffer>,
    [s1, s2]: [&wgpu::Buffer; 2],
) -> Result<Bound> {
    bind(
        ctx,
        ring,
        Family::Update,
        &[param, grad, halt.unwrap_or(ctx.dummy()), s1, s2],
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    k: u32,
    n: u32,
    use_idx: u32,
    idx_off: u32,
    /// Rows per chunk of A (`u32::MAX`: one buffer).
    rows_per_chunk: u32,
    /// The stretch of k one dispatch sums.
    k_begin: u32,
    k_end: u32,
    /// Split sums (the `*_split` entry points): k per segment and C's stride between
    /// segments.
    seg_len: u32,
    c_stride: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ShapeParams {
    rows: u32,
    cols: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    m: u32,
    cols: u32,
    use_idx: u32,
    idx_off: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    use_w: u32,
}

/// Whether a loss dispatch decides to halt training (see `shaders/loss.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Halting {
    /// Never (kernel tests; the halt binding may be absent).
    Off,
    /// On a non-finite loss.
    NonFinite,
    /// On a non-finite loss or when |loss − previous| < tol (seed 000's rule).
    Tolerance(f32),
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UpdateParams {
    len: u32,
    lr: f32,
    l2: f32,
    l1: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    c1: f32,
    c2: f32,
    nesterov: u32,
    pad: [u32; 2],
}

fn to_u32(what: &'static str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::DeviceLimit {
        what,
        requested: v,
        limit: u64::from(u32::MAX),
    })
}

/// The grid for `groups` workgroups: 1-D while it fits one dimension, else 2-D (the
/// shaders flatten `wg.y · nwg.x + wg.x`; the surplus groups of the last row exit).
fn grid_1d(ctx: &GpuContext, groups: u64) -> Result<(u32, u32)> {
    let max = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
    let groups = groups.max(1);
    if groups <= max {
        return Ok((groups as u32, 1));
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(Error::DeviceLimit {
            what: "workgroups (x · y grid)",
            requested: groups,
            limit: max * max,
        });
    }
    Ok((max as u32, y as u32))
}

fn check_dim(ctx: &GpuContext, what: &'static str, groups: u64) -> Result<u32> {
    let max = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
    if groups > max {
        return Err(Error::DeviceLimit {
            what,
            requested: groups,
            limit: max,
        });
    }
    Ok(groups.max(1) as u32)
}

fn check_len(bound: &Bound, which: usize, name: &'static str, need: u64) -> Result<()> {
    let have = bound.lens[which];
    if need > have {
        return Err(Error::ShapeMismatch {
            what: name,
            expected: format!("a buffer of at least {need} values"),
            got: format!("{have} values"),
        });
    }
    Ok(())
}

/// Checks A's chunks for rows of `row_len` values: with `rows = Some(r)` (read in stored
/// order), rows `0 .. r` must exist; with `None` (gathered: the index may name any row),
/// every chunk but the last must hold its `rows_per_chunk` rows and the last at least one,
/// so that every row below the total (n, for a resident dataset) is in bounds.
fn check_a_chunks(bound: &Bound, row_len: u64, rows: Option<u64>) -> Result<()> {
    let per = u64::from(bound.chunk_rows);
    let chunks = bound.chunks.clamp(1, MAX_A_CHUNKS);
    if let Some(r) = rows {
        let held = per.saturating_mul(chunks as u64);
        if r > held {
            return Err(Error::ShapeMismatch {
                what: "matmul A",
                expected: format!("{r} rows"),
                got: format!("{chunks} chunks of at most {per} rows"),
            });
        }
    }
    for (c, &slot) in A_CHUNK_SLOTS[..chunks].iter().enumerate() {
        let first = per.saturating_mul(c as u64);
        let need_rows = match rows {
            Some(r) => r.saturating_sub(first).min(per),
            None if c + 1 < chunks => per,
            None => 1,
        };
        let name = if chunks == 1 {
            "matmul A"
        } else {
            "matmul A chunk"
        };
        check_len(bound, slot, name, need_rows.saturating_mul(row_len))?;
    }
    Ok(())
}

fn check_family(bound: &Bound, family: Family) -> Result<()> {
    if bound.family != family {
        return Err(Error::ShapeMismatch {
            what: "bind group",
            expected: format!("{family:?} bindings"),
            got: format!("{:?} bindings", bound.family),
        });
    }
    Ok(())
}

fn dispatch<T: bytemuck::Pod>(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    kernel: Kernel,
    bound: &Bound,
    params: &T,
    (x, y): (u32, u32),
) -> Result<()> {
    dispatch_3d(ctx, pass, ring, kernel, bound, params, (x, y, 1))
}

/// [`dispatch`] over a grid with a z dimension (the segments of a split sum).
fn dispatch_3d<T: bytemuck::Pod>(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    kernel: Kernel,
    bound: &Bound,
    params: &T,
    grid: (u32, u32, u32),
) -> Result<()> {
    let offset = ring.push(params)?;
    pass.set_pipeline(&ctx.pipelines().get(kernel));
    pass.set_bind_group(0, &bound.group, &[offset]);
    pass.dispatch_workgroups(grid.0, grid.1, grid.2);
    Ok(())
}

/// A batch at least this long has its sums over rows — the gradient reductions Xᵀδ and
/// the bias gradients 1ᵀδ — split into segments over many workgroups ([`split`]); a
/// mini-batch's sums are short enough for one workgroup per output block.
pub const SPLIT_MIN_ROWS: usize = 4096;
/// Rows a segment of a split sum holds at least: below this, the second pass's share
/// of the work would outgrow the first's.
pub const SPLIT_MIN_SEGMENT: usize = 256;
/// Workgroups a split sum aims to offer the device (an H100 has 132 SMs, each running
/// several workgroups at once).
pub const SPLIT_TARGET_WORKGROUPS: u64 = 2048;

/// How a sum over rows is cut: `segments` of `seg_len` rows (the last shorter), each
/// summed by its own workgroups into a partial result; a column-sum pass adds the
/// partials in segment order. Depends on the shape alone, so results repeat bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Segments (the z of the grid).
    pub segments: usize,
    /// Rows per segment, a multiple of the matmul's k-tile (16).
    pub seg_len: usize,
}

/// The split of a sum over `rows` rows whose unsplit grid has `groups` workgroups: enough
/// segments for [`SPLIT_TARGET_WORKGROUPS`] in all, none shorter than
/// [`SPLIT_MIN_SEGMENT`] rows or longer than [`MATMUL_K_PER_DISPATCH`] (llvmpipe's loop
/// budget), at most `max_segments` (the scratch buffer's room).
///
/// ```
/// use gradflow::gpu::kernels::{split, Split};
/// // W4's Xᵀδ: p = 64 outputs (2 workgroups), 10⁶ rows.
/// assert_eq!(split(1_000_000, 2, 4096), Split { segments: 1009, seg_len: 992 });
/// // A small batch is one segment.
/// assert_eq!(split(100, 2, 4096).segments, 1);
/// ```
pub fn split(rows: usize, groups: u64, max_segments: usize) -> Split {
    let segments = split_bound(rows, groups, max_segments);
    let seg_len = rows.div_ceil(segments).next_multiple_of(16);
    Split {
        segments: rows.div_ceil(seg_len).max(1),
        seg_len,
    }
}

/// The most segments [`split`] cuts `rows` rows (or fewer) into: what a scratch buffer
/// for batches of up to `rows` rows must hold. [`split`]'s count before rounding the
/// segment length up; it grows with the rows, so a batch shorter than the capacity
/// never needs more room.
///
/// ```
/// use gradflow::gpu::kernels::{split, split_bound};
/// for rows in [1, 300, 4097, 269_272, 1_000_000] {
///     assert!(split(rows, 2, 4096).segments <= split_bound(1_000_000, 2, 4096));
/// }
/// ```
pub fn split_bound(rows: usize, groups: u64, max_segments: usize) -> usize {
    let want = SPLIT_TARGET_WORKGROUPS.div_ceil(groups.max(1)) as usize;
    let most = rows.div_ceil(SPLIT_MIN_SEGMENT).min(max_segments);
    let least = rows.div_ceil(MATMUL_K_PER_DISPATCH);
    want.min(most).max(least).max(1)
}

/// Records `c = op(a) · op(b)` as a split sum over k ([`split`]): `bound` writes the
/// segments' partial products into its C, a scratch buffer of at least `max_segments`
/// × m × n values, and `finish` (bound with [`bind_col_sums`] from that scratch to the
/// real C) adds them in segment order. Two dispatches.
///
/// # Errors
/// As [`matmul`].
#[allow(clippy::too_many_arguments)] // matmul's, plus the second pass and the scratch room
pub fn matmul_split(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    (bound, finish): (&Bound, &Bound),
    layout: Layout,
    (m, k, n): (usize, usize, usize),
    a_rows: Option<u32>,
    max_segments: usize,
) -> Result<()> {
    check_family(bound, Family::Matmul)?;
    let (gx, gy) = matmul_grid(ctx, m, n)?;
    let cut = split(k, u64::from(gx) * u64::from(gy), max_segments);
    let params = matmul_params(bound, layout, (m, k, n), a_rows)?;
    let mn = (m as u64) * (n as u64);
    check_len(bound, 2, "matmul partial C", cut.segments as u64 * mn)?;
    let gz = check_dim(ctx, "matmul segments", cut.segments as u64)?;
    let params = MatmulParams {
        k_begin: 0,
        k_end: params.k,
        seg_len: cut.seg_len as u32,
        c_stride: to_u32("matmul C", mn)?,
        ..params
    };
    dispatch_3d(
        ctx,
        pass,
        ring,
        Kernel::MatmulSplit(layout),
        bound,
        &params,
        (gx, gy, gz),
    )?;
    col_sums(ctx, pass, ring, finish, cut.segments, mn as usize)
}

/// Records the column sums of a `rows × cols` matrix as a split sum over rows
/// ([`split`]): `partial` (bound from x to a scratch of at least `max_segments` × cols
/// values) writes each segment's sums, `finish` (from the scratch to out) adds them in
/// order. Two dispatches.
///
/// # Errors
/// As [`matmul`].
pub fn col_sums_split(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    (partial, finish): (&Bound, &Bound),
    (rows, cols): (usize, usize),
    max_segments: usize,
) -> Result<()> {
    check_family(partial, Family::Reduce)?;
    let cut = split(rows, cols as u64, max_segments);
    let (mut params, len) = elementwise_params(rows, cols)?;
    params.pad[0] = cut.seg_len as u32;
    let (gx, gy) = grid_1d(ctx, cols as u64)?;
    let gz = check_dim(ctx, "col_sums segments", cut.segments as u64)?;
    check_len(partial, 0, "col_sums x", len)?;
    check_len(
        partial,
        1,
        "col_sums partial sums",
        (cut.segments * cols) as u64,
    )?;
    dispatch_3d(
        ctx,
        pass,
        ring,
        Kernel::ColSums,
        partial,
        &params,
        (gx, gy, gz),
    )?;
    col_sums(ctx, pass, ring, finish, cut.segments, cols)
}

/// Rows and columns of C one matmul workgroup computes: 8 × 8 invocations of 4 × 4
/// each (`shaders/matmul.wgsl`).
pub const MATMUL_BLOCK: usize = 32;

/// The most values of k one matmul dispatch sums. llvmpipe stops an invocation's loops
/// after 65,535 iterations in all (Mesa's loop limiter: `gallivm/lp_bld_ir_common.c` sets
/// one `loop_limiter` to `LP_MAX_TGSI_LOOP_ITERATIONS` per shader and every loop's back
/// edge decrements it), and the kernel's loops run about k · 17/16 times: a full batch's Xᵀδ over
/// 10⁶ rows in one dispatch gave wrong sums, with no error, from k ≈ 60,000. A longer
/// product takes several dispatches, each continuing the last one's sums (the same bits
/// as one pass; on a GPU without the limit the split costs a few launches).
pub const MATMUL_K_PER_DISPATCH: usize = 1 << 15;

/// Dispatches (and parameter blocks) [`matmul`] records for a sum over `k`.
pub fn matmul_dispatches(k: usize) -> usize {
    k.div_ceil(MATMUL_K_PER_DISPATCH).max(1)
}

/// The matmul grid for an m × n result: workgroups along n and along m.
fn matmul_grid(ctx: &GpuContext, m: usize, n: usize) -> Result<(u32, u32)> {
    let block = MATMUL_BLOCK as u64;
    let gx = check_dim(ctx, "matmul workgroups along n", (n as u64).div_ceil(block))?;
    let gy = check_dim(ctx, "matmul workgroups along m", (m as u64).div_ceil(block))?;
    Ok((gx, gy))
}

/// A matmul's parameters for the whole sum over k, after checking the shape against
/// the bound buffers.
fn matmul_params(
    bound: &Bound,
    layout: Layout,
    (m, k, n): (usize, usize, usize),
    a_rows: Option<u32>,
) -> Result<MatmulParams> {
    let (m64, k64, n64) = (m as u64, k as u64, n as u64);
    if m == 0 || k == 0 || n == 0 {
        return Err(Error::param(
            "matmul shape",
            format!("{m} × {k} × {n}"),
            "every dimension must be ≥ 1",
        ));
    }
    let (a_stored_rows, b_len) = match layout {
        Layout::NN => (m64, k64 * n64),
        Layout::TN => (k64, k64 * n64),
        Layout::NT => (m64, n64 * k64),
    };
    let a_row_len = if layout == Layout::TN { m64 } else { k64 };
    match a_rows {
        // Gathered rows can be any row of A: every chunk but the last must be whole.
        Some(off) => {
            check_a_chunks(bound, a_row_len, None)?;
            check_len(bound, 3, "matmul row index", u64::from(off) + a_stored_rows)?;
        }
        None => check_a_chunks(bound, a_row_len, Some(a_stored_rows))?,
    }
    check_len(bound, 1, "matmul B", b_len)?;
    check_len(bound, 2, "matmul C", m64 * n64)?;
    Ok(MatmulParams {
        m: to_u32("matmul m", m64)?,
        k: to_u32("matmul k", k64)?,
        n: to_u32("matmul n", n64)?,
        use_idx: u32::from(a_rows.is_some()),
        idx_off: a_rows.unwrap_or(0),
        rows_per_chunk: bound.chunk_rows,
        k_begin: 0,
        k_end: 0,
        seg_len: 0,
        c_stride: 0,
        pad: [0; 2],
    })
}

/// Records `c = op(a) · op(b)` (m × n), the twin of [`crate::cpu::matmul::matmul`].
///
/// `a_rows = Some(off)` reads stored row r of A at `idx[off + r]` (the bound index). A
/// bound in chunks ([`bind_matmul_chunked`]) is read across them; its chunks are checked
/// to hold whole rows of this shape's row length. A sum over more than
/// [`MATMUL_K_PER_DISPATCH`] values of k is [`matmul_dispatches`] dispatches, each taking
/// a block of the parameter ring.
///
/// # Errors
/// [`Error::DeviceLimit`] when the grid exceeds the workgroups per dimension or the ring
/// has too few free blocks;
/// [`Error::ShapeMismatch`] when a bound buffer is too short for the shape.
#[allow(clippy::too_many_arguments)] // the BLAS shape, as the CPU twin
pub fn matmul(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    layout: Layout,
    (m, k, n): (usize, usize, usize),
    a_rows: Option<u32>,
) -> Result<()> {
    check_family(bound, Family::Matmul)?;
    let (gx, gy) = matmul_grid(ctx, m, n)?;
    let base = matmul_params(bound, layout, (m, k, n), a_rows)?;
    // Long sums in several dispatches, each continuing the last one's running sums.
    for k_begin in (0..k).step_by(MATMUL_K_PER_DISPATCH) {
        let params = MatmulParams {
            k_begin: k_begin as u32,
            k_end: (k_begin + MATMUL_K_PER_DISPATCH).min(k) as u32,
            ..base
        };
        dispatch(
            ctx,
            pass,
            ring,
            Kernel::Matmul(layout),
            bound,
            &params,
            (gx, gy),
        )?;
    }
    Ok(())
}

fn elementwise_params(rows: usize, cols: usize) -> Result<(ShapeParams, u64)> {
    let len = (rows as u64) * (cols as u64);
    let params = ShapeParams {
        rows: to_u32("rows", rows as u64)?,
        cols: to_u32("cols", cols as u64)?,
        pad: [0; 2],
    };
    to_u32("elements", len)?;
    Ok((params, len))
}

/// Records `z[i, :] += bias` over rows × cols, the twin of [`crate::cpu::bias::bias_add`].
///
/// # Errors
/// As [`matmul`].
pub fn bias_add(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_family(bound, Family::Bias)?;
    let (params, len) = elementwise_params(rows, cols)?;
    let grid = grid_1d(ctx, len.div_ceil(256))?;
    check_len(bound, 0, "bias_add z", len)?;
    check_len(bound, 1, "bias_add bias", cols as u64)?;
    dispatch(ctx, pass, ring, Kernel::BiasAdd, bound, &params, grid)
}

/// Records `dst = f(src)` over `len` values, the twin of
/// [`crate::cpu::activation::activate`].
///
/// # Errors
/// As [`matmul`].
pub fn activate(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    f: Activation,
    len: usize,
) -> Result<()> {
    activation(ctx, pass, ring, bound, Kernel::Activate(f), len)
}

/// Records `grad *= f′(a)` over `len` values, the twin of
/// [`crate::cpu::activation::activate_backward`] (bound as `src = a`, `dst = grad`).
///
/// # Errors
/// As [`matmul`].
pub fn activate_backward(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    f: Activation,
    len: usize,
) -> Result<()> {
    activation(ctx, pass, ring, bound, Kernel::ActivateBackward(f), len)
}

fn activation(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    kernel: Kernel,
    len: usize,
) -> Result<()> {
    check_family(bound, Family::Activation)?;
    let (params, len) = elementwise_params(len, 1)?;
    let grid = grid_1d(ctx, len.div_ceil(256))?;
    check_len(bound, 0, "activation input", len)?;
    check_len(bound, 1, "activation output", len)?;
    dispatch(ctx, pass, ring, kernel, bound, &params, grid)
}

/// Records `out = softmax(z)` row by row, the twin of
/// [`crate::cpu::softmax::softmax_rows`].
///
/// # Errors
/// As [`matmul`].
pub fn softmax_rows(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_family(bound, Family::Softmax)?;
    let (params, len) = elementwise_params(rows, cols)?;
    let grid = grid_1d(ctx, (rows as u64).div_ceil(64))?;
    check_len(bound, 0, "softmax z", len)?;
    check_len(bound, 1, "softmax out", len)?;
    dispatch(ctx, pass, ring, Kernel::SoftmaxRows, bound, &params, grid)
}

/// Where a fused loss reads its batch's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRows {
    /// Target rows `start .. start + m`, in stored order.
    Range(u32),
    /// Target row of batch row r at `idx[off + r]` (the bound index).
    Gather(u32),
}

/// Records a fused loss over an m × cols output: writes δ into `dz` and the mean loss
/// into `losses[slot]`, the twin of [`crate::cpu::loss`]'s kernels.
///
/// The loss is reduced by one workgroup (fixed order), so `m` is bounded only by time.
///
/// # Errors
/// As [`matmul`]; [`Error::InvalidParameter`] for `m = 0`.
#[allow(clippy::too_many_arguments)] // the CPU twin's arguments plus the loss slot and halting
pub fn loss(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    kind: LossKind,
    rows: TargetRows,
    (m, cols): (usize, usize),
    slot: u32,
    halting: Halting,
) -> Result<()> {
    check_family(bound, Family::Loss)?;
    if m == 0 {
        return Err(Error::param("loss rows", m, "must be ≥ 1"));
    }
    let (_, len) = elementwise_params(m, cols)?;
    let t_cols = if kind == LossKind::Mse {
        cols as u64
    } else {
        1
    };
    let (use_idx, idx_off) = match rows {
        TargetRows::Range(start) => {
            check_len(
                bound,
                1,
                "loss targets",
                (u64::from(start) + m as u64) * t_cols,
            )?;
            if bound.weighted {
                check_len(bound, 6, "loss weights", u64::from(start) + m as u64)?;
            }
            (0, start)
        }
        TargetRows::Gather(off) => {
            check_len(bound, 3, "loss row index", u64::from(off) + m as u64)?;
            (1, off)
        }
    };
    check_len(bound, 0, "loss output z", len)?;
    check_len(bound, 2, "loss gradient dz", len)?;
    check_len(bound, 4, "loss slots", u64::from(slot) + 1)?;
    let params = LossParams {
        m: m as u32,
        cols: cols as u32,
        use_idx,
        idx_off,
        slot,
        halt_mode: match halting {
            Halting::Off => 0,
            Halting::NonFinite => 1,
            Halting::Tolerance(_) => 2,
        },
        tol: if let Halting::Tolerance(t) = halting {
            t
        } else {
            0.0
        },
        use_w: u32::from(bound.weighted),
    };
    if halting != Halting::Off {
        check_len(bound, 5, "loss halt flag", 4)?;
    }
    dispatch(ctx, pass, ring, Kernel::Loss(kind), bound, &params, (1, 1))
}

/// Records `out = 1ᵀ x` over rows × cols, the twin of [`crate::cpu::reduce::col_sums`].
///
/// # Errors
/// As [`matmul`].
pub fn col_sums(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_family(bound, Family::Reduce)?;
    let (params, len) = elementwise_params(rows, cols)?;
    let grid = grid_1d(ctx, cols as u64)?;
    check_len(bound, 0, "col_sums x", len)?;
    check_len(bound, 1, "col_sums out", cols as u64)?;
    dispatch(ctx, pass, ring, Kernel::ColSums, bound, &params, grid)
}

/// Records one optimizer step over `len` values, the twin of
/// [`crate::cpu::update::apply`].
///
/// # Errors
/// As [`matmul`].
pub fn update(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    rule: Rule,
    len: usize,
    s: &Scalars<f32>,
) -> Result<()> {
    check_family(bound, Family::Update)?;
    let grid = grid_1d(ctx, (len as u64).div_ceil(256))?;
    for (i, what) in [
        (0, "update param"),
        (1, "update grad"),
        (3, "update state 1"),
        (4, "update state 2"),
    ] {
        check_len(bound, i, what, len as u64)?;
    }
    let params = UpdateParams {
        len: to_u32("update len", len as u64)?,
        lr: s.lr,
        l2: s.l2,
        l1: s.l1,
        beta1: s.beta1,
        beta2: s.beta2,
        eps: s.eps,
        c1: s.c1,
        c2: s.c2,
        nesterov: u32::from(matches!(rule, Rule::Momentum { nesterov: true })),
        pad: [0; 2],
    };
    dispatch(ctx, pass, ring, Kernel::Update(rule), bound, &params, grid)
}

/// Records the dispatches of `record` into one compute pass, uploads the ring and submits,
/// all under an error scope: the one-shot path of tests and small jobs.
///
/// # Errors
/// What `record` returns; [`Error::Device`] for a wgpu error.
pub fn submit(
    ctx: &GpuContext,
    ring: &mut ParamRing,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>, &mut ParamRing) -> Result<()>,
) -> Result<()> {
    ctx.scoped("recording and submitting kernels", || {
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradflow kernels"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gradflow kernels"),
                timestamp_writes: None,
            });
            record(&mut pass, ring)?;
        }
        ring.upload(ctx);
        ctx.queue().submit([enc.finish()]);
        Ok(())
    })
}
