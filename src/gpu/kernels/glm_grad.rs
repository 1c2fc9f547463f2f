//! A one-output GLM's loss and gradients over a long batch in one pass over its rows
//! (`shaders/glm_grad.wgsl`, per feature chunk) and the ordered sum of its segments
//! (`shaders/glm_finish.wgsl`): two dispatches where the per-op path takes seven, and
//! thousands of workgroups for a full batch where the per-op loss had one.

use super::*;
use crate::gpu::tune::GlmGradVariant;

/// The largest `p` the fused GLM gradient holds in workgroup memory.
pub const GLM_GRAD_MAX_P: usize = 1024;

/// Rows a workgroup of `glm_grad.wgsl` takes per tile (its workgroup size).
const TILE_ROWS: usize = 256;

/// Most segments (over every chunk) the finishing pass adds: one workgroup walks them, and
/// its loops must stay within llvmpipe's budget (five columns per invocation at p = 1024).
pub const GLM_GRAD_MAX_SEGMENTS: usize = 12_000;

/// Loop iterations one invocation may run per dispatch: well below llvmpipe's 65,535
/// (see [`MATMUL_K_PER_DISPATCH`]).
const LOOP_BUDGET: usize = 30_000;

/// Values a segment's block of partial sums spans at `p` features: Xᵀδ (p values), 1ᵀδ
/// and the loss sum, padded to a multiple of 4 so that the finishing pass reads each
/// block four values at a time (the twin of `glm_grad.wgsl`'s `part_cols`).
///
/// ```
/// use gradflow::gpu::kernels::glm_part_cols;
/// assert_eq!(glm_part_cols(64), 68);
/// assert_eq!(glm_part_cols(2), 4);
/// ```
pub fn glm_part_cols(p: usize) -> usize {
    (p + 2).next_multiple_of(4)
}

/// Invocations that share a row in [`GlmGradVariant::Warps`] (`glm_grad_warps.wgsl`'s
/// `SG_LANES`).
const WARP_LANES: usize = crate::gpu::context::MIN_SUBGROUP as usize;

/// The pipeline of the fused GLM gradient in `variant` at `p` features: `Warps` is
/// compiled for the quads a lane holds (p / 4 over its 8 lanes, 1 to 4).
pub(crate) fn glm_grad_kernel(kind: LossKind, variant: GlmGradVariant, p: usize) -> Kernel {
    let quads = match variant {
        GlmGradVariant::Warps => p.div_ceil(4).div_ceil(WARP_LANES).clamp(1, 4) as u8,
        _ => 0,
    };
    Kernel::GlmGrad(kind, variant, quads)
}

/// How the fused GLM gradient cuts a batch: `segments` of `seg_len` rows (the last
/// shorter), one workgroup each per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlmSplit {
    /// Segments (workgroups per chunk dispatch).
    pub segments: usize,
    /// Rows per segment, a multiple of 256.
    pub seg_len: usize,
}

/// Rows a segment may hold at `p` features in `variant`, so that an invocation's loops
/// (per tile: the row's dot product and its share of Xᵀδ; per row for `Rows`) stay
/// within the loop budget: a multiple of 256.
fn max_seg_len(p: usize, variant: GlmGradVariant) -> usize {
    let tiles = match variant {
        // 64 invocations, each a 64th of the rows, two passes over p per row.
        _ if variant.per_lane() => LOOP_BUDGET / (2 * p + 2) * 64 / TILE_ROWS,
        // Per tile of T rows: two loops of 16 passes and one of L lanes; 256 / T tiles
        // per 256 rows.
        GlmGradVariant::Lanes => {
            let lanes = p.div_ceil(4).next_power_of_two();
            let tile = TILE_ROWS.min(TILE_ROWS / lanes * 16);
            LOOP_BUDGET / (TILE_ROWS / tile * (2 * 16 + lanes + 2))
        }
        // Per 128 rows (32 slots × 4 rows ahead): one iteration and four shuffle loops of
        // three; two such iterations per tile.
        GlmGradVariant::Warps => LOOP_BUDGET / (2 * (1 + 4 * 3)),
        _ if p <= TILE_ROWS => LOOP_BUDGET / (p + TILE_ROWS / (TILE_ROWS / p) + 1),
        _ => LOOP_BUDGET / (p + TILE_ROWS * 5),
    };
    tiles.max(1) * TILE_ROWS
}

/// Workgroups the cut aims at: [`SPLIT_TARGET_WORKGROUPS`] to fill a GPU; 64 for the
/// CPU-adapter variant, whose per-segment reduction is the costly part and whose
/// device has a few dozen threads at most.
fn target_segments(variant: GlmGradVariant) -> usize {
    if variant.per_lane() {
        64
    } else {
        SPLIT_TARGET_WORKGROUPS as usize
    }
}

/// The cut of a batch of `rows` rows at `p` features for `variant`: about
/// [`SPLIT_TARGET_WORKGROUPS`] segments of whole 256-row tiles (64 for
/// [`GlmGradVariant::Rows`]), longer segments only where the loop budget allows, more
/// segments where it does not. Depends on the shape and variant alone.
///
/// # Example
/// ```
/// use gradflow::gpu::kernels::glm_grad_split;
/// use gradflow::gpu::tune::GlmGradVariant::{Quads, Rows};
/// let s = glm_grad_split(1_000_000, 64, Quads);
/// assert_eq!((s.seg_len, s.segments), (512, 1954));
/// assert_eq!(glm_grad_split(5_000, 64, Quads).segments, 20); // one tile each
/// assert_eq!(glm_grad_split(1_000_000, 64, Rows).segments, 69);
/// ```
pub fn glm_grad_split(rows: usize, p: usize, variant: GlmGradVariant) -> GlmSplit {
    let p = p.max(1);
    let want = rows
        .div_ceil(target_segments(variant))
        .next_multiple_of(TILE_ROWS);
    let seg_len = want.clamp(TILE_ROWS, max_seg_len(p, variant));
    GlmSplit {
        segments: rows.div_ceil(seg_len).max(1),
        seg_len,
    }
}

/// The most segments [`glm_grad_split`] cuts a batch of up to `cap` rows into: what the
/// partial-sum buffer of an engine with batch capacity `cap` must hold per chunk.
///
/// ```
/// use gradflow::gpu::kernels::{glm_grad_segments_bound, glm_grad_split};
/// use gradflow::gpu::tune::GlmGradVariant::Tiles;
/// let cap = 600_000;
/// let bound = glm_grad_segments_bound(cap, 64, Tiles);
/// assert!((1..=cap).step_by(997).all(|m| glm_grad_split(m, 64, Tiles).segments <= bound));
/// ```
pub fn glm_grad_segments_bound(cap: usize, p: usize, variant: GlmGradVariant) -> usize {
    let unclamped = cap.div_ceil(TILE_ROWS).min(target_segments(variant));
    unclamped
        .max(cap.div_ceil(max_seg_len(p.max(1), variant)))
        .max(1)
}

/// Binds the fused GLM gradient's first pass over one feature chunk: its rows start at
/// stored row `first_row` (the chunk's rows are `x.len() / p`), the targets, the gather
/// index, optional row weights, the parameters `w` and `b`, and the partial sums.
///
/// # Errors
/// As [`bind_matmul`].
#[allow(clippy::too_many_arguments)] // one buffer per binding of the kernel
pub fn bind_glm_grad(
    ctx: &GpuContext,
    ring: &ParamRing,
    (x, first_row): (&wgpu::Buffer, usize),
    targets: &wgpu::Buffer,
    index: Option<&wgpu::Buffer>,
    weights: Option<&wgpu::Buffer>,
    (w, b): (&wgpu::Buffer, &wgpu::Buffer),
    partials: &wgpu::Buffer,
) -> Result<Bound> {
    let mut bound = bind(
        ctx,
        ring,
        Family::GlmGrad,
        &[
            x,
            targets,
            index.unwrap_or(ctx.dummy()),
            weights.unwrap_or(ctx.dummy()),
            w,
            b,
            partials,
        ],
    )?;
    bound.first_row = to_u32("feature chunk's first row", first_row as u64)?;
    bound.weighted = weights.is_some();
    Ok(bound)
}

/// Binds the finishing pass: the partial sums, the gradients `gw` (p values) and `gb`
/// (one), the loss slots and the halt flag.
///
/// # Errors
/// As [`bind_matmul`].
pub fn bind_glm_finish(
    ctx: &GpuContext,
    ring: &ParamRing,
    partials: &wgpu::Buffer,
    (gw, gb): (&wgpu::Buffer, &wgpu::Buffer),
    losses: &wgpu::Buffer,
    halt: Option<&wgpu::Buffer>,
) -> Result<Bound> {
    bind(
        ctx,
        ring,
        Family::GlmFinish,
        &[partials, gw, gb, losses, halt.unwrap_or(ctx.scratch())],
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct GlmGradParams {
    p: u32,
    len: u32,
    use_idx: u32,
    idx_off: u32,
    chunk_first: u32,
    chunk_rows: u32,
    seg_len: u32,
    part_base: u32,
    use_w: u32,
    pos_begin: u32,
    pos_end: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct GlmFinishParams {
    p: u32,
    segments: u32,
    len: u32,
    slot: u32,
    halt_mode: u32,
    tol: f32,
    pad: [u32; 2],
}

/// Records a one-output GLM's loss and gradients over the `m` rows read by `rows`: one
/// dispatch of `glm_grad.wgsl` (in `variant`) per feature chunk (`chunks`, bound in row
/// order, sharing a partial buffer with room for `room` segments per chunk), then `finish`, which
/// writes ∂w, ∂b, the mean loss into `losses[slot]` and the halting decision. The twin
/// of the per-op forward, loss and backward (and of `cpu::fast::glm`).
///
/// # Errors
/// [`Error::InvalidParameter`] for `m = 0`, another loss, a `p` the variant does not
/// fit, or a cut needing more segments than bound; [`Error::ShapeMismatch`]
/// for buffers shorter than the shape needs.
#[allow(clippy::too_many_arguments)] // the loss's launcher's arguments, per chunk
pub fn glm_loss_grad(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    (chunks, finish): (&[&Bound], &Bound),
    (kind, p, variant): (LossKind, usize, GlmGradVariant),
    rows: TargetRows,
    (m, room): (usize, usize),
    slot: u32,
    halting: Halting,
) -> Result<()> {
    check_family(finish, Family::GlmFinish)?;
    if m == 0 {
        return Err(Error::param("fused GLM gradient rows", m, "must be ≥ 1"));
    }
    if kind == LossKind::SoftmaxCce {
        return Err(Error::param(
            "fused GLM gradient loss",
            "softmax_cce",
            "must be MSE or sigmoid + BCE (one output)",
        ));
    }
    if !variant.fits(p) {
        return Err(Error::param(
            "fused GLM gradient features p",
            p,
            "must suit the variant (≤ 1024; Quads: a multiple of 4; Rows: ≤ 64; Warps: ≤ 128)",
        ));
    }
    if !variant.runs_on(ctx.limits()) {
        return Err(Error::param(
            "fused GLM gradient variant",
            format!("{variant:?}"),
            "needs a device with subgroups of at least 8 invocations",
        ));
    }
    let cut = glm_grad_split(m, p, variant);
    // In stored order a chunk boundary may cut a segment in two: one more block a chunk
    // at most, within the chunks' room (`room` ≥ the cut's segments).
    if cut.segments > room || chunks.is_empty() || chunks.len() * room > GLM_GRAD_MAX_SEGMENTS {
        return Err(Error::param(
            "fused GLM gradient segments",
            cut.segments * chunks.len(),
            "must fit the partial buffer the engine was built with",
        ));
    }
    let (use_idx, idx_off) = match rows {
        TargetRows::Range(start) => (0, start),
        TargetRows::Gather(off) => (1, off),
    };
    let values = glm_part_cols(p) as u64;
    // Chunk c's segments follow chunk c − 1's, so the finish reads exactly the blocks this
    // call writes (a shorter batch than the last must not add stale ones). Through a
    // gather every chunk walks every position; rows in stored order take only the
    // positions whose rows the chunk holds (a chunk holding none is skipped).
    let mut blocks = 0;
    for bound in chunks {
        check_family(bound, Family::GlmGrad)?;
        let chunk_rows = bound.lens[0] / p as u64;
        let (lo, hi) = match rows {
            TargetRows::Gather(_) => (0, m as u64),
            TargetRows::Range(start) => {
                let (start, first) = (u64::from(start), u64::from(bound.first_row));
                let lo = first.max(start) - start;
                let hi = (first + chunk_rows)
                    .min(start + m as u64)
                    .saturating_sub(start);
                (lo, hi.max(lo))
            }
        };
        if hi == lo {
            continue;
        }
        let segments = (hi - lo).div_ceil(cut.seg_len as u64) as usize;
        if use_idx == 1 {
            let need = u64::from(idx_off) + m as u64;
            check_len(bound, 2, "fused GLM gradient row index", need)?;
        }
        check_len(bound, 4, "fused GLM gradient weights w", p as u64)?;
        check_len(bound, 5, "fused GLM gradient bias b", 1)?;
        let need = (blocks + segments) as u64 * values;
        check_len(bound, 6, "fused GLM gradient partial sums", need)?;
        let params = GlmGradParams {
            p: p as u32,
            len: to_u32("fused GLM gradient rows", m as u64)?,
            use_idx,
            idx_off,
            chunk_first: bound.first_row,
            chunk_rows: to_u32("feature chunk rows", chunk_rows)?,
            seg_len: cut.seg_len as u32,
            part_base: blocks as u32,
            use_w: u32::from(bound.weighted),
            pos_begin: lo as u32,
            pos_end: hi as u32,
            pad: 0,
        };
        let grid = grid_1d(ctx, segments as u64)?;
        dispatch(
            ctx,
            pass,
            ring,
            glm_grad_kernel(kind, variant, p),
            bound,
            &params,
            grid,
        )?;
        blocks += segments;
    }
    glm_finish(ctx, pass, ring, finish, (p, blocks, m), slot, halting)
}

/// Records the finishing pass alone: adds `segments` blocks of partial sums of a batch of
/// `m` rows at `p` features in segment order, writes ∂w, ∂b, the mean loss into
/// `losses[slot]` and the halting decision. [`glm_loss_grad`] records it after the
/// gradient; the profile times it alone.
///
/// # Errors
/// [`Error::ShapeMismatch`] for buffers shorter than the shape needs.
pub fn glm_finish(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    finish: &Bound,
    (p, segments, m): (usize, usize, usize),
    slot: u32,
    halting: Halting,
) -> Result<()> {
    check_family(finish, Family::GlmFinish)?;
    let values = glm_part_cols(p) as u64;
    check_len(
        finish,
        0,
        "fused GLM gradient partial sums",
        segments as u64 * values,
    )?;
    check_len(finish, 1, "fused GLM gradient ∂w", p as u64)?;
    check_len(finish, 2, "fused GLM gradient ∂b", 1)?;
    check_len(finish, 3, "loss slots", u64::from(slot) + 1)?;
    if halting != Halting::Off {
        check_len(finish, 4, "loss halt flag", 4)?;
    }
    let (halt_mode, tol) = halting.mode();
    let params = GlmFinishParams {
        p: p as u32,
        segments: segments as u32,
        len: m as u32,
        slot,
        halt_mode,
        tol,
        pad: [0; 2],
    };
    dispatch(ctx, pass, ring, Kernel::GlmFinish, finish, &params, (1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shaders() {
        type G = GlmGradParams;
        assert_mirrors(
            Family::GlmGrad.source(),
            size_of::<G>(),
            &[
                ("p", offset_of!(G, p), 'u'),
                ("len", offset_of!(G, len), 'u'),
                ("use_idx", offset_of!(G, use_idx), 'u'),
                ("idx_off", offset_of!(G, idx_off), 'u'),
                ("chunk_first", offset_of!(G, chunk_first), 'u'),
                ("chunk_rows", offset_of!(G, chunk_rows), 'u'),
                ("seg_len", offset_of!(G, seg_len), 'u'),
                ("part_base", offset_of!(G, part_base), 'u'),
                ("use_w", offset_of!(G, use_w), 'u'),
                ("pos_begin", offset_of!(G, pos_begin), 'u'),
                ("pos_end", offset_of!(G, pos_end), 'u'),
                ("pad", offset_of!(G, pad), 'u'),
            ],
        );
        type F = GlmFinishParams;
        assert_mirrors(
            Family::GlmFinish.source(),
            size_of::<F>(),
            &[
                ("p", offset_of!(F, p), 'u'),
                ("segments", offset_of!(F, segments), 'u'),
                ("len", offset_of!(F, len), 'u'),
                ("slot", offset_of!(F, slot), 'u'),
                ("halt_mode", offset_of!(F, halt_mode), 'u'),
                ("tol", offset_of!(F, tol), 'f'),
                ("pad", offset_of!(F, pad), 'u'),
                ("pad", offset_of!(F, pad) + 4, 'u'),
            ],
        );
    }

    #[test]
    fn the_cut_respects_the_loop_budget_and_the_bound() {
        for v in GlmGradVariant::ALL {
            for p in [1, 3, 4, 64, 255, 256, 257, 1024]
                .into_iter()
                .filter(|&p| v.fits(p))
            {
                for rows in [1, 255, 256, 257, 4096, 100_000, 1_000_000, 50_000_000] {
                    let cut = glm_grad_split(rows, p, v);
                    assert_eq!(cut.seg_len % TILE_ROWS, 0);
                    assert!(cut.segments * cut.seg_len >= rows);
                    assert!(cut.seg_len <= max_seg_len(p, v));
                    let bound = glm_grad_segments_bound(rows, p, v);
                    assert!(cut.segments <= bound, "{v:?} {rows} {p}");
                    // Every invocation's loops within the budget, the finishing pass's too.
                    let per_lane = if v.per_lane() {
                        cut.seg_len.div_ceil(64) * (2 * p + 2)
                    } else {
                        cut.seg_len / TILE_ROWS * (p + TILE_ROWS * 5)
                    };
                    assert!(per_lane < 65_535 || !v.per_lane(), "{v:?} {p}");
                }
            }
        }
    }
}
