//! Matrix products (`shaders/matmul.wgsl`): NN, TN and NT, gathered rows, features over
//! chunks, long sums over several dispatches, and split sums over row segments.

use super::*;
use crate::gpu::tune::MatmulBlock;
use crate::program::Activation;

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
    bind_matmul_epilogue(ctx, ring, (a, rows_per_chunk), a_rows, b, c, None)
}

/// As [`bind_matmul_chunked`], with the operand of a fused [`Epilogue`]: the bias (n
/// values) or the activation's forward output (m × n), checked at each launch.
///
/// # Errors
/// As [`bind_matmul_chunked`].
pub fn bind_matmul_epilogue(
    ctx: &GpuContext,
    ring: &ParamRing,
    (a, rows_per_chunk): (&[&wgpu::Buffer], usize),
    a_rows: Option<&wgpu::Buffer>,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
    operand: Option<&wgpu::Buffer>,
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
            operand.unwrap_or(ctx.dummy()),
        ],
    )?;
    bound.chunk_rows = u32::try_from(rows_per_chunk).unwrap_or(u32::MAX);
    bound.chunks = a.len();
    Ok(bound)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct MatmulParams {
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
    epi: u32,
    /// The 8 × 8 block: the grid's x along C's rows (thin C), not its columns.
    rows_x: u32,
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
/// `edge`: the rows (and columns) of C one workgroup computes (8 invocations × the block).
pub(super) fn matmul_grid(ctx: &GpuContext, m: usize, n: usize, edge: u64) -> Result<(u32, u32)> {
    let block = edge;
    let gx = check_dim(ctx, "matmul workgroups along n", (n as u64).div_ceil(block))?;
    let gy = check_dim(ctx, "matmul workgroups along m", (m as u64).div_ceil(block))?;
    Ok((gx, gy))
}

/// A matmul's parameters for the whole sum over k, after checking the shape against
/// the bound buffers.
pub(super) fn matmul_params(
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
        epi: 0,
        rows_x: 0,
    })
}

/// What a product's store applies to each finished value of C: the ops that follow it
/// in a program, fused (`shaders/matmul.wgsl`, `epilogue`), each in its own kernel's
/// arithmetic, so the result has the same bits as the separate dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    /// The product alone.
    None,
    /// `+ bias[j]` (the bias add that followed).
    Bias,
    /// `f(· + bias[j])`: the bias add and the activation; C is the activation's output.
    BiasActivate(Activation),
    /// `· f′(a[i, j])`: the activation's backward, `a` its forward output.
    ActivateBackward(Activation),
}

impl Epilogue {
    fn code(self) -> u32 {
        match self {
            Epilogue::None => 0,
            Epilogue::Bias => 1,
            Epilogue::BiasActivate(_) => 2,
            Epilogue::ActivateBackward(_) => 3,
        }
    }

    /// The activation its pipeline is built with (`ACT`; sigmoid where none is read).
    pub(crate) fn activation(self) -> Activation {
        match self {
            Epilogue::BiasActivate(f) | Epilogue::ActivateBackward(f) => f,
            Epilogue::None | Epilogue::Bias => Activation::Sigmoid,
        }
    }
}

/// Records `c = op(a) · op(b)` (m × n), the twin of [`crate::cpu::matmul::matmul`].
///
/// `a_rows = Some(off)` reads stored row r of A at `idx[off + r]` (the bound index). A
/// bound in chunks ([`bind_matmul_chunked`]) is read across them; its chunks are checked
/// to hold whole rows of this shape's row length. A sum over more than
/// [`MATMUL_K_PER_DISPATCH`] values of k is [`matmul_dispatches`] dispatches, each taking
/// a block of the parameter ring. The register block is the adapter's
/// ([`crate::gpu::tune::MatmulBlock`]).
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
    shape: (usize, usize, usize),
    a_rows: Option<u32>,
) -> Result<()> {
    matmul_with(
        ctx,
        pass,
        ring,
        bound,
        layout,
        shape,
        a_rows,
        Epilogue::None,
    )
}

/// As [`matmul`], applying `epi` to each finished value (bound with its operand by
/// [`bind_matmul_epilogue`]); one dispatch.
///
/// # Errors
/// As [`matmul`]; [`Error::InvalidParameter`] for an epilogue on a sum longer than one
/// dispatch (its stores would be partial); [`Error::ShapeMismatch`] for an operand
/// shorter than the epilogue reads.
#[allow(clippy::too_many_arguments)] // matmul's, plus the epilogue
pub fn matmul_with(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    bound: &Bound,
    layout: Layout,
    (m, k, n): (usize, usize, usize),
    a_rows: Option<u32>,
    epi: Epilogue,
) -> Result<()> {
    check_family(bound, Family::Matmul)?;
    let block = ctx.pipelines().tuning().matmul;
    let kernel = matmul_kernel(ctx, layout, (m, k, n), epi.activation(), bound.chunks > 1);
    let edge = match block {
        MatmulBlock::Four => MATMUL_BLOCK as u64,
        MatmulBlock::Eight => 64,
    };
    // A thin C (n ≤ 16: at most two 8-column blocks) runs the 8 × 8 block's grid x along
    // its rows, so that a SIMD group's lanes (consecutive x) all have work.
    let rows_x = block == MatmulBlock::Eight && n <= 16;
    let (gx, gy) = matmul_grid(ctx, m, n, edge)?;
    let (gx, gy) = if rows_x { (gy, gx) } else { (gx, gy) };
    let base = MatmulParams {
        rows_x: u32::from(rows_x),
        ..matmul_params(bound, layout, (m, k, n), a_rows)?
    };
    match epi {
        Epilogue::None => {}
        _ if k > MATMUL_K_PER_DISPATCH => {
            return Err(Error::param(
                "matmul epilogue",
                format!("k = {k}"),
                "needs a sum of at most MATMUL_K_PER_DISPATCH values (one dispatch)",
            ));
        }
        Epilogue::Bias | Epilogue::BiasActivate(_) => {
            check_len(bound, 7, "matmul epilogue bias", n as u64)?;
        }
        Epilogue::ActivateBackward(_) => {
            check_len(bound, 7, "matmul epilogue activation", (m * n) as u64)?;
        }
    }
    // Long sums in several dispatches, each continuing the last one's running sums.
    for k_begin in (0..k).step_by(MATMUL_K_PER_DISPATCH) {
        let params = MatmulParams {
            k_begin: k_begin as u32,
            k_end: (k_begin + MATMUL_K_PER_DISPATCH).min(k) as u32,
            epi: epi.code(),
            ..base
        };
        dispatch(ctx, pass, ring, kernel, bound, &params, (gx, gy))?;
    }
    Ok(())
}

/// The pipeline of an unsplit product of shape (m, k, n) in `layout` with a fused
/// epilogue's activation `act`, A in chunks or not: the adapter's register block, and
/// for the 8 × 8 block the quad reads (`block_sum8q`, the same bits) where the shape
/// aligns every quad: a row of A or B read along its length starts on a multiple of 4.
pub(crate) fn matmul_kernel(
    ctx: &GpuContext,
    layout: Layout,
    (m, k, n): (usize, usize, usize),
    act: Activation,
    chunked: bool,
) -> Kernel {
    let block = ctx.pipelines().tuning().matmul;
    let aligned = match layout {
        Layout::NN => k % 4 == 0 && n % 4 == 0,
        Layout::TN => m % 4 == 0 && n % 4 == 0,
        Layout::NT => k % 4 == 0,
    };
    Kernel::Matmul(
        layout,
        block,
        act,
        chunked,
        block == MatmulBlock::Eight && aligned,
    )
}

/// A batch at least this long has its sums over rows — the gradient reductions Xᵀδ and
/// the bias gradients 1ᵀδ — split into segments over many workgroups ([`split`]); a
/// mini-batch's sums are short enough for one workgroup per output block.
pub const SPLIT_MIN_ROWS: usize = 4096;

/// Rows a segment of a split sum holds at least: below this, the second pass's share
/// of the work would outgrow the first's.
pub const SPLIT_MIN_SEGMENT: usize = 256;

/// [`SumSplit::Short`](crate::gpu::tune::SumSplit::Short): values a segment of a
/// mini-batch product's split sum holds at least (two of the kernel's k-tiles).
pub const SHORT_SPLIT_SEGMENT: usize = 32;

/// [`SumSplit::Short`](crate::gpu::tune::SumSplit::Short): the shortest sum split.
pub const SHORT_SPLIT_MIN_K: usize = 128;

/// [`SumSplit::Short`](crate::gpu::tune::SumSplit::Short): the most workgroups an
/// unsplit product may have and still be split (a product with more fills the device
/// as it is, and keeps its fused epilogue).
pub const SHORT_SPLIT_MAX_GROUPS: u64 = 16;

/// Whether [`SumSplit::Short`](crate::gpu::tune::SumSplit::Short) splits an m × k × n
/// product (C m × n, a sum over k) and if so the segments its scratch needs: the one
/// rule the engine, the tuner's probe and the kernel profile apply.
///
/// ```
/// use gradflow::gpu::kernels::short_split_segments;
/// assert_eq!(short_split_segments(64, 256, 256), Some(8)); // W3's Xᵀδ¹: 16 workgroups
/// assert_eq!(short_split_segments(256, 64, 256), None); // X·W¹: 64 workgroups, k = 64
/// ```
pub fn short_split_segments(m: usize, k: usize, n: usize) -> Option<usize> {
    let groups = (m.div_ceil(MATMUL_BLOCK) * n.div_ceil(MATMUL_BLOCK)) as u64;
    (groups <= SHORT_SPLIT_MAX_GROUPS && k >= SHORT_SPLIT_MIN_K)
        .then(|| split_bound_with(k, groups, usize::MAX, SHORT_SPLIT_SEGMENT))
}

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
    split_with(rows, groups, max_segments, SPLIT_MIN_SEGMENT)
}

/// As [`split`], with segments of at least `min_segment` rows.
///
/// ```
/// use gradflow::gpu::kernels::{split_with, Split};
/// // W3's Xᵀδ¹ at batch 256 (16 workgroups unsplit) in segments of at least 32 rows.
/// assert_eq!(split_with(256, 16, 64, 32), Split { segments: 8, seg_len: 32 });
/// ```
pub fn split_with(rows: usize, groups: u64, max_segments: usize, min_segment: usize) -> Split {
    let segments = split_bound_with(rows, groups, max_segments, min_segment);
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
    split_bound_with(rows, groups, max_segments, SPLIT_MIN_SEGMENT)
}

/// As [`split_bound`], for [`split_with`]'s `min_segment`.
pub fn split_bound_with(
    rows: usize,
    groups: u64,
    max_segments: usize,
    min_segment: usize,
) -> usize {
    let want = SPLIT_TARGET_WORKGROUPS.div_ceil(groups.max(1)) as usize;
    let most = rows.div_ceil(min_segment.max(16)).min(max_segments);
    let least = rows.div_ceil(MATMUL_K_PER_DISPATCH);
    want.min(most).max(least).max(1)
}

/// Records `c = op(a) · op(b)` as a split sum over k ([`split_with`], segments of at
/// least `min_segment` values): `bound` writes the segments' partial products into its
/// C, a scratch buffer of at least `max_segments` × m × n values, and `finish` (bound
/// with [`bind_col_sums`] from that scratch to the real C) adds them in segment order.
/// Two dispatches.
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
    (max_segments, min_segment): (usize, usize),
) -> Result<()> {
    check_family(bound, Family::Matmul)?;
    let (gx, gy) = matmul_grid(ctx, m, n, MATMUL_BLOCK as u64)?;
    let groups = u64::from(gx) * u64::from(gy);
    let cut = split_with(k, groups, max_segments, min_segment);
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
        Kernel::MatmulSplit(layout, bound.chunks > 1),
        bound,
        &params,
        (gx, gy, gz),
    )?;
    col_sums(ctx, pass, ring, finish, cut.segments, mn as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Every kernel that applies an activation takes its arithmetic from the one copy in
    /// `activation_math.wgsl`: a fused kernel gives the separate kernels' bits only
    /// while no shader keeps an arithmetic of its own.
    #[test]
    fn the_activations_have_one_copy() {
        let shaders =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders")).expect("shaders/");
        let mut seen = Vec::new();
        for entry in shaders {
            let path = entry.expect("entry").path();
            let src = std::fs::read_to_string(&path).expect("a shader");
            for name in [
                "fn sigmoid(",
                "fn stable_tanh(",
                "fn act(",
                "fn act_derivative(",
            ] {
                if src.contains(name) {
                    seen.push((
                        path.file_name().unwrap().to_string_lossy().into_owned(),
                        name,
                    ));
                }
            }
            // Nor an activation's switch written out again.
            if !path.ends_with("activation_math.wgsl") {
                assert!(!src.contains("y * (1.0 - y)"), "{}", path.display());
                assert!(!src.contains("stable_tanh("), "{}", path.display());
            }
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen.iter().all(|(file, _)| file == "activation_math.wgsl"),
            "{seen:?}"
        );
    }

    #[test]
    fn params_mirror_the_shader() {
        type P = MatmulParams;
        assert_mirrors(
            Family::Matmul.source(),
            size_of::<P>(),
            &[
                ("m", offset_of!(P, m), 'u'),
                ("k", offset_of!(P, k), 'u'),
                ("n", offset_of!(P, n), 'u'),
                ("use_idx", offset_of!(P, use_idx), 'u'),
                ("idx_off", offset_of!(P, idx_off), 'u'),
                ("rows_per_chunk", offset_of!(P, rows_per_chunk), 'u'),
                ("k_begin", offset_of!(P, k_begin), 'u'),
                ("k_end", offset_of!(P, k_end), 'u'),
                ("seg_len", offset_of!(P, seg_len), 'u'),
                ("c_stride", offset_of!(P, c_stride), 'u'),
                ("epi", offset_of!(P, epi), 'u'),
                ("rows_x", offset_of!(P, rows_x), 'u'),
            ],
        );
    }
}
