//! What a fit reports.

use std::time::Duration;

use super::Choices;

/// Why training stopped. Serialises (JSON) as `{"reason": "tolerance", "step": …}`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// All configured epochs ran (L-BFGS: its iteration cap).
    MaxEpochs,
    /// L-BFGS: the gradient's largest entry fell to the tolerance.
    Converged {
        /// Iterations run.
        iterations: usize,
        /// ‖g‖∞ at the end (of the solver's objective; see [`crate::Solver::Lbfgs`]).
        gradient: f64,
    },
    /// L-BFGS: no step lowers the loss any more at `f32` precision (the model holds the
    /// best point found).
    Stalled {
        /// Iterations run.
        iterations: usize,
        /// ‖g‖∞ at the end.
        gradient: f64,
    },
    /// Seed 000's rule fired: `|loss − previous| < tol` at this step, before its update.
    Tolerance {
        /// Global step (0-based).
        step: u64,
        /// The loss change that was below tol.
        delta: f64,
    },
    /// The held-out loss stopped improving ([`EarlyStopping`](super::EarlyStopping)); the
    /// model holds the parameters of `best_epoch`.
    EarlyStopping {
        /// The epoch (0-based) after which the fit stopped.
        epoch: usize,
        /// The epoch whose parameters were kept.
        best_epoch: usize,
        /// Its validation loss.
        best: f64,
    },
    /// The epoch loss stopped improving ([`NoImprovement`](super::NoImprovement)).
    NoImprovement {
        /// The epoch (0-based) after which the fit stopped.
        epoch: usize,
        /// The best epoch loss.
        best: f64,
    },
    /// [`Solver::Normal`](crate::Solver::Normal): the normal equations were solved.
    Solved {
        /// The numerical rank of `X̃ᵀSX̃` (p + 1: full rank, solved by Cholesky; less: the
        /// minimum-norm least-squares solution).
        rank: usize,
        /// Its 2-norm condition number (∞ when singular).
        condition: f64,
    },
}

impl std::fmt::Display for StopReason {
    /// One phrase: `all epochs ran`, `stopped by tol at step 125 (|Δloss| = 7.30e-9)`, …
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StopReason::MaxEpochs => write!(f, "all epochs ran"),
            StopReason::Converged {
                iterations,
                gradient,
            } => write!(
                f,
                "converged in {iterations} iterations (max |gradient| {gradient:.2e})"
            ),
            StopReason::Stalled {
                iterations,
                gradient,
            } => write!(
                f,
                "no further decrease at f32 precision after {iterations} iterations (max |gradient| {gradient:.2e})"
            ),
            StopReason::Tolerance { step, delta } => {
                write!(f, "stopped by tol at step {step} (|Δloss| = {delta:.2e})")
            }
            StopReason::EarlyStopping {
                epoch,
                best_epoch,
                best,
            } => write!(
                f,
                "early stopping after epoch {epoch}: kept epoch {best_epoch} (held-out loss {best:.4e})"
            ),
            StopReason::NoImprovement { epoch, best } => write!(
                f,
                "no improvement: stopped after epoch {epoch} (best loss {best:.4e})"
            ),
            StopReason::Solved { rank, condition } => write!(
                f,
                "solved in closed form (rank {rank}, condition number {condition:.2e})"
            ),
        }
    }
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
    /// The learning rate of each epoch's last update (the schedule at work).
    pub epoch_lrs: Vec<f64>,
    /// Early stopping: the held-out loss after each epoch (empty otherwise).
    pub validation_losses: Vec<f64>,
    /// Every batch loss, when `record_steps` was set.
    pub step_losses: Vec<f64>,
    /// Updates applied.
    pub steps: u64,
    /// Rows processed (a row counts once per epoch it is used in).
    pub samples: u64,
    /// Why it stopped.
    pub stop: StopReason,
    /// Whether the fit converged: a stopping rule (L-BFGS's gradient test, the epoch
    /// loss's plateau, early stopping, seed 000's `tol`) ended it, rather than the epoch
    /// cap. A fit asked to run a fixed number of epochs with no rule is `false`.
    pub converged: bool,
    /// The solver, optimizer, rate, penalty and epoch cap the fit ran with.
    pub choices: Choices,
    /// What the trainer decided on its own that a user should know (a backend fallback,
    /// a rate backed off), one line each; the library never prints.
    pub notes: Vec<String>,
    /// Wall time of the training loop (set-up included, data generation not).
    pub wall: Duration,
    /// The part of `wall` before the first step: the choices the config left open (a
    /// rate from the curvature), the session or evaluator (buffers, the upload to the
    /// device). Pipelines a fresh device has not built yet compile on other threads
    /// meanwhile; what is left of that when the first step needs them falls after.
    pub setup: Duration,
    /// Verify mode: the largest GPU-vs-CPU deviation seen per tensor (empty otherwise).
    pub verify: Vec<Deviation>,
    /// How the data were held: `in-memory` (CPU, read in place), `resident` (GPU,
    /// uploaded once) or `streaming` (gathered batch group by group, either backend).
    pub mode: String,
    /// Data bytes written to the device: the resident dataset and every epoch's order,
    /// or every streamed batch (parameters not counted).
    pub bytes_to_device: u64,
    /// GPU: compute dispatches recorded (a step's ops, including the fused loss and one
    /// update per parameter); 0 on the CPU.
    pub dispatches: u64,
    /// GPU: queue submissions (many steps each; 0 on the CPU).
    pub submissions: u64,
    /// Streaming: time the worker thread spent gathering rows (reading the source).
    pub gather_time: Duration,
    /// Overlap, upload side: time the host waited for the streaming worker to gather a
    /// batch (the device starved of data).
    pub upload_wait: Duration,
    /// Overlap, device side: time the host waited for the device (a ring slot still
    /// being read, loss readbacks).
    pub gpu_wait: Duration,
    /// Ranks of a distributed fit (1 alone).
    pub ranks: usize,
    /// A distributed fit: the collectives run (one all-reduce per step, or per average
    /// with local SGD, or per L-BFGS evaluation, and a few at the start and each epoch's
    /// end) and the time spent in them, waiting for the slowest rank included.
    pub all_reduces: u64,
    /// See [`Report::all_reduces`].
    pub all_reduce_time: Duration,
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

/// The lengths of a report's per-epoch records at one point of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Marks {
    epochs: usize,
    validation: usize,
    step_losses: usize,
    steps: u64,
    samples: u64,
}

impl Report {
    /// Where the report's records stand now.
    pub(crate) fn marks(&self) -> Marks {
        Marks {
            epochs: self.epoch_losses.len(),
            validation: self.validation_losses.len(),
            step_losses: self.step_losses.len(),
            steps: self.steps,
            samples: self.samples,
        }
    }

    /// Forgets what was recorded after `m` (the epochs a backed-off fit goes back over).
    pub(crate) fn rewind(&mut self, m: Marks) {
        self.epoch_losses.truncate(m.epochs);
        self.epoch_lrs.truncate(m.epochs);
        self.validation_losses.truncate(m.validation);
        self.step_losses.truncate(m.step_losses);
        self.steps = m.steps;
        self.samples = m.samples;
        self.stop = StopReason::MaxEpochs;
    }

    /// Copies a session's data movement into the report.
    pub(crate) fn set_traffic(&mut self, t: super::session::Traffic) {
        self.mode = t.mode.to_string();
        self.bytes_to_device = t.bytes;
        self.dispatches = t.dispatches;
        self.submissions = t.submissions;
        self.gather_time = t.gather;
        self.upload_wait = t.upload_wait;
        self.gpu_wait = t.gpu_wait;
    }

    /// An empty report for `model` on `backend`, before any epoch.
    pub(crate) fn new(model: &'static str, backend: String, choices: Choices) -> Self {
        Report {
            model,
            backend,
            epoch_losses: Vec::new(),
            epoch_lrs: Vec::new(),
            validation_losses: Vec::new(),
            step_losses: Vec::new(),
            steps: 0,
            samples: 0,
            stop: StopReason::MaxEpochs,
            converged: false,
            choices,
            notes: Vec::new(),
            wall: Duration::ZERO,
            setup: Duration::ZERO,
            verify: Vec::new(),
            mode: String::new(),
            bytes_to_device: 0,
            dispatches: 0,
            submissions: 0,
            gather_time: Duration::ZERO,
            upload_wait: Duration::ZERO,
            gpu_wait: Duration::ZERO,
            ranks: 1,
            all_reduces: 0,
            all_reduce_time: Duration::ZERO,
        }
    }

    /// The last epoch's mean loss (NaN when no epoch completed).
    pub fn final_loss(&self) -> f64 {
        self.epoch_losses.last().copied().unwrap_or(f64::NAN)
    }

    /// Throughput: rows processed per second of wall time.
    pub fn samples_per_sec(&self) -> f64 {
        self.samples as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The overlap figure of a streaming fit: how much of the shorter of the two
    /// activities — the worker gathering rows (`gather_time`) and the backend computing
    /// (`wall − upload_wait`) — ran concurrently with the other:
    ///
    /// `overlap = (gather_time − upload_wait) / min(gather_time, wall − upload_wait)`
    ///
    /// 1 means perfect pipelining (the fit took as long as the slower activity alone); 0
    /// means none (the backend waited for every gather, as if the two ran in turn). `None`
    /// when nothing was gathered (in-memory and resident fits).
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::LinearRegression, TrainConfig, Trainer};
    /// let rows = Synthetic::linear(20_000, 16).seed(1);
    /// let report = Trainer::new(TrainConfig::sgd().batch_size(500).epochs(1))?
    ///     .fit(&mut LinearRegression::new(), &rows)?;
    /// let overlap = report.overlap().expect("a generator is streamed");
    /// assert!((0.0..=1.0).contains(&overlap));
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn overlap(&self) -> Option<f64> {
        let gather = self.gather_time.as_secs_f64();
        let wait = self.upload_wait.as_secs_f64();
        let compute = self.wall.as_secs_f64() - wait;
        let shorter = gather.min(compute);
        (gather > 0.0).then(|| {
            if shorter <= 0.0 {
                0.0
            } else {
                ((gather - wait) / shorter).clamp(0.0, 1.0)
            }
        })
    }
}
