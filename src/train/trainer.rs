//! The training loop.

use std::borrow::Cow;
use std::sync::Arc;
use std::thread::Scope;
use std::time::Instant;

use super::full_batch::{self, Evaluator, SolveTargets};

use super::lbfgs::Settings;
use super::optim::{Penalty, Stepper};
use super::report::Marks;
use super::session::{CpuSession, GpuSession, Halt, Session, Synced};
use super::validation::Holdout;
use super::{
    Backend, Choices, EarlyStopping, Mode, Progress, RateFrom, Report, Solver, StopReason,
    TrainConfig, TrainState, auto,
};
use crate::cpu::engine::CpuEngine;
use crate::data::{
    Dataset, RowSource, RowWeights, Standardized, Standardizer, epoch_plan, epoch_plan_over,
};
use crate::error::{Error, Result};
use crate::gpu::{self, GpuContext, GpuEngineOptions, resident_row_limit};
use crate::model::{Fitted, Model, Spec, init_params};
use crate::program::Program;
use crate::program::Rule;
use crate::schedule::Prefetcher;

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
    config: TrainConfig,
    gpu: Option<GpuContext>,
    progress: Option<ProgressFn>,
}

/// A progress callback, shared by clones of a trainer.
type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("gpu", &self.gpu)
            .field("progress", &self.progress.is_some())
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
        })
    }

    /// Trains on this GPU context instead of the process-wide [`gpu::shared`] one (which
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
    /// materialised. (A GPU fit in [`Mode::Resident`], or in [`Mode::Auto`] when the data
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
    /// With [`Backend::Gpu`]: [`Error::NoAdapter`], [`Error::DeviceLimit`] for a dataset
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
        let weights =
            RowWeights::new(data, sample_weight, self.config.class_weight.as_ref())?.into_option();
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
            None => Standardizer::fit(data)?,
        };
        match data.in_memory() {
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
        }
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
                    expected: format!("{:?}", f.spec),
                    got: format!("{spec:?}"),
                });
            }
            None => (
                init_params(&spec, model.init(), cfg.seed)?,
                TrainState::default(),
            ),
        };
        let mut choices = auto::resolve(cfg, &spec, data.0)?;
        if let Solver::Lbfgs { .. } = choices.solver {
            let fit = (spec, init, state, scaler);
            return self.fit_full_batch(model, data, fit, choices, started);
        }
        auto::choose_rate(&mut choices, cfg, &spec, data.0, (data.1, &init))?;
        let mut holdout = match cfg.early_stopping {
            Some(e) => Some(Holdout::new(
                data.0,
                &spec.program(),
                e.validation_fraction,
                cfg.seed,
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

    /// A full-batch L-BFGS fit (see [`super::full_batch`]): the data in memory, evaluated
    /// on the CPU's fast kernels or resident on the device.
    fn fit_full_batch<M: Model + ?Sized>(
        &self,
        model: &mut M,
        (data, weights): Weighted<'_>,
        (spec, init, state, scaler): (Spec, Vec<Vec<f32>>, TrainState, Option<Standardizer>),
        choices: Choices,
        started: Instant,
    ) -> Result<Report> {
        let Solver::Lbfgs {
            memory,
            max_iter,
            tol,
        } = choices.solver
        else {
            unreachable!("called for L-BFGS fits only")
        };
        // `auto::resolve` picks L-BFGS only for data in memory, and refuses it otherwise.
        let Some(dataset) = data.in_memory() else {
            return Err(Error::param(
                "solver lbfgs",
                "on a streamed source",
                "needs the rows in memory: use solver sgd",
            ));
        };
        let program = spec.program();
        let solve_targets = SolveTargets::new(dataset.targets(), program.loss);
        let mut notes = Vec::new();
        let kernels = self.config.cpu_kernels;
        let mut evaluator = match self.gpu_context(&mut notes)? {
            Some(ctx) => {
                let t = &solve_targets.targets;
                match Evaluator::gpu(&ctx, program.clone(), dataset, t, weights) {
                    Ok(e) => e,
                    Err(e @ Error::DeviceLimit { .. }) if self.config.backend == Backend::Auto => {
                        notes.push(format!("training on the CPU: {e}"));
                        Evaluator::cpu(program.clone(), (dataset, t), weights, kernels)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                let data = (dataset, &*solve_targets.targets);
                Evaluator::cpu(program.clone(), data, weights, kernels)
            }
        };
        let mut report = Report::new(model.name(), evaluator.backend(), choices);
        report.notes = notes;
        let settings = Settings {
            memory,
            max_iter,
            tol,
            // The loss is summed from f32 terms: about one f32 ulp of relative noise.
            noise: f64::from(f32::EPSILON),
        };
        let mut progress = |p: Progress| {
            if let Some(f) = &self.progress {
                f(p);
            }
        };
        let n = dataset.n();
        let solved = full_batch::solve(
            &mut evaluator,
            &program,
            &solve_targets,
            (n, &init),
            settings,
            choices.penalty,
            &mut progress,
        )?;
        report.epoch_losses = solved.losses;
        report.steps = solved.iterations as u64;
        report.samples = (solved.evaluations * n) as u64;
        report.stop = solved.stop;
        report.converged = solved.converged;
        // L-BFGS keeps no optimizer tensors between fits; a later mini-batch fit starts
        // its optimizer afresh from these zeros (what a model file's state holds).
        let optimizer = if state.optimizer.is_empty() {
            program
                .params
                .iter()
                .map(|d| {
                    let zeros = vec![0f32; d.rows * d.cols];
                    [zeros.clone(), zeros]
                })
                .collect()
        } else {
            state.optimizer
        };
        let state = TrainState {
            epochs_done: state.epochs_done + solved.iterations,
            updates: state.updates + solved.iterations as u64,
            adaptive: state.adaptive,
            optimizer,
        };
        model.set_fitted(Fitted {
            spec,
            params: solved.params,
            state: Some(state),
            scaler,
        });
        report.set_traffic(evaluator.traffic());
        report.wall = started.elapsed();
        Ok(report)
    }

    /// The GPU context to train on, or `None` for the CPU: `Backend::Gpu` insists on one;
    /// `Backend::Auto` takes a hardware adapter, and a software one (device type `Cpu`)
    /// only when `GRADFLOW_ADAPTER` names it, noting why when it falls back.
    ///
    /// # Errors
    /// With `Backend::Gpu`: [`Error::NoAdapter`], [`Error::Device`].
    fn gpu_context(&self, notes: &mut Vec<String>) -> Result<Option<GpuContext>> {
        let context = || self.gpu.clone().map_or_else(gpu::shared, Ok);
        match self.config.backend {
            Backend::Cpu => Ok(None),
            Backend::Gpu => context().map(Some),
            Backend::Auto => match context() {
                Ok(ctx) => {
                    let info = ctx.info();
                    let named =
                        self.gpu.is_some() || std::env::var_os("GRADFLOW_ADAPTER").is_some();
                    if info.device_type == wgpu::DeviceType::Cpu && !named {
                        notes.push(format!(
                            "training on the CPU: the adapter wgpu offers, {}, is a software \
                             one, slower than the CPU backend (GRADFLOW_ADAPTER={} uses it)",
                            info.name,
                            info.name.split_whitespace().next().unwrap_or("NAME")
                        ));
                        return Ok(None);
                    }
                    Ok(Some(ctx))
                }
                Err(e @ Error::NoAdapter { .. }) => {
                    notes.push(format!("training on the CPU: {e}"));
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// The mini-batch session for the configured backend, with the initial parameters
    /// loaded.
    fn session<'s, 'a>(
        &self,
        program: Program,
        (data, weights): Weighted<'a>,
        init: &[Vec<f32>],
        choices: &Choices,
        notes: &mut Vec<String>,
        scope: &'s Scope<'s, 'a>,
    ) -> Result<Box<dyn Session + 'a>> {
        let cfg = &self.config;
        let cap = cfg.batch_size.min(data.n());
        let rule = choices.optimizer.unwrap_or_default().rule();
        let (tol, depth) = (cfg.tol, cfg.ring_depth);
        let gpu = |ctx: &GpuContext, program: Program| -> Result<Box<dyn Session + 'a>> {
            let verify = cfg.verify;
            let tol = GpuEngineOptions {
                tol: tol.map(|t| t as f32),
                rule,
                // The engine takes it where the data and model allow (see the option).
                fuse_glm: cfg.fuse_steps
                    && verify.is_none()
                    && choices.penalty == Penalty::None
                    && rule == Rule::Sgd,
                ..GpuEngineOptions::default()
            };
            let mut s = match self.placement(ctx, data, cap)? {
                Placement::Streaming { group } => {
                    let (ring, source) = ((depth, group), (data, weights));
                    GpuSession::streaming(ctx, program, source, cap, ring, tol, verify, scope)?
                }
                Placement::Resident => {
                    let verify = verify.map(|v| (v, data, weights));
                    match data.in_memory() {
                        Some(d) => {
                            let d = (d, weights);
                            GpuSession::resident(ctx, program, d, cap, tol, verify)?
                        }
                        // Gathered once for the upload, then dropped.
                        None => {
                            let d = Dataset::from_source(data)?;
                            let d = (&d, weights);
                            GpuSession::resident(ctx, program, d, cap, tol, verify)?
                        }
                    }
                }
            };
            s.set_params(init)?;
            Ok(Box::new(s))
        };
        if let Some(ctx) = self.gpu_context(notes)? {
            match gpu(&ctx, program.clone()) {
                Ok(session) => return Ok(session),
                Err(e @ Error::DeviceLimit { .. }) if cfg.backend == Backend::Auto => {
                    notes.push(format!("training on the CPU: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        let mut session = match data.in_memory() {
            Some(d) => {
                let x = d.features();
                let mut engine = CpuEngine::<f32>::new(program, x, d.p(), Some(d.targets()), cap)
                    .with_kernels(cfg.cpu_kernels);
                if let Some(w) = weights {
                    engine = engine.with_weights(Cow::Owned(w.all(d.targets())));
                }
                CpuSession::new(engine, rule, tol)
            }
            None => {
                let kind = data.target_kind();
                let engine = CpuEngine::<f32>::for_batches(program, data.p(), kind, cap)
                    .with_kernels(cfg.cpu_kernels);
                let group = self.upload_batches(data.p(), cap, u64::MAX, u64::MAX);
                let feed = Prefetcher::weighted(scope, data, weights, depth, group)?;
                CpuSession::streaming(engine, feed, rule, tol)
            }
        };
        session.set_params(init)?;
        Ok(Box::new(session))
    }

    /// Batches per streamed group: as configured, or about 4 MiB of rows (at most 32
    /// batches); fewer when `ring_depth` groups would pass `budget` bytes or one group's
    /// features would pass `slot_limit` bytes (one storage binding).
    fn upload_batches(&self, p: usize, cap: usize, budget: u64, slot_limit: u64) -> usize {
        let batch_bytes = (cap as u64) * (p as u64 + 1) * 4;
        let auto = ((4u64 << 20) / batch_bytes).clamp(1, 32);
        let fits = (budget / (self.config.ring_depth as u64 * batch_bytes))
            .min(slot_limit / ((cap as u64) * (p as u64) * 4).max(1));
        let group = self.config.upload_batches.map_or(auto, |g| g as u64);
        group.min(fits).max(1) as usize
    }

    /// Whether a GPU fit holds the data resident or streams them: as configured, or
    /// (`Mode::Auto`) streaming when features + targets exceed the device budget or 4
    /// storage bindings.
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] when even a ring of one batch per slot exceeds the budget.
    fn placement(&self, ctx: &GpuContext, data: &dyn RowSource, cap: usize) -> Result<Placement> {
        let cfg = &self.config;
        let limits = ctx.limits();
        let budget = cfg.device_budget.unwrap_or_else(|| {
            (limits.max_buffer_size / 2).min(
                limits
                    .max_storage_buffer_binding_size
                    .saturating_mul(crate::gpu::kernels::MAX_A_CHUNKS as u64),
            )
        });
        let row_bytes = (data.p() as u64 + 1) * 4;
        let streams = match cfg.mode {
            Mode::Resident => false,
            Mode::Streaming => true,
            Mode::Auto => {
                data.n() as u64 * row_bytes > budget || data.n() > resident_row_limit(ctx, data.p())
            }
        };
        if !streams {
            // Checked before a source that is not in memory is gathered for the upload:
            // rows beyond the device are refused here, not after gigabytes were made.
            let limit = resident_row_limit(ctx, data.p());
            if data.n() > limit {
                return Err(Error::DeviceLimit {
                    what: "resident rows (features in at most 4 storage bindings): use \
                           Mode::Streaming or Mode::Auto",
                    requested: data.n() as u64,
                    limit: limit as u64,
                });
            }
            return Ok(Placement::Resident);
        }
        // A slot's features are one storage binding: a batch must fit in one. (Full-batch
        // descent over data beyond the device would need gradients accumulated over
        // chunks, which gradflow does not do.)
        let binding = limits.max_storage_buffer_binding_size;
        let batch_features = (cap as u64) * (data.p() as u64) * 4;
        if batch_features > binding {
            return Err(Error::DeviceLimit {
                what: "one streamed batch's features (batch rows × p × 4) within one \
                       storage binding: use a smaller batch_size",
                requested: batch_features,
                limit: binding,
            });
        }
        let ring = (cfg.ring_depth as u64) * (cap as u64) * row_bytes;
        if ring > budget {
            return Err(Error::DeviceLimit {
                what: "streaming ring bytes (ring_depth × batch rows × (p + 1) × 4) \
                       within device_budget",
                requested: ring,
                limit: budget,
            });
        }
        Ok(Placement::Streaming {
            group: self.upload_batches(data.p(), cap, budget, binding),
        })
    }

    /// The epoch loop over any session, from checkpoint `at` to epoch `horizon`. Returns
    /// how it ended: done (with the error that ended the fit, if any, kept apart so that
    /// the caller stores the parameters either way), or asking to back off (a chosen
    /// rate whose epoch loss was non-finite or rose past twice the best). `at` moves to
    /// each good epoch's end.
    fn run(
        &self,
        session: &mut dyn Session,
        (report, started, n): (&mut Report, Instant, usize),
        (stepper, horizon): (&mut Stepper, usize),
        (at, initial): (&mut Checkpoint, &mut Option<f64>),
        mut watch: Option<&mut Watch<'_>>,
        backs_off: bool,
    ) -> Result<Ended> {
        let cfg = &self.config;
        let train_rows = watch.as_ref().map(|w| w.holdout.train_rows.clone());
        // Told at each sync: `synced` holds this epoch's steps so far, of sizes `sizes`.
        let progress = |epoch: usize, synced: &Synced, sizes: &[usize], report: &Report| {
            if let (Some(f), Some(&loss)) = (&self.progress, synced.losses.last()) {
                let done = synced.losses.len();
                let rows = report.samples + sizes.iter().take(done).sum::<usize>() as u64;
                f(Progress {
                    epoch,
                    steps: report.steps + done as u64,
                    loss,
                    samples_per_sec: rows as f64 / started.elapsed().as_secs_f64().max(1e-9),
                });
            }
        };
        // scikit-learn's n_iter_no_change: the best epoch loss and the epochs since.
        let (mut best, mut stale) = at.plateau;
        for epoch in at.epoch..horizon {
            let (seed, batch, shuffle, drop) =
                (cfg.seed, cfg.batch_size, cfg.shuffle, cfg.drop_last);
            let plan = Arc::new(match &train_rows {
                Some(rows) => epoch_plan_over(seed, epoch, rows, batch, shuffle, drop)?,
                None => epoch_plan(seed, epoch, n, batch, shuffle, drop)?,
            });
            session.begin_epoch(&plan)?;
            let sizes: Vec<usize> = plan.batches().map(|b| b.len).collect();
            let mut synced = Synced::default();
            let mut lr = stepper.lr(epoch, horizon, sizes.len());
            for batch in plan.batches() {
                lr = stepper.lr(epoch, horizon, sizes.len());
                session.step(batch, &stepper.next(lr))?;
                let every = cfg.loss_every.unwrap_or(usize::MAX);
                let due = (batch.index + 1) % every == 0 && batch.index + 1 < sizes.len();
                if due {
                    let halted = absorb(&mut synced, session.sync()?);
                    progress(epoch, &synced, &sizes, report);
                    if halted {
                        break;
                    }
                }
            }
            absorb(&mut synced, session.sync()?);
            progress(epoch, &synced, &sizes, report);
            let ran = synced.halt.map_or(synced.losses.len(), |(i, _)| i);
            let (mut loss_sum, mut rows) = (0f64, 0usize);
            for (&loss, &len) in synced.losses.iter().zip(&sizes).take(ran) {
                loss_sum += loss * len as f64;
                rows += len;
                if cfg.record_steps {
                    report.step_losses.push(loss);
                }
            }
            report.steps += ran as u64;
            report.samples += rows as u64;
            if rows > 0 {
                report.epoch_losses.push(loss_sum / rows as f64);
                report.epoch_lrs.push(lr);
            }
            match synced.halt {
                None => {
                    let loss = report.final_loss();
                    // A rate too large for this stretch of the loss: the epoch's loss
                    // (over the same rows as every epoch's) is twice the best epoch's
                    // and above the first's — noise near a small loss can double it,
                    // but not lift it back above where the fit began.
                    let first = *initial.get_or_insert(loss);
                    if backs_off && loss > 2.0 * best && loss > first {
                        return Ok(Ended::BackOff {
                            step: report.steps,
                            epoch,
                            loss,
                        });
                    }
                    // One small readback per epoch: the fallback if a later step diverges.
                    let params = session.params()?;
                    if let Some(w) = watch.as_deref_mut() {
                        let (loss, stop) = w.epoch(&params, epoch)?;
                        report.validation_losses.push(loss);
                        if stop {
                            report.stop = StopReason::EarlyStopping {
                                epoch,
                                best_epoch: w.best_epoch,
                                best: w.best,
                            };
                            break;
                        }
                    }
                    stepper.end_epoch(loss);
                    let mut plateau = false;
                    if let Some(rule) = cfg.no_improvement {
                        if rule.improves(loss, best) {
                            stale = 0;
                        } else {
                            stale += 1;
                        }
                        plateau = stale >= rule.epochs;
                    }
                    best = best.min(loss);
                    if all_finite(&params) {
                        *at = Checkpoint {
                            epoch: epoch + 1,
                            params,
                            optimizer: if backs_off {
                                session.optimizer_state()?
                            } else {
                                Vec::new()
                            },
                            stepper: *stepper,
                            plateau: (best, stale),
                            marks: report.marks(),
                        };
                    }
                    if plateau {
                        report.stop = StopReason::NoImprovement { epoch, best };
                        break;
                    }
                }
                Some((_, Halt::Tolerance { delta })) => {
                    report.stop = StopReason::Tolerance {
                        step: report.steps,
                        delta,
                    };
                    break;
                }
                Some((_, Halt::NonFinite { loss })) => {
                    if backs_off {
                        return Ok(Ended::BackOff {
                            step: report.steps,
                            epoch,
                            loss,
                        });
                    }
                    let err = Error::Diverged {
                        step: report.steps,
                        epoch,
                        loss,
                        learning_rate: lr,
                    };
                    return Ok(Ended::Done(Err(err)));
                }
            }
        }
        Ok(Ended::Done(Ok(())))
    }
}

/// Early stopping's bookkeeping: the held-out rows, the best validation loss and the
/// parameters that reached it.
struct Watch<'h> {
    holdout: &'h mut Holdout,
    patience: usize,
    tol: f64,
    best: f64,
    best_epoch: usize,
    best_params: Option<Vec<Vec<f32>>>,
    stale: usize,
}

impl<'h> Watch<'h> {
    fn new(holdout: &'h mut Holdout, rule: EarlyStopping) -> Self {
        Watch {
            holdout,
            patience: rule.patience,
            tol: rule.tol,
            best: f64::INFINITY,
            best_epoch: 0,
            best_params: None,
            stale: 0,
        }
    }

    /// Scores epoch `epoch`'s parameters; returns the validation loss and whether to stop.
    fn epoch(&mut self, params: &[Vec<f32>], epoch: usize) -> Result<(f64, bool)> {
        let loss = self.holdout.loss(params)?;
        // Only an improvement by tol resets the patience, but any better loss (a NaN
        // never is) names the parameters to keep.
        if super::config::improves(loss, self.best, self.tol) {
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        if loss < self.best {
            self.best = loss;
            self.best_epoch = epoch;
            self.best_params = Some(params.to_vec());
        }
        Ok((loss, self.stale >= self.patience))
    }
}

/// A source and its rows' weights, if any.
type Weighted<'a> = (&'a dyn RowSource, Option<&'a RowWeights<'a>>);

/// Times a chosen learning rate is divided by 4 before a fit that still diverges is an
/// error: 4⁻¹⁶ ≈ 2 · 10⁻¹⁰ of the first choice (each costs one epoch).
const MAX_BACKOFFS: usize = 16;

/// The last good epoch's end: where a fit goes back to when a chosen rate proves too
/// large, and whose parameters a diverged fit keeps.
struct Checkpoint {
    /// The next epoch to run.
    epoch: usize,
    params: Vec<Vec<f32>>,
    /// The optimizer's tensors (read only when the fit may back off).
    optimizer: Vec<[Vec<f32>; 2]>,
    stepper: Stepper,
    /// The plateau rule's best epoch loss and epochs since.
    plateau: (f64, usize),
    /// The report's lengths at that point.
    marks: Marks,
}

/// How [`Trainer::run`] ended.
enum Ended {
    /// The fit is over (the error that ended it, if any).
    Done(Result<()>),
    /// A chosen rate's epoch loss was non-finite or rose: go back and slow down.
    BackOff { step: u64, epoch: usize, loss: f64 },
}

/// Where a GPU fit keeps its data.
enum Placement {
    /// Uploaded once.
    Resident,
    /// Through the ring, `group` batches per slot.
    Streaming { group: usize },
}

fn all_finite(params: &[Vec<f32>]) -> bool {
    params.iter().flatten().all(|v| v.is_finite())
}

/// Appends a sync's losses to the epoch's; `true` once the session has halted.
fn absorb(epoch: &mut Synced, next: Synced) -> bool {
    if let Some((i, halt)) = next.halt {
        epoch.halt.get_or_insert((epoch.losses.len() + i, halt));
    }
    epoch.losses.extend(next.losses);
    epoch.halt.is_some()
}
