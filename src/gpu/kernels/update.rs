//! The optimizers' updates (`shaders/update.wgsl`).

use super::*;

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
pub(super) struct UpdateParams {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        type P = UpdateParams;
        let f = |name: &'static str, offset: usize| (name, offset, 'f');
        assert_mirrors(
            include_str!("../../../shaders/update.wgsl"),
            size_of::<P>(),
            &[
                ("len", offset_of!(P, len), 'u'),
                f("lr", offset_of!(P, lr)),
                f("l2", offset_of!(P, l2)),
                f("l1", offset_of!(P, l1)),
                f("beta1", offset_of!(P, beta1)),
                f("beta2", offset_of!(P, beta2)),
                f("eps", offset_of!(P, eps)),
                f("c1", offset_of!(P, c1)),
                f("c2", offset_of!(P, c2)),
                ("nesterov", offset_of!(P, nesterov), 'u'),
                ("pad", offset_of!(P, pad), 'u'),
                ("pad", offset_of!(P, pad) + 4, 'u'),
            ],
        );
    }
}
