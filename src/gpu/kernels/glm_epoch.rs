//! Many SGD steps of a one-output GLM in one dispatch (`shaders/glm_epoch.wgsl`).

use super::*;

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
pub(super) struct GlmEpochParams {
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
/// workgroup (`kind`: MSE or sigmoid + BCE), in the variant the adapter's tuning chose
/// for `p` ([`Tuning::glm_epoch_for`](crate::gpu::tune::Tuning::glm_epoch_for)).
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
    let (halt_mode, tol) = halting.mode();
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
        Kernel::GlmEpoch(
            kind,
            bound.chunks > 1,
            ctx.pipelines().tuning().glm_epoch_for(p),
        ),
        bound,
        &params,
        (1, 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        type P = GlmEpochParams;
        assert_mirrors(
            Family::GlmEpoch.source(),
            size_of::<P>(),
            &[
                ("p", offset_of!(P, p), 'u'),
                ("chunk_rows", offset_of!(P, chunk_rows), 'u'),
                ("first", offset_of!(P, first), 'u'),
                ("n_steps", offset_of!(P, n_steps), 'u'),
                ("halt_mode", offset_of!(P, halt_mode), 'u'),
                ("tol", offset_of!(P, tol), 'f'),
            ],
        );
    }
}
