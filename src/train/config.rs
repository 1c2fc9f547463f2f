//! Training configuration, validated once when the [`Trainer`](super::Trainer) is built.

use super::optim::{Optimizer, Penalty, Schedule};
pub use crate::cpu::kernels::CpuKernels;
use crate::data::{ClassWeight, Shuffle};
use crate::error::{Error, Result};

/// The most epochs a GPU fit may queue ahead ([`TrainConfig::epochs_ahead`]).
pub(crate) const MAX_EPOCHS_AHEAD: usize = 64;

/// Hyper-parameters of a fit.
///
/// **Two starting points.** [`TrainConfig::default()`] leaves the choices that depend on
/// the model and the data to the trainer, as scikit-learn's estimators do, so that a fit
/// with no other setting converges to a good model; [`TrainConfig::sgd()`] is the plain
/// mini-batch loop of the course notes (fixed rate 0.1, exactly `epochs` epochs, no
/// scaling, no penalty), the one the seeds' examples and the benchmarks spell out.
///
/// | field | `default()` | `sgd()` | meaning |
/// |---|---|---|---|
/// | `solver` | `Auto` | `Sgd` | full-batch L-BFGS or the mini-batch loop (see [`Solver`]) |
/// | `batch_size` | 32 | 32 | rows per update: 1 = stochastic GD, ≥ n = full-batch GD |
/// | `learning_rate` | None | 0.1 | step size η; None: chosen from the data (see [`TrainConfig::learning_rate`]) |
/// | `epochs` | None | 100 | the most passes over the data (L-BFGS: iterations); None: 1000 for the linear models, 200 for the MLP (more on small data: enough for 20,000 updates) |
/// | `optimizer` | None | `Sgd` | None: Adam for the MLP, SGD for the linear models |
/// | `penalty` | None | `None` | None: L2 with α = 1/n for logistic and softmax regression (scikit-learn's `C = 1`), none otherwise |
/// | `standardize` | true | false | fit mean 0 / variance 1 per feature on the training data, train on it, keep it with the model for predictions |
/// | `no_improvement` | 10 epochs, tol 10⁻⁴ | None | stop when the epoch loss stops improving (scikit-learn's `n_iter_no_change`); None: run every epoch |
/// | `shuffle` | `Full` | `Full` | row order of each epoch: `Off`, `Full` (a fresh permutation), or `Windowed` (out-of-core; see [`Shuffle`]); `true`/`false` convert |
/// | `seed` | 0 | 0 | seeds the shuffles and the initialisation |
/// | `drop_last` | false | false | drop the last partial batch (the seeds' loop does; PyTorch does not by default) |
/// | `tol` | None | None | seed 000's rule: stop when \|loss − previous batch loss\| < tol |
/// | `record_steps` | false | false | keep every batch loss in the report, not only epoch means |
/// | `backend` | `Cpu` | `Cpu` | where to train: `Cpu`, `Gpu`, or `Auto` (a hardware GPU when one exists) |
/// | `cpu_kernels` | `Fast` | `Fast` | the CPU's kernels: `Fast` (fused `f32`, sgemm, threads) or `Reference` (the `f64`-summing oracle; see [`CpuKernels`]) |
/// | `loss_every` | None | None | read the loss back every k steps (None: once per epoch) |
/// | `verify` | None | None | rerun GPU steps on the CPU twin and compare (see [`Verify`]) |
/// | `mode` | `Auto` | `Auto` | GPU data: `Resident`, `Streaming`, or `Auto` (resident when it fits `device_budget`) |
/// | `device_budget` | None | None | bytes the data may take on the device (None: half of `max_buffer_size`, at most 4 storage bindings) |
/// | `ring_depth` | 3 | 3 | streaming: slots in flight (≥ 2), each one group of batches |
/// | `fuse_steps` | true | true | GPU: run a linear or logistic regression's SGD steps many to a dispatch (one workgroup, weights in workgroup memory) where the data are resident, unweighted and p ≤ 1024, with no penalty and no verify mode; elsewhere its loss and gradients in one pass over the rows (`glm_grad.wgsl`, p ≤ 1024); a two-layer MLP: its step as two fused passes where the adapter's tuning chose them, and a small one's SGD steps many to a dispatch (parameters and gradients in workgroup memory) where the tuning chose that, under the many-step GLM kernel's conditions; every model: the bias add, activation and activation backward after a product folded into its store; `false`: one dispatch per op |
/// | `epochs_ahead` | None | None | GPU: epochs queued before the host has read the one before them, so that the device is not idle while the host decides (the results are the same bits); None: on a hardware adapter, 2 once an epoch takes under 5 ms, else 0 (a software adapter computes on the host's cores: nothing to overlap); resident data in one process only |
/// | `schedule` | `Constant` | `Constant` | learning-rate schedule (see [`Schedule`]) |
/// | `class_weight` | None | None | weigh each class's rows (see [`ClassWeight`]); sample weights go to [`Trainer::fit_weighted`](super::Trainer::fit_weighted) |
/// | `early_stopping` | None | None | hold out a seeded share of the rows; stop when their loss stops improving; keep the best parameters |
/// | `upload_batches` | None | None | streaming: batches gathered and uploaded together (None: about 4 MiB per upload, at most 32 batches) |
///
/// What the trainer chose for the fields left to it is in
/// [`Report::choices`](super::Report::choices).
///
/// # Example
/// ```
/// use gradflow::{TrainConfig, Trainer};
/// // Seed 000's lr_gradient_descent(X, y, batch_size=3, max_iter=1000):
/// let seed_loop = TrainConfig::sgd().batch_size(3).epochs(1000).drop_last(true).tol(1e-8);
/// assert!(Trainer::new(seed_loop).is_ok());
/// let err = Trainer::new(TrainConfig::default().batch_size(0)).unwrap_err();
/// assert_eq!(err.to_string(), "batch_size 0: must be ≥ 1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Full-batch L-BFGS, the mini-batch loop, or the trainer's choice.
    pub solver: Solver,
    /// Rows per update.
    pub batch_size: usize,
    /// Step size η (None: chosen from the data).
    pub learning_rate: Option<f64>,
    /// The most epochs (None: the model's default).
    pub epochs: Option<usize>,
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
    /// GPU: epochs queued ahead of the host's reads (None: automatic).
    pub epochs_ahead: Option<usize>,
    /// Streaming: consecutive batches per upload (None: automatic).
    pub upload_batches: Option<usize>,
    /// How gradients become updates (None: chosen per model).
    pub optimizer: Option<Optimizer>,
    /// Penalty on the weights (None: chosen per model).
    pub penalty: Option<Penalty>,
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
    /// A distributed fit: all-reduce the gradients every step (1, the default:
    /// synchronous data parallelism), or let each rank step on its own part of each batch
    /// and average the parameters every `sync_every` steps (local SGD).
    pub sync_every: usize,
}

/// scikit-learn's `early_stopping=True`: `validation_fraction` of the rows (a seeded
/// choice) are held out of training; after each epoch their loss is measured with the
/// CPU reference kernels; the fit stops after `patience` epochs without an improvement
/// of at least `tol · max(1, |best|)` (see [`NoImprovement`]), and the model keeps the
/// parameters of its best epoch.
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
/// to bring the epoch loss below the best so far by `tol · max(1, |best|)`.
///
/// The improvement is relative to the loss once the loss is above 1 (SciPy's `ftol`
/// scaling), so a regression on targets in the thousands, whose squared error is in the
/// millions, stops too; for losses up to 1 — every classifier's near its optimum — it is
/// scikit-learn's absolute rule.
///
/// ```
/// use gradflow::{NoImprovement, TrainConfig};
/// let cfg = TrainConfig::sgd().no_improvement(NoImprovement { epochs: 5, tol: 1e-3 });
/// assert!(cfg.validate().is_ok());
/// assert_eq!(NoImprovement::default(), NoImprovement { epochs: 10, tol: 1e-4 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoImprovement {
    /// Epochs without improvement before stopping (≥ 1).
    pub epochs: usize,
    /// Improvement that counts (≥ 0).
    pub tol: f64,
}

impl Default for NoImprovement {
    /// scikit-learn's `MLPClassifier` defaults: 10 epochs, tol 10⁻⁴.
    fn default() -> Self {
        NoImprovement {
            epochs: 10,
            tol: 1e-4,
        }
    }
}

impl NoImprovement {
    /// Whether `loss` improves on `best` by the rule's margin.
    pub fn improves(&self, loss: f64, best: f64) -> bool {
        improves(loss, best, self.tol)
    }
}

/// The plateau rules' test (`no_improvement`, early stopping, the adaptive schedule):
/// `loss` counts as an improvement on `best` when it is lower by `tol · max(1, |best|)` —
/// scikit-learn's absolute `tol` for losses up to 1, relative above (SciPy's `ftol`
/// scaling), so that a squared error in the millions is held to the same standard.
pub(crate) fn improves(loss: f64, best: f64, tol: f64) -> bool {
    loss < best - tol * best.abs().max(1.0)
}

/// How the parameters are found.
///
/// `Auto` (the default) picks **the normal equations** ([`Solver::Normal`]) for linear
/// regression on data in memory with up to [`NORMAL_MAX_FEATURES`](crate::train::NORMAL_MAX_FEATURES)
/// features (the exact answer, at a cost near L-BFGS's there) unless
/// the backend is [`Backend::Gpu`] (the sums are formed on the CPU), and **full-batch
/// L-BFGS** for the other linear models (and for linear regression otherwise) on data in
/// memory: their losses are convex and smooth, L-BFGS needs no learning rate and converges
/// in tens of iterations to the optimum scikit-learn's `LogisticRegression` finds. It
/// picks the **mini-batch loop**
/// (`Sgd`, with the configured or chosen optimizer) for the MLP, for sources that are
/// streamed (a generator, a memory-mapped file), and whenever the configuration sets a
/// knob only the loop has: a learning rate, an optimizer, a schedule, early stopping,
/// seed 000's `tol`, `drop_last`, verify mode, an L1 / elastic-net penalty (not smooth), or no plateau
/// rule ([`TrainConfig::no_stop`]: exactly `epochs` epochs, which only the loop runs).
///
/// ```
/// use gradflow::{Solver, TrainConfig};
/// assert_eq!(TrainConfig::default().solver, Solver::Auto);
/// let exact = TrainConfig::default().solver(Solver::Lbfgs { memory: 20, max_iter: 500, tol: 1e-8 });
/// assert!(exact.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Solver {
    /// The normal equations or L-BFGS for the linear models on in-memory data, the
    /// mini-batch loop otherwise.
    #[default]
    Auto,
    /// The mini-batch loop: `batch_size`, `optimizer`, `learning_rate`, `schedule`.
    Sgd,
    /// Full-batch L-BFGS: loss and gradient over all rows per evaluation (on the CPU's
    /// fast kernels, or on the device with only the loss and the gradient read back),
    /// a strong-Wolfe line search, the penalty `None` or `L2`. The rows must be in
    /// memory (a [`Dataset`](crate::data::Dataset)): a streamed source is an
    /// [`Error::InvalidParameter`] naming the mini-batch loop as the way, since each
    /// evaluation would read it whole.
    Lbfgs {
        /// Correction pairs kept (SciPy's `maxcor`, 10).
        memory: usize,
        /// Iteration cap (scikit-learn's `max_iter`).
        max_iter: usize,
        /// Stop when the gradient's largest entry is ≤ tol (scikit-learn's `tol`, 10⁻⁴).
        tol: f64,
    },
    /// Linear regression's closed form (seed 001): the normal equations
    /// `(X̃ᵀSX̃ + (nα/2) I_w) θ = X̃ᵀSy` formed in `f64` in one pass over the rows (S the
    /// row weights; the ridge term for an `L2(α)` penalty, on the weights only) and solved
    /// by Cholesky, or by the SVD's minimum-norm least squares when singular or ill
    /// conditioned (the report's notes say so). The exact minimiser of the loss the other
    /// solvers descend, with no tolerance, as scikit-learn's `LinearRegression` and
    /// `Ridge` give it. Linear regression only, rows in memory (or each rank's share, the
    /// sums added over the ranks); formed on the CPU whatever the backend (the device has
    /// no `f64`).
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::LinearRegression, Solver, TrainConfig, Trainer};
    /// let data = Synthetic::linear(1_000, 3).weights(vec![1.0, -2.0, 0.5]).bias(3.0).noise(0.0).dataset()?;
    /// let mut model = LinearRegression::new();
    /// let config = TrainConfig::default().solver(Solver::Normal).standardize(false);
    /// let report = model.fit(&data, &Trainer::new(config)?)?;
    /// assert!(report.converged);
    /// assert!((model.bias().unwrap() - 3.0).abs() < 1e-5);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    Normal,
}

impl Solver {
    /// L-BFGS with SciPy's memory 10, 1000 iterations at most and scikit-learn's tol 10⁻⁴.
    pub fn lbfgs() -> Self {
        Solver::Lbfgs {
            memory: 10,
            max_iter: 1000,
            tol: 1e-4,
        }
    }

    /// Checks L-BFGS's settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for memory 0, max_iter 0, or a negative or non-finite tol.
    pub fn validate(&self) -> Result<()> {
        if let Solver::Lbfgs {
            memory,
            max_iter,
            tol,
        } = *self
        {
            if memory == 0 {
                return Err(Error::param("lbfgs memory", 0, "must be ≥ 1"));
            }
            if max_iter == 0 {
                return Err(Error::param("lbfgs max_iter", 0, "must be ≥ 1"));
            }
            if !(tol.is_finite() && tol >= 0.0) {
                return Err(Error::param("lbfgs tol", tol, "must be finite and ≥ 0"));
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Solver {
    type Err = Error;
    /// `auto`, `sgd` or `lbfgs` (with [`Solver::lbfgs`]'s settings).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Solver::Auto),
            "sgd" => Ok(Solver::Sgd),
            "lbfgs" => Ok(Solver::lbfgs()),
            _ => Err(Error::param("solver", s, "must be auto, sgd or lbfgs")),
        }
    }
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
    /// The CPU kernels.
    #[default]
    Cpu,
    /// The GPU (wgpu); an error when no adapter exists.
    Gpu,
    /// The GPU when a hardware adapter exists and the dataset fits it, else the CPU (the
    /// reason in [`Report::notes`](super::Report::notes)). A software adapter (device type
    /// `Cpu`: llvmpipe, lavapipe, WARP) runs the GPU kernels on the CPU's cores, far
    /// slower than the CPU backend, so `Auto` skips it unless `GRADFLOW_ADAPTER` names it.
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
    /// The trainer's choices: see the table on [`TrainConfig`].
    fn default() -> Self {
        TrainConfig {
            solver: Solver::Auto,
            learning_rate: None,
            epochs: None,
            optimizer: None,
            penalty: None,
            standardize: true,
            no_improvement: Some(NoImprovement::default()),
            ..TrainConfig::sgd()
        }
    }
}

impl TrainConfig {
    /// The plain mini-batch gradient-descent loop of the course notes: SGD at rate 0.1
    /// for exactly 100 epochs (unless a stopping rule is set), batches of 32, no
    /// standardisation, no penalty. Every setting is explicit, so a fit repeats the
    /// notes' arithmetic step for step.
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::LinearRegression, Optimizer, Solver, TrainConfig, Trainer};
    /// let cfg = TrainConfig::sgd().epochs(3);
    /// assert_eq!((cfg.solver, cfg.learning_rate, cfg.optimizer), (Solver::Sgd, Some(0.1), Some(Optimizer::Sgd)));
    /// let report = Trainer::new(cfg)?.fit(&mut LinearRegression::new(), &Synthetic::linear(256, 4).dataset()?)?;
    /// assert_eq!(report.epoch_losses.len(), 3);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn sgd() -> Self {
        TrainConfig {
            solver: Solver::Sgd,
            batch_size: 32,
            learning_rate: Some(0.1),
            epochs: Some(100),
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
            epochs_ahead: None,
            upload_batches: None,
            optimizer: Some(Optimizer::Sgd),
            penalty: Some(Penalty::None),
            schedule: Schedule::Constant,
            no_improvement: None,
            class_weight: None,
            early_stopping: None,
            standardize: false,
            sync_every: 1,
        }
    }

    /// Sets `solver`.
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::LogisticRegression, Solver, TrainConfig, Trainer};
    /// let data = Synthetic::logistic(2_000, 8).seed(1).dataset()?;
    /// let cfg = TrainConfig::default().solver(Solver::lbfgs());
    /// let report = Trainer::new(cfg)?.fit(&mut LogisticRegression::new(), &data)?;
    /// assert!(report.converged);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn solver(mut self, v: Solver) -> Self {
        self.solver = v;
        self
    }
    /// Sets `batch_size`.
    pub fn batch_size(mut self, v: usize) -> Self {
        self.batch_size = v;
        self
    }
    /// Sets `learning_rate`. Left unset, the trainer chooses it, so that no fit on
    /// finite data diverges: for the linear models trained by SGD or momentum, 1 / L̂ with
    /// L̂ the smoothness of the batch loss (a few power iterations for the largest
    /// eigenvalue of X̃ᵀX̃ / n on up to 16,384 sampled rows, X̃ = [X 1], and the largest
    /// row norm — of every row when the data are in memory — combined for the batch size
    /// as in Gower et al. 2019, *SGD: general analysis and improved rates*, Prop. 3.8,
    /// times the loss's curvature bound: 2 for MSE, ¼ for the logistic loss, ½ for
    /// softmax); for the MLP with SGD the larger of the same bound for its two layers (the
    /// features, and the hidden activations at the initial parameters); PyTorch's
    /// defaults for Adam (10⁻³) and AdaGrad (10⁻²), whose steps are bounded by the rate.
    /// A chosen rate also backs off: should a loss become non-finite, or an epoch's loss
    /// rise to twice the best epoch's and above the first's, the fit returns to the last
    /// good epoch's parameters and goes on at a quarter of the rate (up to 16 times;
    /// [`Report::choices`](super::Report::choices) counts them) — the net under a
    /// streamed source's outlier row that the sample did not see. An explicit rate is
    /// used as given, and a divergence is then [`Error::Diverged`].
    pub fn learning_rate(mut self, v: f64) -> Self {
        self.learning_rate = Some(v);
        self
    }
    /// Sets `epochs`: the most passes over the data (L-BFGS: iterations). A stopping rule
    /// (`no_improvement`, `early_stopping`, `tol`) may end the fit sooner; without one,
    /// exactly this many run.
    pub fn epochs(mut self, v: usize) -> Self {
        self.epochs = Some(v);
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
    /// Sets `sync_every`: local SGD in a distributed fit (see
    /// [`Trainer::with_comm`](crate::Trainer::with_comm)). Each rank updates its own copy
    /// of the parameters with the gradient of its part of each batch (a batch of `B / r`
    /// rows on each of `r` ranks) and the ranks average their parameters every `k` steps
    /// and at each epoch's end: one all-reduce per `k` steps instead of one per step, for
    /// slow networks, at the price of updates from smaller batches between averages
    /// (docs/SCALING.md measures it). The optimizer's tensors (momentum, Adam's moments)
    /// stay each rank's own. Seed 000's per-step `tol` rule needs the global loss of every
    /// step and is refused with `k > 1`; a non-finite loss is found at the next average.
    ///
    /// ```
    /// use gradflow::dist::LocalGroup;
    /// use gradflow::{data::Synthetic, model::LinearRegression, TrainConfig, Trainer};
    /// let rows = Synthetic::linear(4_000, 8).seed(1);
    /// let losses = LocalGroup::run(2, |comm| {
    ///     let cfg = TrainConfig::sgd().batch_size(64).epochs(3).sync_every(8);
    ///     Trainer::new(cfg)?.with_comm(comm).fit(&mut LinearRegression::new(), &rows)
    /// });
    /// let report = losses[0].as_ref().unwrap();
    /// assert!(report.final_loss() < 1e-2);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn sync_every(mut self, k: usize) -> Self {
        self.sync_every = k;
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
    /// Sets `epochs_ahead`: how many epochs a GPU fit queues before the host has read
    /// the one before them (0: none). While the host reads an epoch's losses and decides
    /// (the plateau rule, early stopping, an adaptive rate), the device already runs the
    /// next ones; when the decision is to stop, or the rates it queued were not the
    /// ones the decision gives, the device goes back to that epoch's end. Only the
    /// device's time differs: a full-batch fit is one step an epoch, and without this
    /// each step waits a round trip to the host.
    ///
    /// ```
    /// use gradflow::TrainConfig;
    /// let cfg = TrainConfig::sgd().batch_size(usize::MAX).epochs_ahead(4);
    /// assert_eq!(cfg.epochs_ahead, Some(4));
    /// ```
    pub fn epochs_ahead(mut self, v: usize) -> Self {
        self.epochs_ahead = Some(v);
        self
    }
    /// Sets `ring_depth`.
    pub fn ring_depth(mut self, v: usize) -> Self {
        self.ring_depth = v;
        self
    }
    /// Sets `optimizer`.
    pub fn optimizer(mut self, v: Optimizer) -> Self {
        self.optimizer = Some(v);
        self
    }
    /// Sets `penalty`.
    pub fn penalty(mut self, v: Penalty) -> Self {
        self.penalty = Some(v);
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
    /// Runs every epoch asked for: no `no_improvement` rule (`--no-stop`). Early stopping
    /// and seed 000's `tol`, when set, still apply.
    pub fn no_stop(mut self) -> Self {
        self.no_improvement = None;
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
        if let Some(lr) = self.learning_rate
            && !(lr.is_finite() && lr > 0.0)
        {
            return Err(Error::param("learning_rate", lr, "must be finite and > 0"));
        }
        if self.epochs == Some(0) {
            return Err(Error::param("epochs", 0, "must be ≥ 1"));
        }
        self.solver.validate()?;
        if let Some(tol) = self.tol
            && !(tol.is_finite() && tol >= 0.0)
        {
            return Err(Error::param("tol", tol, "must be finite and ≥ 0"));
        }
        if self.sync_every == 0 {
            return Err(Error::param("sync_every", 0, "must be ≥ 1 step"));
        }
        if self.sync_every > 1 && self.tol.is_some() {
            return Err(Error::param(
                "tol",
                "with sync_every > 1",
                "needs the global loss of every step: unset tol, or sync every step",
            ));
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
        if let Some(k) = self.epochs_ahead.filter(|&k| k > MAX_EPOCHS_AHEAD) {
            return Err(Error::param(
                "epochs_ahead",
                k,
                "must be at most 64 (each epoch ahead keeps a copy of the parameters)",
            ));
        }
        self.shuffle.validate()?;
        if let Some(o) = self.optimizer {
            o.validate()?;
        }
        if let Some(p) = self.penalty {
            p.validate()?;
        }
        // A chosen rate is checked against the schedule when it is chosen.
        self.schedule
            .validate(self.learning_rate.unwrap_or(f64::INFINITY))?;
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
