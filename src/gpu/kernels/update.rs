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

/// Parameter tensors one [`update_all`] dispatch updates at most.
pub const UPDATE_ALL_TENSORS: usize = 4;

/// Storage bindings [`update_all`] needs: a device with fewer runs [`update`] per tensor.
pub const UPDATE_ALL_BINDINGS: u32 = 17;

/// One tensor of an [`update_all`]: the parameter, its gradient and its two state
/// buffers (as for [`bind_update`]).
pub type UpdateTensor<'a> = (&'a wgpu::Buffer, &'a wgpu::Buffer, [&'a wgpu::Buffer; 2]);

/// Binds the updates of up to [`UPDATE_ALL_TENSORS`] tensors in one dispatch, skipped
/// once the optional `halt` flag is set; the slots past `tensors` are bound to
/// stand-ins never read.
///
/// # Errors
/// [`Error::ShapeMismatch`] for no tensors or more than four; as [`bind_matmul`].
pub fn bind_update_all(
    ctx: &GpuContext,
    ring: &ParamRing,
    tensors: &[UpdateTensor<'_>],
    halt: Option<&wgpu::Buffer>,
) -> Result<Bound> {
    check_tensor_count(tensors.len())?;
    // Absent tensors: a read-write stand-in may fill many slots (one usage), the
    // read-only slots another buffer (no buffer is both in one dispatch).
    let (rw, ro) = (ctx.scratch(), ctx.dummy());
    let at = |t: usize| tensors.get(t);
    let mut bufs: Vec<&wgpu::Buffer> = (0..4).map(|t| at(t).map_or(rw, |x| x.0)).collect();
    bufs.extend((0..4).map(|t| at(t).map_or(ro, |x| x.1)));
    bufs.push(halt.unwrap_or(ro));
    bufs.extend((0..4).map(|t| at(t).map_or(rw, |x| x.2[0])));
    bufs.extend((0..4).map(|t| at(t).map_or(rw, |x| x.2[1])));
    bind(ctx, ring, Family::UpdateAll, &bufs)
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

/// One [`update_all`] dispatch takes 1 to [`UPDATE_ALL_TENSORS`] tensors.
fn check_tensor_count(n: usize) -> Result<()> {
    if n == 0 || n > UPDATE_ALL_TENSORS {
        return Err(Error::ShapeMismatch {
            what: "tensors of one update dispatch",
            expected: format!("1 to {UPDATE_ALL_TENSORS}"),
            got: n.to_string(),
        });
    }
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct UpdateAllParams {
    lens: [u32; 4],
    starts: [u32; 3],
    bias: u32,
    nesterov: u32,
    pad: [u32; 3],
    weights: [f32; 8],
    biases: [f32; 8],
}

fn scalars8(s: &Scalars<f32>) -> [f32; 8] {
    [s.lr, s.l2, s.l1, s.beta1, s.beta2, s.eps, s.c1, s.c2]
}

/// Records one optimizer step over each bound tensor in one dispatch: `tensors` gives
/// each one's length and whether it is a bias (updated with `scalars.1`, the weights with
/// `scalars.0`); the same values as [`update`] on each.
///
/// # Errors
/// As [`matmul`]; [`Error::ShapeMismatch`] when `tensors` does not match the binding.
pub fn update_all(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    rule: Rule,
    tensors: &[(usize, bool)],
    scalars: (&Scalars<f32>, &Scalars<f32>),
) -> Result<()> {
    check_family(bound, Family::UpdateAll)?;
    check_tensor_count(tensors.len())?;
    let mut lens = [0u32; 4];
    // Block starts; tensors past the count start past every block (never chosen).
    let mut starts = [u32::MAX; 3];
    let (mut blocks, mut bias) = (0u64, 0u32);
    for (t, &(len, is_bias)) in tensors.iter().enumerate() {
        let n = len as u64;
        for (slot, what) in [
            (t, "update param"),
            (4 + t, "update grad"),
            (9 + t, "update state 1"),
            (13 + t, "update state 2"),
        ] {
            check_len(bound, slot, what, n)?;
        }
        lens[t] = to_u32("update len", n)?;
        if t > 0 {
            starts[t - 1] = to_u32("update blocks", blocks)?;
        }
        blocks += n.div_ceil(256);
        bias |= u32::from(is_bias) << t;
    }
    let grid = grid_1d(ctx, blocks)?;
    let params = UpdateAllParams {
        lens,
        starts,
        bias,
        nesterov: u32::from(matches!(rule, Rule::Momentum { nesterov: true })),
        pad: [0; 3],
        weights: scalars8(scalars.0),
        biases: scalars8(scalars.1),
    };
    dispatch(
        ctx,
        pass,
        ring,
        Kernel::UpdateAll(rule),
        bound,
        &params,
        grid,
    )
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
            concat!(
                include_str!("../../../shaders/update_rules.wgsl"),
                include_str!("../../../shaders/update.wgsl")
            ),
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

    #[test]
    fn all_params_mirror_the_shader() {
        type P = UpdateAllParams;
        let u = |name: &'static str, offset: usize| (name, offset, 'u');
        let f = |name: &'static str, offset: usize| (name, offset, 'f');
        let (l, s, w, b) = (
            offset_of!(P, lens),
            offset_of!(P, starts),
            offset_of!(P, weights),
            offset_of!(P, biases),
        );
        let mut fields = vec![
            u("len0", l),
            u("len1", l + 4),
            u("len2", l + 8),
            u("len3", l + 12),
            u("start1", s),
            u("start2", s + 4),
            u("start3", s + 8),
            u("bias", offset_of!(P, bias)),
            u("nesterov", offset_of!(P, nesterov)),
        ];
        fields.extend((0..3).map(|i| u("pad", offset_of!(P, pad) + 4 * i)));
        let weights = [
            "w_lr", "w_l2", "w_l1", "w_beta1", "w_beta2", "w_eps", "w_c1", "w_c2",
        ];
        let biases = [
            "b_lr", "b_l2", "b_l1", "b_beta1", "b_beta2", "b_eps", "b_c1", "b_c2",
        ];
        fields.extend(weights.iter().enumerate().map(|(i, n)| f(n, w + 4 * i)));
        fields.extend(biases.iter().enumerate().map(|(i, n)| f(n, b + 4 * i)));
        assert_mirrors(
            concat!(
                include_str!("../../../shaders/update_rules.wgsl"),
                include_str!("../../../shaders/update_all.wgsl")
            ),
            size_of::<P>(),
            &fields,
        );
        assert!(size_of::<P>() as u64 <= PARAM_BYTES);
        assert_eq!(
            Family::UpdateAll.storage().len() as u32,
            UPDATE_ALL_BINDINGS,
            "the engine's binding check against the shader's bindings"
        );
    }
}
