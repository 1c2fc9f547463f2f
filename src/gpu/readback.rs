//! Reading device buffers back to the host.
//!
//! The protocol, step by step: copy the buffer into a fresh `MAP_READ` staging buffer and
//! submit; ask for the mapping with `map_async`, whose callback sends its result down a
//! one-shot channel; `device.poll(wait)` drives the GPU until the callback has run; the
//! mapped bytes are copied out and the staging buffer is unmapped and dropped. [`start`]
//! and [`Pending::finish`] split it where the host has work to queue in between: the
//! wait is for the copies' own submission, not for what was submitted after them.

use futures_intrusive::channel::shared::oneshot_channel;

use crate::error::{Error, Result};

use super::context::GpuContext;

/// Reads the first `len` 4-byte values (`f32` or `u32`) of `buf`.
///
/// Waits for all work submitted before the call.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `buf` holds fewer than `len` values; [`Error::Device`]
/// when the copy or the mapping fails.
pub fn read<T: bytemuck::Pod>(ctx: &GpuContext, buf: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
    Ok(read_parts(ctx, &[(buf, len)])?.pop().unwrap_or_default())
}

/// Reads the first `len` values of each `(buffer, len)` with one copy into one staging
/// buffer and one wait: how a step's loss and gradients come back together (a
/// distributed fit reads them every step).
///
/// # Errors
/// As [`read`].
pub fn read_parts<T: bytemuck::Pod>(
    ctx: &GpuContext,
    parts: &[(&wgpu::Buffer, usize)],
) -> Result<Vec<Vec<T>>> {
    start::<T>(ctx, parts)?.finish(ctx)
}

/// A readback on its way: the copies are submitted and the mapping asked for, and
/// [`Pending::finish`] waits for them. Work submitted after [`start`] does not delay it:
/// the wait is for the copies' submission alone, so the device can run further steps
/// while the host waits for (and then decides on) what came before them.
pub struct Pending<T> {
    /// `None` when nothing was asked for (no copies, no wait).
    staging: Option<(wgpu::Buffer, wgpu::SubmissionIndex)>,
    /// Values of `T` in each part.
    lens: Vec<usize>,
    value: std::marker::PhantomData<T>,
    mapped: futures_intrusive::channel::shared::OneshotReceiver<
        std::result::Result<(), wgpu::BufferAsyncError>,
    >,
}

/// Copies the first `len` values of each `(buffer, len)` into one staging buffer, submits
/// the copies and asks for the mapping, without waiting.
///
/// # Errors
/// [`Error::ShapeMismatch`] when a buffer holds fewer than `len` values; [`Error::Device`]
/// when the copy fails.
pub fn start<T: bytemuck::Pod>(
    ctx: &GpuContext,
    parts: &[(&wgpu::Buffer, usize)],
) -> Result<Pending<T>> {
    let size = std::mem::size_of::<T>() as u64;
    for &(buf, len) in parts {
        let bytes = len as u64 * size;
        if bytes > buf.size() {
            return Err(Error::ShapeMismatch {
                what: "readback",
                expected: format!("a buffer of at least {bytes} bytes"),
                got: format!("{} bytes", buf.size()),
            });
        }
    }
    let (tx, rx) = oneshot_channel();
    let lens = parts.iter().map(|&(_, len)| len).collect();
    let total: u64 = parts.iter().map(|&(_, len)| len as u64 * size).sum();
    if total == 0 {
        return Ok(Pending {
            staging: None,
            lens,
            value: std::marker::PhantomData,
            mapped: rx,
        });
    }
    let device = ctx.device();
    let staging = ctx.scoped("copying a buffer for readback", || {
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback"),
        });
        // Offsets are multiples of 4 (4-byte values), as copies require.
        let mut at = 0;
        for &(buf, len) in parts {
            let bytes = len as u64 * size;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(buf, 0, &staging, at, bytes);
            }
            at += bytes;
        }
        let index = ctx.queue().submit([enc.finish()]);
        Ok((staging, index))
    })?;
    staging.0.map_async(wgpu::MapMode::Read, .., move |r| {
        // The receiver outlives the poll in `finish`; a failed send only means it is gone.
        let _ = tx.send(r);
    });
    Ok(Pending {
        staging: Some(staging),
        lens,
        value: std::marker::PhantomData,
        mapped: rx,
    })
}

impl<T: bytemuck::Pod> Pending<T> {
    /// Waits for the copies (not for work submitted after them) and returns each part.
    ///
    /// # Errors
    /// [`Error::Device`] when the copy or the mapping fails.
    pub fn finish(self, ctx: &GpuContext) -> Result<Vec<Vec<T>>> {
        let Some((staging, index)) = self.staging else {
            return Ok(self.lens.iter().map(|_| Vec::new()).collect());
        };
        let device = ctx.device();
        let rx = self.mapped;
        pollster::block_on(async {
            device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| Error::Device {
                    message: format!("waiting for a readback: {e}"),
                })?;
            match rx.receive().await {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(Error::Device {
                    message: format!("mapping a readback buffer: {e}"),
                }),
                None => Err(Error::Device {
                    message: "mapping a readback buffer: callback dropped".into(),
                }),
            }
        })
        // A mapping that fails because the device is gone says so: a wait for all work
        // runs the device-lost callback, which a wait for one submission may not reach.
        .map_err(|e| {
            let _ = device.poll(wgpu::PollType::wait_indefinitely());
            ctx.check().err().unwrap_or(e)
        })?;
        let out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Device {
                    message: format!("reading a mapped buffer: {e}"),
                })?;
            let mut at = 0;
            self.lens
                .iter()
                .map(|&len| {
                    let bytes = len * std::mem::size_of::<T>();
                    let part = bytemuck::pod_collect_to_vec(&view[at..at + bytes]);
                    at += bytes;
                    part
                })
                .collect()
        };
        staging.unmap();
        Ok(out)
    }
}

/// Reads `len` `f32` values of `buf`; see [`read`].
///
/// # Errors
/// As [`read`].
pub fn read_f32(ctx: &GpuContext, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    read(ctx, buf, len)
}
