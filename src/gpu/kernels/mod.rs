//! Host launchers: one per kernel, mirroring its CPU twin in [`crate::cpu`].
//!
//! A kernel call is split in two, so that a training loop builds everything once:
//!
//! 1. **bind** (once per op, when an engine is built): `bind_*` creates a [`Bound`], the
//!    bind group of the op's buffers, remembering their lengths;
//! 2. **launch** (every step): the launcher of the same name pushes the per-dispatch
//!    parameters (shapes, offsets, learning rate) into a [`ParamRing`], checks the shape
//!    against the bound lengths and the device limits, and records one dispatch into a
//!    [`wgpu::ComputePass`]. Nothing is created.
//!
//! The ring is a uniform buffer of slots (the largest `Params`, rounded up to the offset
//! alignment: 256 bytes on most GPUs) bound with a dynamic offset; its staged
//! contents are written with [`ParamRing::upload`] before the encoder is submitted (queued
//! writes land before the next submission), and the ring is then free for reuse.

//!
//! | file | kernels |
//! |---|---|
//! | `matmul.rs` | products, the split sums' first pass |
//! | `elementwise.rs` | bias, activations, softmax |
//! | `loss.rs` | fused losses |
//! | `reduce.rs` | column sums |
//! | `update.rs` | optimizer steps |
//! | `glm_epoch.rs` | many GLM steps per dispatch |
//! | `glm_grad.rs` | a GLM's loss and gradients over a long batch in one pass |
//! | `mlp_step.rs` | a two-layer MLP's loss and gradients in two dispatches |
//!
//! Each family's parameter struct sits beside its launcher and mirrors the `Params`
//! struct of its shader; a test compares their layouts field by field.

mod elementwise;
mod glm_epoch;
mod glm_grad;
mod loss;
mod matmul;
mod mlp_epoch;
mod mlp_step;
mod reduce;
mod update;

pub use elementwise::*;
pub use glm_epoch::*;
pub use glm_grad::*;
pub use loss::*;
pub use matmul::*;
pub use mlp_epoch::*;
pub use mlp_step::*;
pub use reduce::*;
pub use update::*;

use crate::error::{Error, Result};
use crate::program::Activation;
use crate::program::Layout;
use crate::program::LossKind;
use crate::program::{Rule, Scalars};

use super::context::GpuContext;
use super::pipelines::{Family, Kernel};

/// Bytes of every parameter block (the largest WGSL `Params` struct).
pub(super) const PARAM_BYTES: u64 = 112;

/// Per-dispatch parameters: a uniform buffer of slots addressed by dynamic offsets.
#[derive(Debug)]
pub struct ParamRing {
    buf: wgpu::Buffer,
    stride: u64,
    slots: usize,
    staged: Vec<u8>,
}

impl ParamRing {
    /// A ring of `slots` parameter blocks (one per dispatch until the next upload).
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] when the ring exceeds the device's buffer size.
    pub fn new(ctx: &GpuContext, slots: usize) -> Result<Self> {
        // Dynamic offsets must be multiples of the alignment: the block rounded up to it.
        // One ring serves kernels reading their parameters as a uniform or a storage
        // buffer (see `ParamBlock`): both usages, and the stricter alignment.
        let l = ctx.limits();
        let align = u64::from(
            l.min_uniform_buffer_offset_alignment
                .max(l.min_storage_buffer_offset_alignment),
        )
        .max(1);
        let stride = PARAM_BYTES.div_ceil(align) * align;
        let slots = slots.max(1);
        let size = stride.saturating_mul(slots as u64);
        if size > ctx.limits().max_buffer_size {
            return Err(Error::DeviceLimit {
                what: "parameter ring bytes",
                requested: size,
                limit: ctx.limits().max_buffer_size,
            });
        }
        let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("parameter ring"),
            size,
            usage: wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(ParamRing {
            buf,
            stride,
            slots,
            staged: Vec::with_capacity(size as usize),
        })
    }

    /// Slots still free before an [`upload`](ParamRing::upload) is needed.
    pub fn free(&self) -> usize {
        self.slots - self.staged.len() / self.stride as usize
    }

    fn push<T: bytemuck::Pod>(&mut self, params: &T) -> Result<u32> {
        if self.free() == 0 {
            return Err(Error::DeviceLimit {
                what: "dispatches recorded before a parameter-ring upload",
                requested: self.slots as u64 + 1,
                limit: self.slots as u64,
            });
        }
        debug_assert!(std::mem::size_of::<T>() as u64 <= PARAM_BYTES);
        let offset = self.staged.len();
        self.staged.extend_from_slice(bytemuck::bytes_of(params));
        self.staged.resize(offset + self.stride as usize, 0);
        Ok(offset as u32)
    }

    /// The ring's fill level, to [`rewind`](ParamRing::rewind) to.
    pub fn mark(&self) -> usize {
        self.staged.len()
    }

    /// Dispatches recorded since `mark` (each takes one parameter block).
    pub fn since(&self, mark: usize) -> usize {
        (self.staged.len() - mark) / self.stride as usize
    }

    /// Forgets the blocks pushed since `mark` (their dispatches were never submitted).
    pub fn rewind(&mut self, mark: usize) {
        self.staged.truncate(mark);
    }

    /// Queues the staged parameters for the next submission and empties the ring.
    pub fn upload(&mut self, ctx: &GpuContext) {
        if !self.staged.is_empty() {
            ctx.queue().write_buffer(&self.buf, 0, &self.staged);
            self.staged.clear();
        }
    }
}

/// An op's bind group, created once, with the lengths (in 4-byte values) of its storage
/// buffers so that every launch can check its shape.
#[derive(Debug)]
pub struct Bound {
    family: Family,
    group: wgpu::BindGroup,
    lens: Vec<u64>,
    /// Matmul A split into chunks: rows per chunk (`u32::MAX` for one buffer) and the
    /// number of chunks; unused by the other families.
    chunk_rows: u32,
    chunks: usize,
    /// The fused GLM gradient's chunk: its first stored row (0 elsewhere).
    first_row: u32,
    /// A loss bound with row weights.
    weighted: bool,
}

impl Bound {
    /// Buffers the bound A (or X) is split into (1 for every other binding).
    pub fn chunks(&self) -> usize {
        self.chunks
    }
}

/// Most buffers a matmul's A may be split into (bindings `a`, `a1`, `a2`, `a3`).
pub const MAX_A_CHUNKS: usize = 4;

/// Positions in [`Bound::lens`] of A's chunks, in row order (see [`Family::storage`]).
pub(super) const A_CHUNK_SLOTS: [usize; MAX_A_CHUNKS] = [0, 4, 5, 6];

pub(super) fn bind(
    ctx: &GpuContext,
    ring: &ParamRing,
    family: Family,
    bufs: &[&wgpu::Buffer],
) -> Result<Bound> {
    debug_assert_eq!(bufs.len(), family.storage().len());
    for b in bufs {
        ctx.check_binding(b.size())?;
    }
    let layout = ctx.pipelines().layout(family);
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &ring.buf,
            offset: 0,
            size: wgpu::BufferSize::new(PARAM_BYTES),
        }),
    }];
    for (i, b) in bufs.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: b.as_entire_binding(),
        });
    }
    let group = ctx.scoped("creating a bind group", || {
        Ok(ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{family:?}")),
            layout: &layout,
            entries: &entries,
        }))
    })?;
    Ok(Bound {
        family,
        group,
        lens: bufs.iter().map(|b| b.size() / 4).collect(),
        chunk_rows: u32::MAX,
        chunks: 1,
        first_row: 0,
        weighted: false,
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct ShapeParams {
    rows: u32,
    cols: u32,
    pad: [u32; 2],
}

/// Whether a loss dispatch decides to halt training (see `shaders/halting.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Halting {
    /// Never (kernel tests; the halt binding may be absent).
    Off,
    /// On a non-finite loss.
    NonFinite,
    /// On a non-finite loss or when |loss − previous| < tol (seed 000's rule).
    Tolerance(f32),
}

impl Halting {
    /// The shaders' `halt_mode` and `tol`.
    pub(super) fn mode(self) -> (u32, f32) {
        match self {
            Halting::Off => (0, 0.0),
            Halting::NonFinite => (1, 0.0),
            Halting::Tolerance(t) => (2, t),
        }
    }
}

pub(super) fn to_u32(what: &'static str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::DeviceLimit {
        what,
        requested: v,
        limit: u64::from(u32::MAX),
    })
}

/// The grid for `groups` workgroups: 1-D while it fits one dimension, else 2-D (the
/// shaders flatten `wg.y · nwg.x + wg.x`; the surplus groups of the last row exit).
pub(super) fn grid_1d(ctx: &GpuContext, groups: u64) -> Result<(u32, u32)> {
    let max = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
    let groups = groups.max(1);
    if groups <= max {
        return Ok((groups as u32, 1));
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(Error::DeviceLimit {
            what: "workgroups (x · y grid)",
            requested: groups,
            limit: max * max,
        });
    }
    Ok((max as u32, y as u32))
}

pub(super) fn check_dim(ctx: &GpuContext, what: &'static str, groups: u64) -> Result<u32> {
    let max = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
    if groups > max {
        return Err(Error::DeviceLimit {
            what,
            requested: groups,
            limit: max,
        });
    }
    Ok(groups.max(1) as u32)
}

pub(super) fn check_len(bound: &Bound, which: usize, name: &'static str, need: u64) -> Result<()> {
    let have = bound.lens[which];
    if need > have {
        return Err(Error::ShapeMismatch {
            what: name,
            expected: format!("a buffer of at least {need} values"),
            got: format!("{have} values"),
        });
    }
    Ok(())
}

/// Checks A's chunks for rows of `row_len` values: with `rows = Some(r)` (read in stored
/// order), rows `0 .. r` must exist; with `None` (gathered: the index may name any row),
/// every chunk but the last must hold its `rows_per_chunk` rows and the last at least one,
/// so that every row below the total (n, for a resident dataset) is in bounds.
pub(super) fn check_a_chunks(bound: &Bound, row_len: u64, rows: Option<u64>) -> Result<()> {
    let per = u64::from(bound.chunk_rows);
    let chunks = bound.chunks.clamp(1, MAX_A_CHUNKS);
    if let Some(r) = rows {
        let held = per.saturating_mul(chunks as u64);
        if r > held {
            return Err(Error::ShapeMismatch {
                what: "matmul A",
                expected: format!("{r} rows"),
                got: format!("{chunks} chunks of at most {per} rows"),
            });
        }
    }
    for (c, &slot) in A_CHUNK_SLOTS[..chunks].iter().enumerate() {
        let first = per.saturating_mul(c as u64);
        let need_rows = match rows {
            Some(r) => r.saturating_sub(first).min(per),
            None if c + 1 < chunks => per,
            None => 1,
        };
        let name = if chunks == 1 {
            "matmul A"
        } else {
            "matmul A chunk"
        };
        check_len(bound, slot, name, need_rows.saturating_mul(row_len))?;
    }
    Ok(())
}

pub(super) fn check_family(bound: &Bound, family: Family) -> Result<()> {
    if bound.family != family {
        return Err(Error::ShapeMismatch {
            what: "bind group",
            expected: format!("{family:?} bindings"),
            got: format!("{:?} bindings", bound.family),
        });
    }
    Ok(())
}

pub(super) fn dispatch<T: bytemuck::Pod>(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    kernel: Kernel,
    bound: &Bound,
    params: &T,
    (x, y): (u32, u32),
) -> Result<()> {
    dispatch_3d(ctx, pass, ring, kernel, bound, params, (x, y, 1))
}

/// [`dispatch`] over a grid with a z dimension (the segments of a split sum).
pub(super) fn dispatch_3d<T: bytemuck::Pod>(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    ring: &mut ParamRing,
    kernel: Kernel,
    bound: &Bound,
    params: &T,
    grid: (u32, u32, u32),
) -> Result<()> {
    let offset = ring.push(params)?;
    pass.set_pipeline(&ctx.pipelines().get(kernel));
    pass.set_bind_group(0, &bound.group, &[offset]);
    pass.dispatch_workgroups(grid.0, grid.1, grid.2);
    Ok(())
}

pub(super) fn elementwise_params(rows: usize, cols: usize) -> Result<(ShapeParams, u64)> {
    let len = (rows as u64) * (cols as u64);
    let params = ShapeParams {
        rows: to_u32("rows", rows as u64)?,
        cols: to_u32("cols", cols as u64)?,
        pad: [0; 2],
    };
    to_u32("elements", len)?;
    Ok((params, len))
}

/// Records the dispatches of `record` into one compute pass, uploads the ring and submits,
/// all under an error scope: the one-shot path of tests and small jobs.
///
/// # Errors
/// What `record` returns; [`Error::Device`] for a wgpu error.
pub fn submit(
    ctx: &GpuContext,
    ring: &mut ParamRing,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>, &mut ParamRing) -> Result<()>,
) -> Result<()> {
    ctx.scoped("recording and submitting kernels", || {
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradflow kernels"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gradflow kernels"),
                timestamp_writes: None,
            });
            record(&mut pass, ring)?;
        }
        ring.upload(ctx);
        ctx.queue().submit([enc.finish()]);
        Ok(())
    })
}

/// Checks a launcher's parameter struct against its shader's `Params`: the same size, and
/// field by field the same offset and scalar type (`'u'` for u32, `'f'` for f32), named
/// alike where both sides name the field (padding aside). Both sides are written by hand,
/// so this is what keeps them from drifting apart.
#[cfg(test)]
pub(super) fn assert_mirrors(shader: &str, rust_size: usize, fields: &[(&str, usize, char)]) {
    use wgpu::naga::{Scalar, ScalarKind, TypeInner};
    let module = wgpu::naga::front::wgsl::parse_str(shader).expect("the shader parses");
    let (members, span) = module
        .types
        .iter()
        .find_map(|(_, t)| match (&t.name, &t.inner) {
            (Some(name), TypeInner::Struct { members, span }) if name == "Params" => {
                Some((members.clone(), *span))
            }
            _ => None,
        })
        .expect("the shader declares struct Params");
    assert_eq!(
        span as usize, rust_size,
        "size of Params against the Rust mirror"
    );
    assert_eq!(members.len(), fields.len(), "fields of Params: {members:?}");
    for (m, &(name, offset, kind)) in members.iter().zip(fields) {
        let shader_name = m.name.clone().unwrap_or_default();
        assert_eq!(
            m.offset as usize, offset,
            "offset of {shader_name} / {name}"
        );
        let shader_kind = match module.types[m.ty].inner {
            TypeInner::Scalar(Scalar {
                kind: ScalarKind::Uint,
                width: 4,
            }) => 'u',
            TypeInner::Scalar(Scalar {
                kind: ScalarKind::Float,
                width: 4,
            }) => 'f',
            ref other => panic!("{shader_name}: {other:?} is not a 4-byte scalar"),
        };
        assert_eq!(shader_kind, kind, "type of {shader_name} / {name}");
        if !shader_name.starts_with('_') && !name.starts_with("pad") {
            assert_eq!(shader_name, name, "field at offset {offset}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// One struct serves four shaders: bias and softmax (rows, cols), the column sums
    /// (rows, cols, and the split's segment length in the first pad), and the activations
    /// (the element count in `rows`).
    #[test]
    fn shape_params_mirror_their_shaders() {
        type P = ShapeParams;
        let (rows, cols, pad) = (offset_of!(P, rows), offset_of!(P, cols), offset_of!(P, pad));
        let shape = [
            ("rows", rows, 'u'),
            ("cols", cols, 'u'),
            ("pad", pad, 'u'),
            ("pad", pad + 4, 'u'),
        ];
        for shader in [
            include_str!("../../../shaders/bias.wgsl"),
            include_str!("../../../shaders/softmax.wgsl"),
        ] {
            assert_mirrors(shader, size_of::<P>(), &shape);
        }
        let reduce = [shape[0], shape[1], ("seg_len", pad, 'u'), shape[3]];
        assert_mirrors(
            include_str!("../../../shaders/reduce.wgsl"),
            size_of::<P>(),
            &reduce,
        );
        let activation = [("len", rows, 'u'), ("pad", cols, 'u'), shape[2], shape[3]];
        assert_mirrors(Family::Activation.source(), size_of::<P>(), &activation);
    }
}
