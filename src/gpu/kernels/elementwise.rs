//! Element-wise kernels: bias broadcast, activations and their derivatives, row-wise
//! softmax (`bias.wgsl`, `activation.wgsl`, `softmax.wgsl`).

use super::*;

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

pub(super) fn activation(
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
