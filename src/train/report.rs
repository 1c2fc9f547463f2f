//! What a fit reports.

use std::time::Duration;

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopReason {
    /// All configured epochs ran.
    MaxEpochs,
    /// Seed 000's rule fired: `|loss − previous| < tol` at this step, before its update.
    Tolerance {
        /// Global step (0-based).
        step: u64,
        /// The loss change that was below tol.
        delta: f64,
    },
}

/// The outcome of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Which model was trained.
    pub model: &'static str,
    /// Which backend ran it (`cpu`).
    pub backend: String,
    /// Mean batch loss per epoch (weighted by batch size), one entry per epoch run.
    pub epoch_losses: Vec<f64>,
    /// Every batch loss, when `record_steps` was set.
    pub step_losses: Vec<f64>,
    /// Updates applied.
    pub steps: u64,
    /// Rows processed (a row counts once per epoch it is used in).
    pub samples: u64,
    /// Why it stopped.
    pub stop: StopReason,
    /// Wall time of the training loop (set-up included, data generation not).
    pub wall: Duration,
    /// Verify mode: the largest GPU-vs-CPU deviation seen per tensor (empty otherwise).
    pub verify: Vec<Deviation>,
    /// How the data were held: `cpu`, `resident` or `streaming`.
    pub mode: String,
    /// Data bytes written to the device: the resident dataset and every epoch's order,
    /// or every streamed batch (parameters not counted).
    pub bytes_to_device: u64,
    /// Overlap, upload side: time the host waited for the streaming worker to gather a
    /// batch (the device starved of data).
    pub upload_wait: Duration,
    /// Overlap, device side: time the host waited for the device (a ring slot still
    /// being read, loss readbacks).
    pub gpu_wait: Duration,
}

/// What a progress callback ([`Trainer::with_progress`](super::Trainer::with_progress))
/// is told at each sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Steps done in the whole fit.
    pub steps: u64,
    /// The latest batch loss.
    pub loss: f64,
    /// Rows per second so far.
    pub samples_per_sec: f64,
}

/// The largest deviation of one tensor between the GPU and its CPU twin in verify mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deviation {
    /// `loss`, `grad W`, `W`, …
    pub tensor: String,
    /// Largest `|gpu − cpu|`.
    pub max_abs: f64,
    /// Largest `|gpu − cpu| / max(|gpu|, |cpu|)`.
    pub max_rel: f64,
    /// Steps compared.
    pub checks: u64,
}

impl Report {
    /// The last epoch's mean loss (NaN when no epoch completed).
    pub fn final_loss(&self) -> f64 {
        self.epoch_losses.last().copied().unwrap_or(f64::NAN)
    }

    /// Throughput: rows processed per second of wall time.
    pub fn samples_per_sec(&self) -> f64 {
        self.samples as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}
