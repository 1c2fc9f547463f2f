//! The trainer: its public API (fit, fit_weighted, partial_fit), the features' scaling,
//! and the mini-batch fit around the epoch loop (`epochs.rs`) with its back-off; the
//! full-batch fit is in `full_batch.rs`, where a fit runs in `placement.rs`, early
//! stopping in `validation.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Scope;
use std::time::Instant;

use super::epochs::{Checkpoint, Ended, MAX_BACKOFFS, all_finite};
use super::optim::Stepper;
use super::validation::{Holdout, Watch};
use super::{Progress, RateFrom, Report, Solver, StopReason, TrainConfig, TrainState, auto};
use crate::data::{RowSource, RowWeights, Standardized, Standardizer};
use crate::dist::{Comm, Group};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::{Fitted, Model, init_params};

/// Runs gradient descent on a model. Built from a [`TrainConfig`], which is validated
/// once here, so a `Trainer` that exists is always valid.
///
/// One step on a batch is, as in seed 000's loop: forward pass and loss with the current
/// parameters; the stopping rule (when `tol` is set) and the divergence check, both
/// *before* the update; the backward pass and the update `θ ← θ − η ∂L/∂θ`.
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::Mlp, TrainConfig, Trainer};
/// let trainer = Trainer::new(TrainConfig::sgd().batch_size(16).epochs(3).seed(7))?;
/// let data = Synthetic::blobs(200, 2, 2).seed(1).dataset()?;
/// let report = trainer.fit(&mut Mlp::new(8), &data)?;
/// assert_eq!(report.epoch_losses.len(), 3);
/// assert_eq!(report.steps, 3 * 13); // ⌈200 / 16⌉ batches per epoch
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Clone)]
pub struct Trainer {
    pub(super) config: TrainConfig,
    pub(super) gpu: Option<GpuContext>,
    pub(super) progress: Option<ProgressFn>,
    /// The ranks of a distributed fit (`None`: this process alone).
    pub(super) group: Option<Group>,
    /// Set by another thread to stop the fit (Ctrl-C in the Python package).
    pub(super) interrupt: Option<Arc<AtomicBool>>,
}

/// A progress callback, shared by clones of a trainer.
type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("gpu", &self.gpu)
            .field("progress", &self.progress.is_some())
            .field("group", &self.group)
            .field("interrupt", &self.interrupt)
            .finish()
    }
}

impl Trainer {
    /// A trainer for `config`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for the first invalid field (see [`TrainConfig::validate`]).
    pub fn new(config: TrainConfig) -> Result<Self> {
        config.validate()?;
        Ok(Trainer {
            config,
            gpu: None,
            progress: None,
            group: None,
            interrupt: None,
        })
    }

    /// Trains on this GPU context instead of the process-wide [`gpu::shared`](crate::gpu::shared) one (which
    /// `GRADFLOW_ADAPTER` chooses): for picking an adapter in code.
    ///
    /// ```no_run
    /// use gradflow::{gpu::GpuContext, Backend, TrainConfig, Trainer};
    /// let gl = GpuContext::with_adapter(Some("gl"))?; // wgpu's OpenGL backend
    /// let trainer = Trainer::new(TrainConfig::sgd().backend(Backend::Gpu))?.with_gpu(gl);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn with_gpu(mut self, ctx: GpuContext) -> Self {
        self.gpu = Some(ctx);
        self
    }

    /// Calls `f` at every sync (each `loss_every` steps and each epoch's end) with the
    /// epoch, the steps done, the latest loss and the throughput.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use gradflow::{data::Synthetic, model::LinearRegression, TrainConfig, Trainer};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let trainer = Trainer::new(TrainConfig::sgd().epochs(2))?
    ///     .with_progress(move |p| log.lock().unwrap().push(p.steps));
    /// trainer.fit(&mut LinearRegression::new(), &Synthetic::linear(64, 2).dataset()?)?;
    /// assert_eq!(*seen.lock().unwrap(), [2, 4]); // one sync per epoch of 2 batches
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn with_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Stops a fit when `flag` becomes `true`: the mini-batch loop looks before every
    /// step, L-BFGS before every evaluation of the loss, so a fit stops within one step
    /// (one full pass for L-BFGS) of the flag being set. The fit then returns
    /// [`Error::Interrupted`] and leaves the model as it was before the call — unfitted,
    /// or with its previous parameters and training state, so a `partial_fit` can go on.
    /// The flag is not reset: clear it before the next fit.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::AtomicBool};
    /// use gradflow::{data::Synthetic, model::{LinearRegression, Model}, Error, TrainConfig, Trainer};
    /// let stop = Arc::new(AtomicBool::new(true)); // set before the fit: stops at once
    /// let trainer = Trainer::new(TrainConfig::sgd())?.with_interrupt(stop);
    /// let mut model = LinearRegression::new();
    /// let err = trainer.fit(&mut model, &Synthetic::linear(64, 2).dataset()?).unwrap_err();
    /// assert!(matches!(err, Error::Interrupted { step: 0, .. }));
    /// assert!(model.fitted().is_none());
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// [`Error::Interrupted`] once the interrupt flag is set.
    pub(super) fn check_interrupt(&self, step: u64, epoch: usize) -> Result<()> {
        match &self.interrupt {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Interrupted { step, epoch }),
            _ => Ok(()),
        }
    }

    /// Trains data-parallel over the ranks of `comm`: every rank calls the same fit on
    /// the same source, reads only its part of each batch, and ends with the same
    /// parameters — those of the single-process fit with the same global batch, up to
    /// the order of f32 sums (see [`crate::dist`]). A communicator of one rank is the
    /// single-process fit.
    ///
    /// What a rank reads: a [`Synthetic`](crate::data::Synthetic) generator or a
    /// [`MappedFile`](crate::data::MappedFile) gives each rank exactly its rows; an
    /// in-memory [`Dataset`](crate::data::Dataset) is whatever the caller loaded on
    /// each rank. The statistics of standardisation and of balanced class weights are
    /// computed over contiguous shards of rows and merged, the held-out share of early
    /// stopping is scored in parts, and a full-batch L-BFGS fit evaluates its loss and
    /// gradient in parts, each with one all-reduce.
    ///
    /// ```
    /// use gradflow::dist::LocalGroup;
    /// use gradflow::{data::Synthetic, model::{Mlp, Model}, TrainConfig, Trainer};
    /// let rows = Synthetic::blobs(600, 3, 3).seed(5);
    /// let params = LocalGroup::run(2, |comm| {
    ///     let trainer = Trainer::new(TrainConfig::sgd().epochs(2).batch_size(50))?.with_comm(comm);
    ///     let mut model = Mlp::new(8);
    ///     trainer.fit(&mut model, &rows)?;
    ///     Ok::<_, gradflow::Error>(model.fitted().unwrap().params.clone())
    /// });
    /// assert_eq!(params[0].as_ref().unwrap(), params[1].as_ref().unwrap()); // the same on every rank
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn with_comm(mut self, comm: impl Comm + 'static) -> Self {
        self.group = (comm.size() > 1).then(|| Group::new(Arc::new(comm)));
        self
    }

    /// This process's rank in a distributed fit (0 alone): the one that prints and saves
    /// is rank 0.
    pub fn rank(&self) -> usize {
        self.group.as_ref().map_or(0, Group::rank)
    }

    /// The number of ranks of a distributed fit (1 alone).
    pub fn ranks(&self) -> usize {
        self.group.as_ref().map_or(1, Group::size)
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Fits `model` to `data` from a fresh initialisation and stores the parameters in it.
    ///
    /// `data` is any [`RowSource`]: an in-memory [`Dataset`](crate::data::Dataset) (read
    /// in place), a [`Synthetic`](crate::data::Synthetic) generator or a
    /// [`MappedFile`](crate::data::MappedFile). A source that is not in memory is
    /// *streamed*: a worker thread gathers each epoch's batches, in groups, while the
    /// backend computes, so a generator of 10⁸ rows trains without ever being
    /// materialised. (A GPU fit in [`Mode::Resident`](super::Mode::Resident), or in [`Mode::Auto`](super::Mode::Auto) when the data
    /// fit the device budget, gathers such a source once and uploads it.)
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::LinearRegression, TrainConfig, Trainer};
    /// let rows = Synthetic::linear(50_000, 8).seed(3); // made on the fly, never stored
    /// let trainer = Trainer::new(TrainConfig::sgd().batch_size(256).epochs(2))?;
    /// let report = trainer.fit(&mut LinearRegression::new(), &rows)?;
    /// assert_eq!(report.mode, "streaming");
    /// assert!(report.final_loss() < 0.01);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] when the data do not suit the model; [`Error::InvalidParameter`]
    /// for a bad model setting (hidden width 0, a constant MLP init); [`Error::Diverged`] when
    /// the loss becomes NaN or infinite; the model then holds the last finite parameters
    /// (those of the step whose loss was non-finite, whose update is never applied, when
    /// they are finite; otherwise those at the end of the last complete epoch).
    /// A streamed source's own errors (a bad row in a file) when its batch comes up.
    /// With [`Backend::Gpu`](super::Backend::Gpu): [`Error::NoAdapter`], [`Error::DeviceLimit`] for a dataset
    /// beyond one storage binding, [`Error::Device`]; in verify mode [`Error::VerifyMismatch`].
    pub fn fit<M: Model + ?Sized>(&self, model: &mut M, data: &dyn RowSource) -> Result<Report> {
        self.fit_weighted(model, data, None)
    }

    /// As [`Trainer::fit`], with scikit-learn's `sample_weight`: row `i`'s loss and
    /// gradient are scaled by `sample_weight[i]` (times its class weight when
    /// [`TrainConfig::class_weight`] is set), on either backend.
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::LogisticRegression, TrainConfig, Trainer};
    /// let data = Synthetic::logistic(1000, 4).seed(2).dataset()?;
    /// let weights: Vec<f32> = (0..1000).map(|i| if i % 2 == 0 { 2.0 } else { 0.5 }).collect();
    /// let trainer = Trainer::new(TrainConfig::sgd().epochs(3))?;
    /// let report = trainer.fit_weighted(&mut LogisticRegression::new(), &data, Some(&weights))?;
    /// assert!(report.final_loss().is_finite());
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::fit`]; [`Error::ShapeMismatch`] when the weights are not one per
    /// row; [`Error::InvalidParameter`] for a negative or non-finite weight, all-zero
    /// weights, or class weights on a regression.
    pub fn fit_weighted<M: Model + ?Sized>(
        &self,
        model: &mut M,
        data: &dyn RowSource,
        sample_weight: Option<&[f32]>,
    ) -> Result<Report> {
        self.train(model, data, sample_weight, false)
    }

    /// Trains `model` for `epochs` more epochs, going on from where its last fit stopped
    /// (scikit-learn's `partial_fit` and `warm_start`, but keeping the optimizer's state
    /// *and* the schedule's position): the parameters, Adam's moments or the momentum
    /// velocities, the update count and the epoch count all carry over, so two calls of
    /// 2 epochs equal one fit of 4 — bit for bit on the CPU. An unfitted model is fitted
    /// from scratch.
    ///
    /// ```
    /// use gradflow::{data::Synthetic, model::{Model, Mlp}, Optimizer, TrainConfig, Trainer};
    /// let data = Synthetic::blobs(300, 2, 3).seed(1).dataset()?;
    /// let cfg = TrainConfig::sgd().optimizer(Optimizer::adam()).learning_rate(0.01);
    /// let (mut once, mut twice) = (Mlp::new(8), Mlp::new(8));
    /// Trainer::new(cfg.clone().epochs(4))?.fit(&mut once, &data)?;
    /// let two = Trainer::new(cfg.epochs(2))?;
    /// two.partial_fit(&mut twice, &data)?;
    /// two.partial_fit(&mut twice, &data)?;
    /// assert_eq!(once.fitted().unwrap().params, twice.fitted().unwrap().params);
    /// assert_eq!(twice.fitted().unwrap().state.as_ref().unwrap().epochs_done, 4);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::fit`]; [`Error::ShapeMismatch`] when the fitted model's architecture
    /// does not suit `data` (another feature or class count).
    pub fn partial_fit<M: Model + ?Sized>(
        &self,
        model: &mut M,
        data: &dyn RowSource,
    ) -> Result<Report> {
        self.train(model, data, None, true)
    }

    /// As [`Trainer::partial_fit`], with sample weights (see [`Trainer::fit_weighted`]).
    ///
    /// # Errors
    /// As [`Trainer::partial_fit`] and [`Trainer::fit_weighted`].
    pub fn partial_fit_weighted<M: Model + ?Sized>(
        &self,
        model: &mut M,
        data: &dyn RowSource,
        sample_weight: Option<&[f32]>,
    ) -> Result<Report> {
        self.train(model, data, sample_weight, true)
    }

    fn train<M: Model + ?Sized>(
        &self,
        model: &mut M,
        data: &dyn RowSource,
        sample_weight: Option<&[f32]>,
        resume: bool,
    ) -> Result<Report> {
        let before = self.group.as_ref().map(Group::spent);
        let mut fitted = self.train_here(model, data, sample_weight, resume);
        if let Some(group) = &self.group {
            match &mut fitted {
                Err(e) => group.abort_unless_shared(e),
                Ok(report) => {
                    let ((calls, time), (calls0, time0)) =
                        (group.spent(), before.unwrap_or_default());
                    report.ranks = group.size();
                    report.all_reduces = calls - calls0;
                    report.all_reduce_time = time - time0;
                }
            }
        }
        fitted
    }

    fn train_here<M: Model + ?Sized>(
        &self,
        model: &mut M,
        data: &dyn RowSource,
        sample_weight: Option<&[f32]>,
        resume: bool,
    ) -> Result<Report> {
        let class = self.config.class_weight.as_ref();
        let group = self.group.as_ref();
        let weights = RowWeights::over(data, sample_weight, class, group)?.into_option();
        if !self.config.standardize {
            return self.scoped(model, (data, weights.as_ref()), resume, None);
        }
        // A going-on fit keeps the scaler its parameters were trained with.
        let kept = model
            .fitted()
            .filter(|_| resume)
            .and_then(|f| f.scaler.clone());
        let scaler = match kept {
            Some(s) => s,
            None => Standardizer::fit_over(data, sample_weight, group)?,
        };
        let coarse = coarse_notes(&scaler);
        let report = match data.in_memory() {
            // In memory: a standardised copy keeps the in-place fast paths.
            Some(d) => {
                let scaled = scaler.dataset(d)?;
                self.scoped(model, (&scaled, weights.as_ref()), resume, Some(scaler))
            }
            None => {
                let view = Standardized {
                    source: data,
                    scaler: &scaler,
                };
                let kept = scaler.clone();
                self.scoped(model, (&view, weights.as_ref()), resume, Some(kept))
            }
        };
        report.map(|mut r| {
            r.notes.extend(coarse);
            r
        })
    }

    /// Runs a fit in a thread scope: a streaming fit gathers batches on a worker thread
    /// that borrows the data; it ends with the scope, when the session is dropped.
    fn scoped<M: Model + ?Sized>(
        &self,
        model: &mut M,
        data: Weighted<'_>,
        resume: bool,
        scaler: Option<Standardizer>,
    ) -> Result<Report> {
        std::thread::scope(|scope| self.fit_in(scope, model, data, resume, scaler))
    }

    fn fit_in<'s, 'a, M: Model + ?Sized>(
        &self,
        scope: &'s Scope<'s, 'a>,
        model: &mut M,
        data: Weighted<'a>,
        resume: bool,
        scaler: Option<Standardizer>,
    ) -> Result<Report> {
        let started = Instant::now();
        let cfg = &self.config;
        let spec = model.spec_for(data.0)?;
        let (init, state) = match model.fitted().filter(|_| resume) {
            Some(f) if f.spec == spec => (f.params.clone(), f.state.clone().unwrap_or_default()),
            Some(f) => {
                return Err(Error::ShapeMismatch {
                    what: "partial_fit: the fitted model against the data",
                    expected: f.spec.to_string(),
                    got: spec.to_string(),
                });
            }
            None => (
                init_params(&spec, model.init(), cfg.seed)?,
                TrainState::default(),
            ),
        };
        let group = self.group.as_ref();
        let mut choices = auto::resolve(cfg, &spec, data.0, group.is_some())?;
        match choices.solver {
            Solver::Lbfgs { .. } => {
                let fit = (spec, init, state, scaler);
                return self.fit_full_batch(model, data, fit, choices, started);
            }
            Solver::Normal => {
                return self.fit_normal(model, data, (spec, state, scaler), choices, started);
            }
            Solver::Auto | Solver::Sgd => {}
        }
        auto::choose_rate(&mut choices, cfg, &spec, data.0, (data.1, &init), group)?;
        let mut holdout = match cfg.early_stopping {
            Some(e) => Some(Holdout::new(
                data.0,
                &spec.program(),
                e.validation_fraction,
                (cfg.seed, self.group.as_ref()),
            )?),
            None => None,
        };
        let mut notes = Vec::new();
        let mut session = self.session(spec.program(), data, &init, &choices, &mut notes, scope)?;
        if !state.optimizer.is_empty() {
            session.set_optimizer_state(&state.optimizer)?;
        }
        let optimizer = choices.optimizer.unwrap_or_default();
        let rate = choices.learning_rate.unwrap_or(0.1);
        let stepper = Stepper::resume(optimizer, choices.penalty, cfg.schedule, rate, &state);
        let mut report = Report::new(model.name(), session.backend(), choices);
        report.setup = started.elapsed();
        report.notes = notes;
        let rule = cfg.early_stopping.unwrap_or_default();
        let mut watch = holdout.as_mut().map(|h| Watch::new(h, rule));
        // A chosen rate backs off; a given one is the user's to keep.
        let backs_off = choices.rate_from != RateFrom::Given;
        let mut at = Checkpoint {
            epoch: state.epochs_done,
            params: init,
            optimizer: state.optimizer.clone(),
            stepper,
            plateau: (f64::INFINITY, 0),
            marks: report.marks(),
        };
        let horizon = state.epochs_done + choices.max_epochs;
        // The fit's first epoch loss, for the back-off rule.
        let mut initial = None;
        let mut stepper = at.stepper;
        let ended = loop {
            let outcome = self.run(
                session.as_mut(),
                (&mut report, started, data.0.n()),
                (&mut stepper, horizon),
                (&mut at, &mut initial),
                watch.as_mut(),
                backs_off,
            )?;
            match outcome {
                Ended::Done(ended) => break ended,
                Ended::BackOff { epoch, loss, .. } if report.choices.backoffs < MAX_BACKOFFS => {
                    // Back to the last good epoch, at a quarter of the rate, on a fresh
                    // session (a halted one keeps its halt).
                    let rate = report.choices.learning_rate.unwrap_or(rate) / 4.0;
                    report.choices.backoffs += 1;
                    report.choices.learning_rate = Some(rate);
                    report.notes.push(format!(
                        "epoch {epoch}: loss {loss:.4e} {} at rate {:.4e}: went back to epoch \
                         {} and on at {rate:.4e}",
                        if loss.is_finite() {
                            "rose"
                        } else {
                            "was not finite"
                        },
                        rate * 4.0,
                        at.epoch,
                    ));
                    report.rewind(at.marks);
                    at.stepper = at.stepper.with_rate(rate);
                    stepper = at.stepper;
                    drop(session);
                    session = self.session(
                        spec.program(),
                        data,
                        &at.params,
                        &report.choices,
                        &mut Vec::new(),
                        scope,
                    )?;
                    if !at.optimizer.is_empty() {
                        session.set_optimizer_state(&at.optimizer)?;
                    }
                }
                Ended::BackOff { step, epoch, loss } => {
                    break Err(Error::Diverged {
                        step,
                        epoch,
                        loss,
                        learning_rate: report.choices.learning_rate.unwrap_or(rate),
                    });
                }
            }
        };
        // Stored whether or not the fit ended in an error. A halted session holds the
        // parameters of its last applied update; after a divergence those may already be
        // infinite, and then the last epoch's finite checkpoint is kept instead. Early
        // stopping keeps its best epoch's.
        let params = session.params()?;
        if let (Some(group), Ok(())) = (&self.group, &ended) {
            // Every rank ends with the same parameters (checked each epoch, and here).
            group.check_same(&params, report.epoch_losses.len())?;
        }
        let params = match watch.and_then(|w| w.best_params) {
            Some(best) => best,
            None if all_finite(&params) => params,
            None => at.params,
        };
        let state = TrainState {
            epochs_done: state.epochs_done + report.epoch_losses.len(),
            updates: state.updates + report.steps,
            adaptive: stepper.adaptive,
            optimizer: session.optimizer_state()?,
        };
        model.set_fitted(Fitted {
            spec,
            params,
            state: Some(state),
            scaler,
        });
        report.converged = matches!(
            report.stop,
            StopReason::Tolerance { .. }
                | StopReason::EarlyStopping { .. }
                | StopReason::NoImprovement { .. }
        );
        report.verify = session.deviations();
        report.set_traffic(session.traffic());
        report.wall = started.elapsed();
        ended.map(|()| report)
    }
}

/// The report's notes on columns `f32` holds coarsely ([`Standardizer::coarse_columns`]),
/// the first four named.
fn coarse_notes(scaler: &Standardizer) -> Vec<String> {
    let coarse = scaler.coarse_columns();
    let Some(&(j, mean, sd, step)) = coarse.first() else {
        return Vec::new();
    };
    let more = match coarse.len() {
        1 => String::new(),
        k => format!(
            " (and {} more: column{} {})",
            k - 1,
            if k > 2 { "s" } else { "" },
            coarse[1..]
                .iter()
                .take(3)
                .map(|c| c.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    vec![format!(
        "features lose precision as f32: column {j}'s values lie near {mean:.4e} and vary by \
         {sd:.3e}, held in steps of {step:.3e} ({:.1} % of that){more}; subtract an offset \
         from such a column before training",
        100.0 * step / sd
    )]
}

/// A source and its rows' weights, if any.
pub(super) type Weighted<'a> = (&'a dyn RowSource, Option<&'a RowWeights<'a>>);
