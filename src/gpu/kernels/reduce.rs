//! Column sums (`shaders/reduce.wgsl`), whole or split over row segments.

use super::*;

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
