//! A two-layer MLP's step before its update in two dispatches (`shaders/mlp_rows.wgsl`,
//! then `shaders/mlp_grads.wgsl`), where the per-op path takes a dozen: the rows' forward,
//! loss and δ's with the rows in workgroup memory, then every sum over the rows (the four
//! gradients and the loss) in one dispatch.

use super::*;

/// Storage bindings of the rows pass (`mlp_rows.wgsl`): a device must allow this many per
/// shader stage.
pub const MLP_ROWS_BINDINGS: u32 = 13;

/// Rows a workgroup of `mlp_rows.wgsl` takes at most (its register arrays).
const MAX_ROWS: usize = 4;
/// Workgroup memory of `mlp_rows.wgsl`, in values: the rows (R · p), the hidden
/// activations (R · h), the logits and δ² (R · k).
const ROW_VALUES: usize = 1024;
const HIDDEN_VALUES: usize = 2048;
const LOGIT_VALUES: usize = 256;
/// Invocations of a workgroup (both shaders).
const WG: usize = 256;
/// Items (four rows of a gradient by one column) of a `mlp_grads.wgsl` workgroup.
const GRAD_ITEMS: usize = 32;

/// The largest batch the fused MLP step takes: an invocation of the gradient pass sums an
/// eighth of the rows in one loop, kept well inside llvmpipe's loop budget (longer
/// batches, the full-batch solver's, keep the per-op path and its split sums).
pub const MLP_STEP_MAX_BATCH: usize = 8192;

/// Workgroups the rows pass aims at for a batch: enough to spread over a GPU's compute
/// units without reading W¹ once per row. On the H200 at W3's batch of 256 (`gradflow
/// bench --kernels`, two runs): 1 / 2 / 4 rows a workgroup took 13.3 / 11.8 / 15.4 µs,
/// then 14.3 / 13.5 / 13.3 — within the noise of each other; 2 (this target) was never
/// the slowest.
const ROW_GROUPS_TARGET: usize = 128;

/// Whether the fused MLP step holds a model of `p` inputs, `h` hidden units and `k`
/// classes (one row of each in `mlp_rows.wgsl`'s workgroup memory).
///
/// ```
/// use gradflow::gpu::kernels::mlp_step_fits;
/// assert!(mlp_step_fits(64, 256, 10));
/// assert!(mlp_step_fits(784, 2048, 256));
/// assert!(!mlp_step_fits(1025, 256, 10));
/// ```
pub fn mlp_step_fits(p: usize, h: usize, k: usize) -> bool {
    (1..=ROW_VALUES).contains(&p)
        && (1..=HIDDEN_VALUES).contains(&h)
        && (2..=LOGIT_VALUES).contains(&k)
}

/// Rows per workgroup of the rows pass for a batch of `m` rows: about
/// 128 workgroups, within the workgroup memory and at most 4 rows.
///
/// ```
/// use gradflow::gpu::kernels::mlp_rows_per_group;
/// assert_eq!(mlp_rows_per_group(256, (64, 256, 10)), 2);
/// assert_eq!(mlp_rows_per_group(1024, (64, 256, 10)), 4);
/// assert_eq!(mlp_rows_per_group(8192, (784, 256, 10)), 1); // 784 inputs fill the room
/// assert_eq!(mlp_rows_per_group(5, (3, 7, 2)), 1);
/// ```
pub fn mlp_rows_per_group(m: usize, (p, h, k): (usize, usize, usize)) -> usize {
    m.div_ceil(ROW_GROUPS_TARGET)
        .clamp(1, rows_room(p, h, k).max(1))
}

/// Rows one workgroup's memory holds for the shape, at most [`MAX_ROWS`].
fn rows_room(p: usize, h: usize, k: usize) -> usize {
    (ROW_VALUES / p.max(1))
        .min(HIDDEN_VALUES / h.max(1))
        .min(LOGIT_VALUES / k.max(1))
        .min(MAX_ROWS)
}

/// Lanes per logit in the rows pass: the largest power of two with lanes · R · k ≤ 256.
fn logit_lanes(rows: usize, k: usize) -> usize {
    let most = WG / (rows * k).max(1);
    if most == 0 { 1 } else { 1 << most.ilog2() }
}

/// Binds the rows pass over one view of the data: the features `x` (one buffer), the
/// targets, the gather index, optional row weights, the parameters `[W¹, b¹, W², b²]`,
/// and what it writes: the gathered rows `xb`, the activations `a`, `δ²`, `δ¹` and the
/// loss parts.
///
/// # Errors
/// As [`bind_matmul`].
#[allow(clippy::too_many_arguments)] // one buffer per binding of the kernel
pub fn bind_mlp_rows(
    ctx: &GpuContext,
    ring: &ParamRing,
    (x, targets, index, weights): (
        &wgpu::Buffer,
        &wgpu::Buffer,
        Option<&wgpu::Buffer>,
        Option<&wgpu::Buffer>,
    ),
    params: [&wgpu::Buffer; 4],
    [xb, a, dz2, da1, loss_parts]: [&wgpu::Buffer; 5],
) -> Result<Bound> {
    let [w1, b1, w2, b2] = params;
    let mut bound = bind(
        ctx,
        ring,
        Family::MlpRows,
        &[
            x,
            targets,
            index.unwrap_or(ctx.dummy()),
            weights.unwrap_or(ctx.dummy()),
            w1,
            b1,
            w2,
            b2,
            xb,
            a,
            dz2,
            da1,
            loss_parts,
        ],
    )?;
    bound.weighted = weights.is_some();
    Ok(bound)
}

/// Binds the sums pass: what the rows pass wrote (`xb`, `δ¹`, `a`, `δ²`, the loss
/// parts), the gradients `[∂W¹, ∂b¹, ∂W², ∂b²]`, the loss slots and the halt flag.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_mlp_grads(
    ctx: &GpuContext,
    ring: &ParamRing,
    [xb, da1, a, dz2, loss_parts]: [&wgpu::Buffer; 5],
    [gw1, gb1, gw2, gb2]: [&wgpu::Buffer; 4],
    losses: &wgpu::Buffer,
    halt: Option<&wgpu::Buffer>,
) -> Result<Bound> {
    bind(
        ctx,
        ring,
        Family::MlpGrads,
        &[
            xb,
            da1,
            a,
            dz2,
            loss_parts,
            gw1,
            gb1,
            gw2,
            gb2,
            losses,
            halt.unwrap_or(ctx.scratch()),
        ],
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct MlpRowsParams {
    p: u32,
    h: u32,
    k: u32,
    m: u32,
    rows: u32,
    lanes: u32,
    use_idx: u32,
    idx_off: u32,
    use_w: u32,
    pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct MlpGradsParams {
    p: u32,
    h: u32,
    k: u32,
    m: u32,
    groups1: u32,
    groups2: u32,
    parts: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    pad: [u32; 2],
}

/// Workgroups of `mlp_grads.wgsl` for [A 1]ᵀ B with `ka` columns of A and `n` of B.
fn grad_groups(ka: usize, n: usize) -> usize {
    ((ka + 1).div_ceil(4) * n).div_ceil(GRAD_ITEMS)
}

/// Records a two-layer MLP's loss and gradients over the `m` rows read by `rows`, with
/// `p` inputs, `h` hidden units of activation `f` and `k` classes: the rows pass
/// ([`mlp_rows`]) and the sums pass ([`mlp_grads`]), which writes the four gradients,
/// the mean loss into `losses[slot]` and the halting decision. The twin of the
/// program's per-op forward, loss and backward.
///
/// # Errors
/// [`Error::InvalidParameter`] for `m = 0` or above [`MLP_STEP_MAX_BATCH`], or a shape
/// outside [`mlp_step_fits`]; [`Error::ShapeMismatch`] for buffers shorter than the
/// shape needs.
#[allow(clippy::too_many_arguments)] // the loss's launcher's arguments
pub fn mlp_loss_grad(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    (rows_bound, grads_bound): (&Bound, &Bound),
    shape: (usize, usize, usize, Activation),
    rows: TargetRows,
    m: usize,
    slot: u32,
    halting: Halting,
) -> Result<()> {
    mlp_rows(ctx, pass, ring, rows_bound, shape, rows, m)?;
    let (p, h, k, _) = shape;
    mlp_grads(ctx, pass, ring, grads_bound, (p, h, k), m, slot, halting)
}

fn check_step(m: usize, (p, h, k): (usize, usize, usize)) -> Result<()> {
    if m == 0 || m > MLP_STEP_MAX_BATCH {
        return Err(Error::param(
            "fused MLP step rows",
            m,
            "must be between 1 and MLP_STEP_MAX_BATCH (8192)",
        ));
    }
    if !mlp_step_fits(p, h, k) {
        return Err(Error::param(
            "fused MLP step shape (p, h, k)",
            format!("({p}, {h}, {k})"),
            "must have p ≤ 1024, h ≤ 2048 and 2 ≤ k ≤ 256 (mlp_step_fits)",
        ));
    }
    Ok(())
}

/// Records the rows pass of [`mlp_loss_grad`] alone (`bound` from [`bind_mlp_rows`]):
/// every row's forward, loss term, δ² and δ¹.
///
/// # Errors
/// As [`mlp_loss_grad`].
#[allow(clippy::too_many_arguments)] // the loss's launcher's arguments
pub fn mlp_rows(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    (p, h, k, f): (usize, usize, usize, Activation),
    rows: TargetRows,
    m: usize,
) -> Result<()> {
    let r = mlp_rows_per_group(m, (p, h, k));
    mlp_rows_by(ctx, pass, ring, bound, (p, h, k, f), rows, (m, r))
}

/// [`mlp_rows`] with `r` rows a workgroup instead of [`mlp_rows_per_group`]'s (the
/// kernel profile times the choices; a sums pass after it must see the same `r`).
///
/// # Errors
/// As [`mlp_rows`]; [`Error::InvalidParameter`] for an `r` the workgroup memory cannot
/// hold.
#[allow(clippy::too_many_arguments)] // the loss's launcher's arguments
pub fn mlp_rows_by(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    (p, h, k, f): (usize, usize, usize, Activation),
    rows: TargetRows,
    (m, r): (usize, usize),
) -> Result<()> {
    check_family(bound, Family::MlpRows)?;
    if r == 0 || r > rows_room(p, h, k) {
        return Err(Error::param(
            "fused MLP step rows a workgroup",
            r,
            "must be between 1 and what the workgroup memory holds (mlp_rows_per_group)",
        ));
    }
    check_step(m, (p, h, k))?;
    let (use_idx, idx_off) = match rows {
        TargetRows::Range(start) => {
            let end = u64::from(start) + m as u64;
            check_len(bound, 0, "fused MLP step features", end * p as u64)?;
            check_len(bound, 1, "fused MLP step labels", end)?;
            if bound.weighted {
                check_len(bound, 3, "fused MLP step row weights", end)?;
            }
            (0, start)
        }
        TargetRows::Gather(off) => {
            check_len(
                bound,
                2,
                "fused MLP step row index",
                u64::from(off) + m as u64,
            )?;
            (1, off)
        }
    };
    let (mu, pu, hu, ku) = (m as u64, p as u64, h as u64, k as u64);
    check_len(bound, 4, "fused MLP step W1", pu * hu)?;
    check_len(bound, 5, "fused MLP step b1", hu)?;
    check_len(bound, 6, "fused MLP step W2", hu * ku)?;
    check_len(bound, 7, "fused MLP step b2", ku)?;
    check_len(bound, 8, "fused MLP step gathered rows", mu * pu)?;
    check_len(bound, 9, "fused MLP step activations", mu * hu)?;
    check_len(bound, 10, "fused MLP step output gradient", mu * ku)?;
    check_len(bound, 11, "fused MLP step hidden gradient", mu * hu)?;
    let parts = m.div_ceil(r);
    check_len(bound, 12, "fused MLP step loss parts", parts as u64)?;
    let params = MlpRowsParams {
        p: p as u32,
        h: h as u32,
        k: k as u32,
        m: m as u32,
        rows: r as u32,
        lanes: logit_lanes(r, k) as u32,
        use_idx,
        idx_off,
        use_w: u32::from(bound.weighted),
        pad: [0; 3],
    };
    dispatch(
        ctx,
        pass,
        ring,
        Kernel::MlpRows(f),
        bound,
        &params,
        (parts as u32, 1),
    )
}

/// Records the sums pass of [`mlp_loss_grad`] alone (`bound` from [`bind_mlp_grads`]):
/// the four gradients, the loss and the halting decision from what the rows pass wrote
/// for the same `m` and shape.
///
/// # Errors
/// As [`mlp_loss_grad`]; [`Error::DeviceLimit`] for more workgroups than a dispatch
/// allows.
#[allow(clippy::too_many_arguments)] // the loss's launcher's arguments
pub fn mlp_grads(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    (p, h, k): (usize, usize, usize),
    m: usize,
    slot: u32,
    halting: Halting,
) -> Result<()> {
    check_family(bound, Family::MlpGrads)?;
    check_step(m, (p, h, k))?;
    let (mu, pu, hu, ku) = (m as u64, p as u64, h as u64, k as u64);
    let parts = m.div_ceil(mlp_rows_per_group(m, (p, h, k)));
    check_len(bound, 0, "fused MLP step gathered rows", mu * pu)?;
    check_len(bound, 1, "fused MLP step hidden gradient", mu * hu)?;
    check_len(bound, 2, "fused MLP step activations", mu * hu)?;
    check_len(bound, 3, "fused MLP step output gradient", mu * ku)?;
    check_len(bound, 4, "fused MLP step loss parts", parts as u64)?;
    check_len(bound, 5, "fused MLP step W1 gradient", pu * hu)?;
    check_len(bound, 6, "fused MLP step b1 gradient", hu)?;
    check_len(bound, 7, "fused MLP step W2 gradient", hu * ku)?;
    check_len(bound, 8, "fused MLP step b2 gradient", ku)?;
    check_len(bound, 9, "loss slots", u64::from(slot) + 1)?;
    if halting != Halting::Off {
        check_len(bound, 10, "fused MLP step halt flag", 4)?;
    }
    let (groups1, groups2) = (grad_groups(p, h), grad_groups(h, k));
    let (halt_mode, tol) = halting.mode();
    let params = MlpGradsParams {
        p: p as u32,
        h: h as u32,
        k: k as u32,
        m: m as u32,
        groups1: groups1 as u32,
        groups2: groups2 as u32,
        parts: parts as u32,
        slot,
        halt_mode,
        tol,
        pad: [0; 2],
    };
    let groups = to_u32("fused MLP step workgroups", (groups1 + groups2 + 1) as u64)?;
    if groups > ctx.limits().max_compute_workgroups_per_dimension {
        return Err(Error::DeviceLimit {
            what: "fused MLP step workgroups",
            requested: u64::from(groups),
            limit: u64::from(ctx.limits().max_compute_workgroups_per_dimension),
        });
    }
    dispatch(
        ctx,
        pass,
        ring,
        Kernel::MlpGrads,
        bound,
        &params,
        (groups, 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shaders() {
        type R = MlpRowsParams;
        assert_mirrors(
            Family::MlpRows.source(),
            size_of::<R>(),
            &[
                ("p", offset_of!(R, p), 'u'),
                ("h", offset_of!(R, h), 'u'),
                ("k", offset_of!(R, k), 'u'),
                ("m", offset_of!(R, m), 'u'),
                ("rows", offset_of!(R, rows), 'u'),
                ("lanes", offset_of!(R, lanes), 'u'),
                ("use_idx", offset_of!(R, use_idx), 'u'),
                ("idx_off", offset_of!(R, idx_off), 'u'),
                ("use_w", offset_of!(R, use_w), 'u'),
                ("pad", offset_of!(R, pad), 'u'),
                ("pad", offset_of!(R, pad) + 4, 'u'),
                ("pad", offset_of!(R, pad) + 8, 'u'),
            ],
        );
        type G = MlpGradsParams;
        assert_mirrors(
            Family::MlpGrads.source(),
            size_of::<G>(),
            &[
                ("p", offset_of!(G, p), 'u'),
                ("h", offset_of!(G, h), 'u'),
                ("k", offset_of!(G, k), 'u'),
                ("m", offset_of!(G, m), 'u'),
                ("groups1", offset_of!(G, groups1), 'u'),
                ("groups2", offset_of!(G, groups2), 'u'),
                ("parts", offset_of!(G, parts), 'u'),
                ("slot", offset_of!(G, slot), 'u'),
                ("halt_mode", offset_of!(G, halt_mode), 'u'),
                ("tol", offset_of!(G, tol), 'f'),
                ("pad", offset_of!(G, pad), 'u'),
                ("pad", offset_of!(G, pad) + 4, 'u'),
            ],
        );
    }

    #[test]
    fn the_rows_pass_fits_its_workgroup_memory() {
        for (p, h, k) in [(1, 1, 2), (64, 256, 10), (784, 2048, 256), (1024, 1, 2)] {
            for m in [1, 7, 256, 4096, MLP_STEP_MAX_BATCH] {
                let r = mlp_rows_per_group(m, (p, h, k));
                assert!((1..=MAX_ROWS).contains(&r));
                assert!(r * p <= ROW_VALUES && r * h <= HIDDEN_VALUES && r * k <= LOGIT_VALUES);
                let lanes = logit_lanes(r, k);
                assert!(lanes.is_power_of_two() && lanes * r * k <= WG, "{r} {k}");
            }
        }
    }
}
