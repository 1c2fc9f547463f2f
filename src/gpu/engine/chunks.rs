//! The resident features in whole-row chunks, one storage binding each.

use crate::error::{Error, Result};

use super::super::context::GpuContext;
use super::super::kernels;

/// The resident features, split into whole-row chunks that each fit one storage binding.
///
/// Why chunks rather than one buffer: `max_buffer_size` is often far above
/// `max_storage_buffer_binding_size` (2 GiB vs 128 MiB on llvmpipe), so the data fit the
/// device but not one binding. Binding a buffer in several ranges (offsets) would need
/// the offsets aligned to `min_storage_buffer_offset_alignment` and cap the buffer at
/// `max_buffer_size` anyway; separate buffers of whole rows need neither, and a row never
/// straddles two bindings, so the kernel picks one chunk per row.
pub(super) struct FeatureChunks {
    pub(super) bufs: Vec<wgpu::Buffer>,
    pub(super) rows_per_chunk: usize,
}

impl FeatureChunks {
    /// Rows of `p` features that fit one storage binding (and one buffer).
    fn rows_per_binding(ctx: &GpuContext, p: usize) -> usize {
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        usize::try_from(limit / (p as u64).saturating_mul(4).max(1)).unwrap_or(usize::MAX)
    }

    /// Uploads `x` (n × p) in chunks of at most `rows_per_chunk` rows: the most that fit
    /// both limits, or fewer with `max_rows`.
    pub(super) fn upload(
        ctx: &GpuContext,
        x: &[f32],
        p: usize,
        max_rows: Option<usize>,
    ) -> Result<Self> {
        let n = x.len() / p;
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let row_bytes = (p as u64).saturating_mul(4);
        let fit = usize::try_from(limit / row_bytes).unwrap_or(usize::MAX);
        if fit == 0 {
            return Err(Error::DeviceLimit {
                what: "bytes of one feature row (a row must fit one storage binding)",
                requested: row_bytes,
                limit,
            });
        }
        let rows_per_chunk = match max_rows {
            Some(0) => return Err(Error::param("max_chunk_rows", 0, "must be ≥ 1")),
            Some(r) => fit.min(r),
            None => fit,
        };
        let chunks = n.div_ceil(rows_per_chunk).max(1);
        if chunks > kernels::MAX_A_CHUNKS {
            return Err(Error::DeviceLimit {
                what: "resident feature bytes (4 storage bindings of whole rows; \
                       a larger dataset needs streaming, a later stage)",
                requested: (x.len() as u64).saturating_mul(4),
                limit: (kernels::MAX_A_CHUNKS as u64)
                    .saturating_mul(rows_per_chunk as u64)
                    .saturating_mul(row_bytes),
            });
        }
        let bufs = (0..chunks)
            .map(|c| {
                let rows = c * rows_per_chunk..((c + 1) * rows_per_chunk).min(n);
                ctx.upload(
                    &format!("features, chunk {c}"),
                    &x[rows.start * p..rows.end * p],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FeatureChunks {
            bufs,
            rows_per_chunk,
        })
    }
}

/// The largest number of rows whose `p` features can be resident (4 whole-row chunks of
/// one storage binding each); the trainer's `Mode::Auto` streams beyond it.
pub fn resident_row_limit(ctx: &GpuContext, p: usize) -> usize {
    FeatureChunks::rows_per_binding(ctx, p).saturating_mul(kernels::MAX_A_CHUNKS)
}
