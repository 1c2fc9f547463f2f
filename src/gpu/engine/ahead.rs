//! Snapshots for epochs queued ahead of the host's reads.
//!
//! A full-batch fit takes one step an epoch, and the host decides after each epoch
//! whether there is a next (the plateau rule, early stopping, a halt, the adaptive
//! rate). Deciding before queuing the next epoch leaves the device idle for a round trip
//! every step — on an H200, W4's step is ~0.16 ms of device time in a ~0.56 ms iteration.
//! So the session queues the next epochs first, *speculatively*, and reads the one
//! before while they run; when the host's decision turns out to be "stop" or "not with
//! those rates", the engine puts back what the device held at that epoch's end.
//!
//! What the device holds at an epoch's end is the parameters, the optimizer's two state
//! tensors per parameter (Momentum, Adam, AdaGrad) and the halt record (`halting.wgsl`:
//! the flag, the halting slot, the previous loss the tol rule compares with). Each epoch
//! read ahead copies them, device to device, into one slot of a ring
//! ([`GpuEngine::snapshot`]); [`GpuEngine::restore`] copies a slot back. Nothing comes
//! to the host but what it reads anyway (the losses and the parameters).

use crate::error::{Error, Result};

use super::GpuEngine;

/// The ring of snapshots: `slots` copies of the parts, each `slot_bytes` long.
pub(crate) struct Snapshots {
    buf: wgpu::Buffer,
    slots: usize,
    slot_bytes: u64,
}

impl GpuEngine {
    /// The buffers an epoch's end is made of, with their lengths in bytes: each
    /// parameter, the optimizer's state where the rule keeps any, the halt record.
    fn snapshot_parts(&self) -> Vec<(&wgpu::Buffer, u64)> {
        let mut parts: Vec<_> = self
            .param_parts()
            .map(|(buf, len)| (buf, len as u64 * 4))
            .collect();
        // Plain SGD keeps no state: its tensors stay zero.
        if self.rule != crate::program::Rule::Sgd {
            for (d, [a, b]) in self.program.params.iter().zip(&self.state) {
                let bytes = (d.rows * d.cols) as u64 * 4;
                parts.extend([(a, bytes), (b, bytes)]);
            }
        }
        parts.push((&self.halt, self.halt.size()));
        parts
    }

    /// Keeps `slots` snapshots on the device (allocated once; a later call with more
    /// slots allocates again).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for zero slots; [`Error::DeviceLimit`] when they do not
    /// fit one buffer; [`Error::Device`].
    pub(crate) fn keep_snapshots(&mut self, slots: usize) -> Result<()> {
        if slots == 0 {
            return Err(Error::param("snapshot slots", 0, "must be at least 1"));
        }
        if self.snapshots.as_ref().is_some_and(|s| s.slots >= slots) {
            return Ok(());
        }
        let slot_bytes: u64 = self.snapshot_parts().iter().map(|&(_, b)| b).sum();
        let size = slot_bytes.saturating_mul(slots as u64);
        let limit = self.ctx.device().limits().max_buffer_size;
        if size > limit {
            return Err(Error::DeviceLimit {
                what: "epoch snapshots (parameters and optimizer state)",
                requested: size,
                limit,
            });
        }
        let device = self.ctx.device();
        let buf = self.ctx.scoped("allocating epoch snapshots", || {
            Ok(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("epoch snapshots"),
                size,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        })?;
        self.snapshots = Some(Snapshots {
            buf,
            slots,
            slot_bytes,
        });
        Ok(())
    }

    /// Copies the device's state after every step recorded so far into snapshot `slot`
    /// (submitted with the next flush, in order with the steps).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] without snapshots or for a slot beyond them.
    pub(crate) fn snapshot(&mut self, slot: usize) -> Result<()> {
        self.copy_snapshot(slot, true)
    }

    /// Puts back snapshot `slot`: the parameters, optimizer state and halt record as they
    /// were when it was taken, whatever the steps queued since did to them.
    ///
    /// # Errors
    /// As [`GpuEngine::snapshot`]; [`Error::Device`].
    pub(crate) fn restore(&mut self, slot: usize) -> Result<()> {
        self.copy_snapshot(slot, false)?;
        self.flush()
    }

    /// Records the copies between the live buffers and snapshot `slot`, either way.
    fn copy_snapshot(&mut self, slot: usize, take: bool) -> Result<()> {
        // The steps recorded so far go first, in their own command buffer.
        self.close_steps()?;
        let Some(snap) = self.snapshots.as_ref().filter(|s| slot < s.slots) else {
            return Err(Error::param(
                "snapshot slot",
                slot,
                "must be below the slots kept (keep_snapshots)",
            ));
        };
        let device = self.ctx.device();
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(if take { "snapshot" } else { "restore" }),
        });
        let mut at = slot as u64 * snap.slot_bytes;
        for (buf, bytes) in self.snapshot_parts() {
            if take {
                enc.copy_buffer_to_buffer(buf, 0, &snap.buf, at, bytes);
            } else {
                enc.copy_buffer_to_buffer(&snap.buf, at, buf, 0, bytes);
            }
            at += bytes;
        }
        self.pending.push(enc.finish());
        Ok(())
    }
}
