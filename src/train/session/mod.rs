//! What the trainer loop drives: one backend's running fit.
//!
//! The loop never waits on a backend per step. It queues steps and calls
//! [`Session::sync`] every `loss_every` steps or at the end of an epoch; the session
//! answers with the losses of the steps since the last sync and whether it halted.
//!
//! **Halting is decided inside the session, before the update of the step that triggers
//! it**, exactly as in seed 000's loop (`if |error − prev_error| < tol: return`): a
//! session that halts applies no further updates, so its parameters are those of the
//! step that fired, whenever the host finds out. The same holds for a non-finite loss,
//! which is how the last finite parameters survive a divergence. On the GPU this is a
//! flag on the device that the update kernels read; on the CPU it is a branch.

//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the [`Session`] trait, what a sync returns, the halting rule |
//! | `cpu.rs` | [`CpuSession`]: the engine's kernels, in memory or streamed |
//! | `gpu.rs` | [`GpuSession`]: resident or through the device ring |
//! | `verify.rs` | verify mode: the CPU twin that reruns GPU steps |
//! | `shard.rs` | [`Shard`]: a rank's part of each batch and the step's all-reduce |

mod cpu;
mod gpu;
mod shard;
mod verify;

pub(crate) use cpu::CpuSession;
pub(crate) use gpu::GpuSession;
pub(crate) use shard::Shard;

use std::sync::Arc;
use std::time::Duration;

use crate::data::{Batch, EpochPlan};
use crate::error::Result;
use crate::program::StepScalars;

/// Why a session stopped updating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Halt {
    /// `|loss − previous loss| < tol`.
    Tolerance {
        /// The change that was below tol.
        delta: f64,
    },
    /// The loss was NaN or infinite.
    NonFinite {
        /// The loss seen.
        loss: f64,
    },
}

/// The outcome of the steps since the last sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Synced {
    /// Loss of each step that ran, in order (the halting step included).
    pub losses: Vec<f64>,
    /// Set when a step halted the session: the index into `losses` and the reason.
    pub halt: Option<(usize, Halt)>,
}

impl Synced {
    /// Appends a step's loss and checks it with `rule`; `true` when it halts the fit
    /// (the step is then the halting one, its update not to be applied).
    pub(crate) fn push_checked(&mut self, rule: &mut HaltRule, loss: f64) -> bool {
        self.losses.push(loss);
        match rule.check(loss) {
            Some(halt) => {
                self.halt = Some((self.losses.len() - 1, halt));
                true
            }
            None => false,
        }
    }
}

/// A backend's running fit.
pub(crate) trait Session {
    /// Backend name for the report (`cpu`, or the GPU adapter).
    fn backend(&self) -> String;
    /// Starts an epoch that reads its rows as `plan` says.
    fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) -> Result<()>;
    /// Queues one step on positions `batch.start .. + batch.len` of the epoch order, with
    /// the update's scalars. A halted session ignores further steps.
    fn step(&mut self, batch: Batch, update: &StepScalars) -> Result<()>;
    /// Waits for the queued steps and returns their losses.
    fn sync(&mut self) -> Result<Synced>;
    /// [`Session::sync`] at an epoch's end, where [`Session::params`] follows: a session
    /// may read both at once (the GPU's: one readback where it took two and one per
    /// parameter tensor, each a round trip to the device).
    fn sync_epoch(&mut self) -> Result<Synced> {
        self.sync()
    }
    /// Whether this session can queue epochs ahead of the host's reads
    /// ([`Session::end_epoch_ahead`]: a resident GPU session of one process, not
    /// verifying), and if so whether that pays without being asked for: `Some(true)` on
    /// a hardware adapter, which computes beside the host; `Some(false)` on a software
    /// one (lavapipe), which computes on the host's own cores, so that the host's work
    /// for the epochs ahead only takes them from the device (measured: BENCHMARKS.md).
    fn reads_ahead(&self) -> Option<bool> {
        None
    }
    /// Ends the epoch just queued without waiting for it: the state at its end is kept
    /// on the device, its losses and parameters start on their way back, and the next
    /// epoch can be queued at once. [`Session::sync_epoch`] returns the epochs so ended,
    /// oldest first, and then [`Session::params`] their parameters. At most `depth`
    /// epochs may be queued past the oldest unread one, the same `depth` every call.
    fn end_epoch_ahead(&mut self, depth: usize) -> Result<()> {
        Err(crate::Error::param(
            "epochs_ahead",
            depth,
            "needs a session that reads ahead (a resident GPU fit in one process)",
        ))
    }
    /// Drops the epochs queued past the last one [`Session::sync_epoch`] returned and
    /// puts back the state at its end: what the device holds is then what it held had
    /// nothing been queued ahead.
    fn rewind(&mut self) -> Result<()> {
        Ok(())
    }
    /// Current parameters.
    fn params(&mut self) -> Result<Vec<Vec<f32>>>;
    /// The optimizer's state tensors (two per parameter).
    fn optimizer_state(&mut self) -> Result<Vec<[Vec<f32>; 2]>>;
    /// Restores the optimizer's state tensors.
    fn set_optimizer_state(&mut self, state: &[[Vec<f32>; 2]]) -> Result<()>;
    /// How the data are held, bytes sent to the device and the waits so far.
    fn traffic(&self) -> Traffic;
    /// Verify mode's deviations so far (none for sessions that do not verify).
    fn deviations(&self) -> Vec<super::Deviation> {
        Vec::new()
    }
}

/// A session's data movement, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Traffic {
    pub mode: &'static str,
    pub bytes: u64,
    /// GPU: compute dispatches and queue submissions.
    pub dispatches: u64,
    pub submissions: u64,
    pub gather: Duration,
    pub upload_wait: Duration,
    pub gpu_wait: Duration,
}

/// The seed's rule and the divergence check, shared by every session.
#[derive(Debug, Clone)]
pub(crate) struct HaltRule {
    tol: Option<f64>,
    previous: f64,
}

impl HaltRule {
    pub fn new(tol: Option<f64>) -> Self {
        HaltRule {
            tol,
            previous: f64::INFINITY,
        }
    }

    /// Checks a step's loss; `Some` means: do not update, stop.
    pub fn check(&mut self, loss: f64) -> Option<Halt> {
        let halt = Halt::of(loss, self.previous);
        if let Halt::Tolerance { .. } = halt {
            self.previous = loss;
        }
        match (halt, self.tol) {
            (Halt::NonFinite { .. }, _) => Some(halt),
            (Halt::Tolerance { delta }, Some(tol)) if delta < tol => Some(halt),
            _ => None,
        }
    }
}

impl Halt {
    /// Why a step whose loss is `loss`, after `previous`, would halt: a non-finite loss,
    /// or else the change that seed 000's rule compares with tol. The GPU decides on the
    /// device and reports only *that* it halted; its session names the reason with this.
    ///
    /// Training runs in f32, so a loss beyond f32's range counts as non-finite even when
    /// the reference kernels, which sum in f64, could still represent it: CPU and GPU then
    /// halt on the same condition.
    pub fn of(loss: f64, previous: f64) -> Halt {
        if (loss as f32).is_finite() {
            Halt::Tolerance {
                delta: (loss - previous).abs(),
            }
        } else {
            Halt::NonFinite { loss }
        }
    }
}
