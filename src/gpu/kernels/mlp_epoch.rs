//! Many SGD steps of a small two-layer MLP in one dispatch (`shaders/mlp_epoch.wgsl`):
//! every parameter and its gradient in one workgroup's memory, the MLP's twin of the
//! many-step GLM kernel.

use super::*;

/// Storage bindings of `mlp_epoch.wgsl`: a device must allow this many per shader stage.
pub const MLP_EPOCH_BINDINGS: u32 = 10;

/// Values of `mlp_epoch.wgsl`'s workgroup memory for parameters, gradients and a tile of
/// rows (its `FLOATS`: 29 KiB, within llvmpipe's 32 KiB with the kernel's scratch).
pub const MLP_EPOCH_FLOATS: usize = 7424;

/// Rows a tile of `mlp_epoch.wgsl` holds at most (its `MAX_TILE`).
const MAX_TILE: usize = 64;

/// The fewest rows a tile may hold: below this the parameters crowd the tile out and the
/// kernel would walk a batch a few rows at a time.
const MIN_TILE: usize = 8;

/// Loop iterations one invocation may run per dispatch: well below llvmpipe's 65,535
/// (see [`GLM_STEPS_PER_DISPATCH`]).
const LOOP_BUDGET: usize = 30_000;

/// The largest batch the many-step MLP kernel takes (one workgroup walks each step's
/// rows: a long batch is better spread over the device by the fused step).
pub const MLP_EPOCH_MAX_BATCH: usize = 1024;

/// Parameters of a network of `p` inputs, `h` hidden units and `k` classes.
fn param_count(p: usize, h: usize, k: usize) -> usize {
    p * h + h + h * k + k
}

/// Rows a tile of the many-step MLP kernel holds for the shape (its parameters and
/// gradients take the rest of the workgroup memory), or `None` where fewer than 8 would
/// fit or there are fewer than two classes.
///
/// ```
/// use gradflow::gpu::kernels::mlp_epoch_tile;
/// assert_eq!(mlp_epoch_tile(16, 32, 4), Some(64)); // 676 parameters
/// assert_eq!(mlp_epoch_tile(64, 32, 10), Some(62));
/// assert_eq!(mlp_epoch_tile(64, 256, 10), None); // W3's 19,210 parameters
/// ```
pub fn mlp_epoch_tile(p: usize, h: usize, k: usize) -> Option<usize> {
    if p == 0 || h == 0 || k < 2 {
        return None;
    }
    let room = MLP_EPOCH_FLOATS.checked_sub(2 * param_count(p, h, k))?;
    let tile = (room / (h + k)).min(MAX_TILE);
    (tile >= MIN_TILE).then_some(tile)
}

/// Loop iterations one invocation runs per step of `m` rows (tiles of `tile` rows): the
/// six phases' entry loops times their inner loops, the loss tree and the update.
fn iterations_per_step(m: usize, (p, h, k): (usize, usize, usize), tile: usize) -> usize {
    let per = |entries: usize| entries.div_ceil(WG_SIZE);
    let per_tile = 1
        + per(tile * h) * (p + 1)
        + per(tile * k) * (h + 1)
        + 3 * k
        + per(h * k + k) * (tile + 1)
        + per(tile * h) * (k + 1)
        + per(p * h + h) * (tile + 1);
    m.div_ceil(tile) * per_tile + 8 + 2 * per(2 * param_count(p, h, k))
}

/// Invocations of the kernel's workgroup.
const WG_SIZE: usize = 256;

/// Steps of `m` rows one dispatch of the many-step MLP kernel runs for the shape, within
/// llvmpipe's loop budget and at most [`GLM_STEPS_PER_DISPATCH`]; `None` where even one
/// step would pass the budget, or the shape or batch does not fit.
///
/// ```
/// use gradflow::gpu::kernels::mlp_epoch_steps_per_dispatch;
/// assert_eq!(mlp_epoch_steps_per_dispatch(256, (4, 8, 3)), Some(16));
/// assert!(mlp_epoch_steps_per_dispatch(256, (64, 32, 10)).is_some_and(|s| s < 16));
/// assert_eq!(mlp_epoch_steps_per_dispatch(256, (64, 256, 10)), None);
/// ```
pub fn mlp_epoch_steps_per_dispatch(m: usize, (p, h, k): (usize, usize, usize)) -> Option<usize> {
    let tile = mlp_epoch_tile(p, h, k)?;
    if m == 0 || m > MLP_EPOCH_MAX_BATCH {
        return None;
    }
    let steps = LOOP_BUDGET / iterations_per_step(m, (p, h, k), tile);
    (steps >= 1).then(|| steps.min(GLM_STEPS_PER_DISPATCH))
}

/// Binds the many-step MLP kernel: the resident features (one buffer), the class labels,
/// the epoch order, the step list (the many-step GLM kernel's [`GlmStep`]s), the
/// parameters W¹, b¹, W², b² (read and written), the loss slots and the halt flag.
///
/// # Errors
/// As [`bind_matmul`].
#[allow(clippy::too_many_arguments)] // one buffer per binding of the kernel
pub fn bind_mlp_epoch(
    ctx: &GpuContext,
    ring: &ParamRing,
    x: &wgpu::Buffer,
    targets: &wgpu::Buffer,
    order: &wgpu::Buffer,
    steps: &wgpu::Buffer,
    params: [&wgpu::Buffer; 4],
    losses: &wgpu::Buffer,
    halt: &wgpu::Buffer,
) -> Result<Bound> {
    let [w1, b1, w2, b2] = params;
    bind(
        ctx,
        ring,
        Family::MlpEpoch,
        &[x, targets, order, steps, w1, b1, w2, b2, losses, halt],
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct MlpEpochParams {
    p: u32,
    h: u32,
    k: u32,
    tile: u32,
    first: u32,
    n_steps: u32,
    halt_mode: u32,
    tol: f32,
}

/// Records steps `first .. first + n_steps` of the bound step list as one dispatch of one
/// workgroup, for a network of `p` inputs, `h` hidden units (activation `act`) and `k`
/// classes: the twin of the engine's MLP steps with plain SGD
/// (`cpu::engine`'s, step by step).
///
/// # Errors
/// [`Error::InvalidParameter`] for a shape [`mlp_epoch_tile`] does not hold;
/// [`Error::ShapeMismatch`] for a step list or parameters shorter than asked.
#[allow(clippy::too_many_arguments)] // the launcher's context, as every launcher's
pub fn mlp_epoch(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    (p, h, k, act): (usize, usize, usize, crate::program::Activation),
    (first, n_steps): (usize, usize),
    halting: Halting,
) -> Result<()> {
    check_family(bound, Family::MlpEpoch)?;
    let Some(tile) = mlp_epoch_tile(p, h, k) else {
        return Err(Error::param(
            "many-step MLP shape",
            format!("{p}-{h}-{k}"),
            "must hold its parameters twice and 8 rows in 7,424 values of workgroup memory, k ≥ 2",
        ));
    };
    check_len(
        bound,
        3,
        "many-step MLP step list",
        4 * (first + n_steps) as u64,
    )?;
    check_len(bound, 4, "many-step MLP W¹", (p * h) as u64)?;
    check_len(bound, 5, "many-step MLP b¹", h as u64)?;
    check_len(bound, 6, "many-step MLP W²", (h * k) as u64)?;
    check_len(bound, 7, "many-step MLP b²", k as u64)?;
    let (halt_mode, tol) = halting.mode();
    let params = MlpEpochParams {
        p: p as u32,
        h: h as u32,
        k: k as u32,
        tile: tile as u32,
        first: to_u32("many-step MLP first step", first as u64)?,
        n_steps: to_u32("many-step MLP steps", n_steps as u64)?,
        halt_mode,
        tol,
    };
    dispatch(
        ctx,
        pass,
        ring,
        Kernel::MlpEpoch(act),
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
        type P = MlpEpochParams;
        assert_mirrors(
            Family::MlpEpoch.source(),
            size_of::<P>(),
            &[
                ("p", offset_of!(P, p), 'u'),
                ("h", offset_of!(P, h), 'u'),
                ("k", offset_of!(P, k), 'u'),
                ("tile", offset_of!(P, tile), 'u'),
                ("first", offset_of!(P, first), 'u'),
                ("n_steps", offset_of!(P, n_steps), 'u'),
                ("halt_mode", offset_of!(P, halt_mode), 'u'),
                ("tol", offset_of!(P, tol), 'f'),
            ],
        );
    }

    #[test]
    fn the_constants_mirror_the_shader() {
        let src = Family::MlpEpoch.source();
        assert!(src.contains(&format!("const FLOATS: u32 = {MLP_EPOCH_FLOATS}u;")));
        assert!(src.contains(&format!("const MAX_TILE: u32 = {MAX_TILE}u;")));
        assert!(src.contains(&format!("const WG: u32 = {WG_SIZE}u;")));
    }

    #[test]
    fn every_fitting_shape_stays_within_memory_and_the_loop_budget() {
        for p in [1, 3, 16, 64, 100] {
            for h in [1, 8, 32, 50] {
                for k in [2, 3, 10] {
                    let Some(tile) = mlp_epoch_tile(p, h, k) else {
                        assert!(2 * param_count(p, h, k) + MIN_TILE * (h + k) > MLP_EPOCH_FLOATS);
                        continue;
                    };
                    assert!(2 * param_count(p, h, k) + tile * (h + k) <= MLP_EPOCH_FLOATS);
                    for m in [1, 7, 256, 1024] {
                        if let Some(s) = mlp_epoch_steps_per_dispatch(m, (p, h, k)) {
                            let its = s * iterations_per_step(m, (p, h, k), tile);
                            assert!(its <= LOOP_BUDGET, "{p}-{h}-{k} at {m}: {its}");
                        }
                    }
                }
            }
        }
    }
}
