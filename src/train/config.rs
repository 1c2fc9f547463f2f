//! Training configuration, validated once when the [`Trainer`](super::Trainer) is built.

use super::optim::{Optimizer, Penalty, Schedule};
use crate::data::{ClassWeight, Shuffle};
pub use crate::engine::CpuKernels;
use crate::error::{Error, Result};

/// Hyper-parameters of a gradient-descent fit.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `batch_size` | 32 | rows per update: 1 = stochastic GD, ≥ n = full-batch GD |
/// | `learning_rate` | 0.1 | step size η (seed 000's default) |
/// | `epochs` | 100 | passes over the data (seed 000's `max_iter`) |
/// | `shuffle` | `Full` | row order of each epoch: `Off`, `Full` (a fresh permutation), or `Windowed` (out-of-core; see [`Shuffle`]); `true`/`false` convert |
/// | `seed` | 0 | seeds the shuffles and the initialisation |
/// | `drop_last` | false | drop the last partial batch (the seeds' loop does; PyTorch does not by default) |
/// | `tol` | None | seed 000's rule: stop when \|loss − previous batch loss\| < tol |
/// | `record_steps` | false | keep every batch loss in the report, not only epoch means |
/// | `backend` | `Cpu` | where to train: `Cpu`, `Gpu`, or `Auto` (GPU when an adapter exists) |
/// | `cpu_kernels` | `Fast` | the CPU's kernels: `Fast` (fused `f32`, sgemm, threads) or `Reference` (the `f64`-summing oracle; see [`CpuKernels`]) |
/// | `loss_every` | None | read the loss back every k steps (None: once per epoch) |
/// | `verify` | None | rerun GPU steps on the CPU twin and compare (see [`Verify`]) |
/// | `mode` | `Auto` | GPU data: `Resident`, `Streaming`, or `Auto` (resident when it fits `device_budget`) |
/// | `device_budget` | None | bytes the data may take on the device (None: half of `max_buffer_size`, at most 4 storage bindings) |
/// | `ring_depth` | 3 | streaming: slots in flight (≥ 2), each one group of batches |
/// | `fuse_steps` | true | GPU: run a linear or logistic regression's SGD steps many to a dispatch (one workgroup, weights in workgroup memory) where the data are resident, unweighted and p ≤ 1024, with no penalty and no verify mode; `false`: one dispatch per op |
/// | `optimizer` | `Sgd` | `Sgd`, `Momentum`, `Adam`, `AdaGrad` (see [`Optimizer`]) |
/// | `penalty` | `None` | `L2`, `L1`, `ElasticNet` on the weights (see [`Penalty`]) |
/// | `schedule` | `Constant` | learning-rate schedule (see [`Schedule`]) |
/// | `class_weight` | None | weigh each class's rows (see [`ClassWeight`]); sample weights go to [`Trainer::fit_weighted`](super::Trainer::fit_weighted) |
/// | `standardize` | false | fit mean 0 / variance 1 per feature on the training data, train on it, keep it with the model for predictions |
/// | `early_stopping` | None | hold out a seeded share of the rows; stop when their loss stops improving; keep the best parameters |
/// | `no_improvement` | None | stop when the epoch loss stops improving (scikit-learn's `n_iter_no_change`) |
/// | `upload_batches` | None | streaming: batches gathered and uploaded together (None: about 4 MiB per upload, at most 32 batches) |
///
/// # Example
/// ```
/// use gradflow::{TrainConfig, Trainer};
/// // Seed 000's lr_gradient_descent(X, y, batch_size=3, max_iter=1000):
/// let seed_loop = TrainConfig::default().batch_size(3).epochs(1000).drop_last(true).tol(1e-8);
/// assert!(Trainer::new(seed_loop).is_ok());
/// let err = Trainer::new(TrainConfig::default().batch_size(0)).unwrap_err();
/// assert_eq!(err.to_string(), "batch_size 0: must be ≥ 1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Rows per update.
    pub batch_size: usize,
    /// Step size η.
    pub learning_rate: f64,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Row order of each epoch.
    pub shuffle: Shuffle,
    /// Seed of shuffles and initialisation.
    pub seed: u64,
    /// Drop the last partial batch.
    pub drop_last: bool,
    /// Seed 000's stopping tolerance on consecutive batch losses.
    pub tol: Option<f64>,
    /// Record every batch loss.
    pub record_steps: bool,
    /// Where to train.
    pub backend: Backend,
    /// Which kernels the CPU backend runs.
    pub cpu_kernels: CpuKernels,
    /// Read the loss back every k steps (None: once per epoch). Only the GPU waits for
    /// it; smaller k means more synchronisation, not different results.
    pub loss_every: Option<usize>,
    /// Verify mode (GPU only).
    pub verify: Option<Verify>,
    /// How a GPU fit holds the data.
    pub mode: Mode,
    /// Device bytes the data may take (features + targets resident, or the ring's slots).
    pub device_budget: Option<u64>,
    /// Streaming: slots in flight on the device (and host buffers ahead).
    pub ring_depth: usize,
    /// GPU: many SGD steps of a linear or logistic regression to one dispatch.
    pub fuse_steps: bool,
    /// Streaming: consecutive batches per upload (None: automatic).
    pub upload_batches: Option<usize>,
    /// How gradients become updates.
    pub optimizer: Optimizer,
    /// Penalty on the weights.
    pub penalty: Penalty,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Stop on a plateau of the epoch loss.
    pub no_improvement: Option<NoImprovement>,
    /// Per-class loss weights (classifiers).
    pub class_weight: Option<ClassWeight>,
    /// Early stopping on held-out rows.
    pub early_stopping: Option<EarlyStopping>,
    /// Standardise the features (see [`Standardizer`](crate::data::Standardizer)).
    pub standardize: bool,
}

/// scikit-learn's `early_stopping=True`: `validation_fraction` of the rows (a seeded
/// choice) are held out of training; after each epoch their loss is measured with the
/// CPU reference kernels; the fit stops after `patience` epochs without an improvement
/// of at least `tol`, and the model keeps the parameters of its best epoch.
///
/// ```
/// use gradflow::{EarlyStopping, TrainConfig};
/// let cfg = TrainConfig::default().early_stopping(EarlyStopping::default());
/// assert_eq!(cfg.early_stopping.unwrap().validation_fraction, 0.1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Share of the rows held out, in (0, 1).
    pub validation_fraction: f64,
    /// Epochs without improvement before stopping (≥ 1).
    pub patience: usize,
    /// Improvement of the validation loss that counts (≥ 0).
    pub tol: f64,
}

impl Default for EarlyStopping {
    /// scikit-learn's `SGDClassifier` defaults: 0.1, 5, 1e-3.
    fn default() -> Self {
        EarlyStopping {
            validation_fraction: 0.1,
            patience: 5,
            tol: 1e-3,
        }
    }
}

/// scikit-learn's `n_iter_no_change` rule: stop when `epochs` consecutive epochs each fail
/// to bring the epoch loss below the best so far minus `tol`.
///
/// ```
/// use gradflow::{NoImprovement, TrainConfig};
/// let cfg = TrainConfig::default().no_improvement(NoImprovement { epochs: 5, tol: 1e-3 });
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoImprovement {
    /// Epochs without improvement before stopping (≥ 1; scikit-learn's 5).
    pub epochs: usize,
    /// Improvement that counts (≥ 0; scikit-learn's 1e-3).
    pub tol: f64,
}

/// How a GPU fit holds the dataset.
///
/// ```
/// use gradflow::{Mode, TrainConfig};
/// // 8 MiB for the data: a larger dataset streams through 4 batch slots.
/// let cfg = TrainConfig::default().mode(Mode::Auto).device_budget(8 << 20).ring_depth(4);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Resident when features + targets fit the device budget, else streaming.
    #[default]
    Auto,
    /// Uploaded once; each epoch uploads only its permutation; kernels gather by index.
    Resident,
    /// A host worker gathers upcoming batches into a ring of device slots.
    Streaming,
}

/// Where a fit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The CPU reference kernels.
    #[default]
    Cpu,
    /// The GPU (wgpu); an error when no adapter exists.
    Gpu,
    /// The GPU when an adapter exists and the dataset fits it, else the CPU, with a
    /// one-line notice on standard error saying so.
    Auto,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            "auto" => Ok(Backend::Auto),
            _ => Err(Error::param("backend", s, "must be cpu, gpu or auto")),
        }
    }
}

/// Verify mode: every `every`-th GPU step is rerun by the CPU reference kernels from the
/// same parameters, and the loss, every gradient and every updated parameter are compared
/// with `|gpu − cpu| ≤ max(rtol · max(|gpu|, |cpu|), atol)`. The largest deviations per
/// tensor go into [`Report::verify`](super::Report::verify); a deviation past the
/// tolerance stops training with [`Error::VerifyMismatch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verify {
    /// Check every k-th step (1: every step).
    pub every: usize,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance, for values near zero.
    pub atol: f64,
}

impl Default for Verify {
    /// Every step, rtol 1e-4, atol 1e-6: f32 sums of a few hundred terms in another order
    /// differ by ~1e-6 relative, so these leave a 100× margin and still catch a wrong
    /// index or a missed element (which is off by O(1)).
    fn default() -> Self {
        Verify {
            every: 1,
            rtol: 1e-4,
            atol: 1e-6,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 32,
            learning_rate: 0.1,
            epochs: 100,
            shuffle: Shuffle::Full,
            seed: 0,
            drop_last: false,
            tol: None,
            record_steps: false,
            backend: Backend::Cpu,
            cpu_kernels: CpuKernels::Fast,
            loss_every: None,
            verify: None,
            mode: Mode::Auto,
            device_budget: None,
            ring_depth: 3,
            fuse_steps: true,
            upload_batches: None,
            optimizer: Optimizer::Sgd,
            penalty: Penalty::None,
            schedule: Schedule::Constant,
            no_improvement: None,
            class_weight: None,
            early_stopping: None,
            standardize: false,
        }
    }
}

impl TrainConfig {
    /// Sets `batch_size`.
    pub fn batch_size(mut self, v: usize) -> Self {
        self.batch_size = v;
        self
    }
    /// Sets `learning_rate`.
    pub fn learning_rate(mut self, v: f64) -> Self {
        self.learning_rate = v;
        self
    }
    /// Sets `epochs`.
    pub fn epochs(mut self, v: usize) -> Self {
        self.epochs = v;
        self
    }
    /// Sets `shuffle`: a [`Shuffle`], or `true` / `false`.
    ///
    /// ```
    /// use gradflow::{data::Shuffle, TrainConfig};
    /// let in_order = TrainConfig::default().shuffle(false);
    /// // A file larger than RAM: chunks of 4096 rows, shuffled within windows of 64 chunks.
    /// let out_of_core = TrainConfig::default()
    ///     .shuffle(Shuffle::Windowed { chunk_rows: 4096, window_chunks: 64 });
    /// # assert!(in_order.validate().is_ok() && out_of_core.validate().is_ok());
    /// ```
    pub fn shuffle(mut self, v: impl Into<Shuffle>) -> Self {
        self.shuffle = v.into();
        self
    }
    /// Sets `seed`.
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }
    /// Sets `drop_last`.
    pub fn drop_last(mut self, v: bool) -> Self {
        self.drop_last = v;
        self
    }
    /// Sets `tol` (seed 000's stopping rule).
    pub fn tol(mut self, v: f64) -> Self {
        self.tol = Some(v);
        self
    }
    /// Sets `record_steps`.
    pub fn record_steps(mut self, v: bool) -> Self {
        self.record_steps = v;
        self
    }

    /// Sets `backend`.
    pub fn backend(mut self, v: Backend) -> Self {
        self.backend = v;
        self
    }
    /// Sets `loss_every`.
    pub fn loss_every(mut self, k: usize) -> Self {
        self.loss_every = Some(k);
        self
    }
    /// Sets `verify`.
    pub fn verify(mut self, v: Verify) -> Self {
        self.verify = Some(v);
        self
    }

    /// Sets `cpu_kernels`.
    pub fn cpu_kernels(mut self, v: CpuKernels) -> Self {
        self.cpu_kernels = v;
        self
    }

    /// Sets `mode`.
    pub fn mode(mut self, v: Mode) -> Self {
        self.mode = v;
        self
    }
    /// Sets `device_budget` in bytes.
    pub fn device_budget(mut self, bytes: u64) -> Self {
        self.device_budget = Some(bytes);
        self
    }
    /// Sets `fuse_steps`.
    pub fn fuse_steps(mut self, v: bool) -> Self {
        self.fuse_steps = v;
        self
    }
    /// Sets `ring_depth`.
    pub fn ring_depth(mut self, v: usize) -> Self {
        self.ring_depth = v;
        self
    }
    /// Sets `optimizer`.
    pub fn optimizer(mut self, v: Optimizer) -> Self {
        self.optimizer = v;
        self
    }
    /// Sets `penalty`.
    pub fn penalty(mut self, v: Penalty) -> Self {
        self.penalty = v;
        self
    }
    /// Sets `schedule`.
    pub fn schedule(mut self, v: Schedule) -> Self {
        self.schedule = v;
        self
    }
    /// Sets `standardize`: the trainer fits a
    /// [`Standardizer`](crate::data::Standardizer) on the data (a `partial_fit` keeps the
    /// model's), trains on standardised features, and stores it in the model, whose
    /// predictions then standardise their inputs the same way.
    pub fn standardize(mut self, v: bool) -> Self {
        self.standardize = v;
        self
    }
    /// Sets `early_stopping`.
    pub fn early_stopping(mut self, v: EarlyStopping) -> Self {
        self.early_stopping = Some(v);
        self
    }
    /// Sets `class_weight`.
    pub fn class_weight(mut self, v: ClassWeight) -> Self {
        self.class_weight = Some(v);
        self
    }
    /// Sets `no_improvement`.
    pub fn no_improvement(mut self, v: NoImprovement) -> Self {
        self.no_improvement = Some(v);
        self
    }
    /// Sets `upload_batches`: how many consecutive batches a streaming fit gathers and
    /// uploads together (more: fewer, larger uploads and submissions; fewer: less memory
    /// in flight).
    pub fn upload_batches(mut self, v: usize) -> Self {
        self.upload_batches = Some(v);
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad field and its value.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::param("batch_size", 0, "must be ≥ 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::param(
                "learning_rate",
                self.learning_rate,
                "must be finite and > 0",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::param("epochs", 0, "must be ≥ 1"));
        }
        if let Some(tol) = self.tol
            && !(tol.is_finite() && tol >= 0.0)
        {
            return Err(Error::param("tol", tol, "must be finite and ≥ 0"));
        }
        if self.ring_depth < 2 {
            return Err(Error::param(
                "ring_depth",
                self.ring_depth,
                "must be ≥ 2 (one slot uploading while another is read)",
            ));
        }
        if self.upload_batches == Some(0) {
            return Err(Error::param("upload_batches", 0, "must be ≥ 1"));
        }
        self.shuffle.validate()?;
        self.optimizer.validate()?;
        self.penalty.validate()?;
        self.schedule.validate(self.learning_rate)?;
        if let Some(e) = self.early_stopping {
            if !(e.validation_fraction > 0.0 && e.validation_fraction < 1.0) {
                return Err(Error::param(
                    "validation_fraction",
                    e.validation_fraction,
                    "must be in (0, 1)",
                ));
            }
            if e.patience == 0 {
                return Err(Error::param("patience", 0, "must be ≥ 1 epoch"));
            }
            if !(e.tol.is_finite() && e.tol >= 0.0) {
                return Err(Error::param(
                    "early_stopping.tol",
                    e.tol,
                    "must be finite and ≥ 0",
                ));
            }
        }
        if let Some(NoImprovement { epochs, tol }) = self.no_improvement {
            if epochs == 0 {
                return Err(Error::param("no_improvement.epochs", 0, "must be ≥ 1"));
            }
            if !(tol.is_finite() && tol >= 0.0) {
                return Err(Error::param(
                    "no_improvement.tol",
                    tol,
                    "must be finite and ≥ 0",
                ));
            }
        }
        if self.device_budget == Some(0) {
            return Err(Error::param("device_budget", 0, "must be ≥ 1 byte"));
        }
        if self.loss_every == Some(0) {
            return Err(Error::param("loss_every", 0, "must be ≥ 1"));
        }
        if let Some(v) = self.verify {
            if v.every == 0 {
                return Err(Error::param("verify.every", 0, "must be ≥ 1"));
            }
            if !(v.rtol.is_finite() && v.rtol >= 0.0 && v.atol.is_finite() && v.atol >= 0.0) {
                return Err(Error::param(
                    "verify tolerance",
                    format!("rtol {} atol {}", v.rtol, v.atol),
                    "must be finite and ≥ 0",
                ));
            }
            if self.backend == Backend::Cpu {
                return Err(Error::param(
                    "verify",
                    "with backend cpu",
                    "needs backend gpu or auto (it checks GPU steps against the CPU)",
                ));
            }
        }
        Ok(())
    }
}
