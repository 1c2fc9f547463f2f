//! The fused losses and their output gradients (`shaders/loss.wgsl`), with the halt flag.

use super::*;

/// Binds a fused loss: output `z`, `targets` (f32 values or u32 labels), the gradient
/// `dz`, the optional gather index of the target rows, the `losses` slots, the optional
/// halt flag (4 × u32, see `shaders/halting.wgsl`) that training uses, and optional row
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

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct LossParams {
    m: u32,
    cols: u32,
    use_idx: u32,
    idx_off: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    use_w: u32,
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
    let (halt_mode, tol) = halting.mode();
    let params = LossParams {
        m: m as u32,
        cols: cols as u32,
        use_idx,
        idx_off,
        slot,
        halt_mode,
        tol,
        use_w: u32::from(bound.weighted),
    };
    if halting != Halting::Off {
        check_len(bound, 5, "loss halt flag", 4)?;
    }
    dispatch(ctx, pass, ring, Kernel::Loss(kind), bound, &params, (1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        type P = LossParams;
        assert_mirrors(
            Family::Loss.source(),
            size_of::<P>(),
            &[
                ("m", offset_of!(P, m), 'u'),
                ("cols", offset_of!(P, cols), 'u'),
                ("use_idx", offset_of!(P, use_idx), 'u'),
                ("idx_off", offset_of!(P, idx_off), 'u'),
                ("slot", offset_of!(P, slot), 'u'),
                ("halt_mode", offset_of!(P, halt_mode), 'u'),
                ("tol", offset_of!(P, tol), 'f'),
                ("use_w", offset_of!(P, use_w), 'u'),
            ],
        );
    }
}
