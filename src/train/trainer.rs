//! The training loop.

use std::borrow::Cow;
use std::sync::Arc;
use std::thread::Scope;
use std::time::Instant;

use super::gpu_session::GpuSession;
use super::optim::{Penalty, Stepper};
use super::session::{CpuSession, Halt, Session, Synced};
use super::validation::Holdout;
use super::{Backend, EarlyStopping, Mode, Progress, Report, StopReason, TrainConfig, TrainState};
use crate::cpu::update::Rule;
use crate::data::{
    Dataset, RowSource, RowWeights, Standardized, Standardizer, epoch_plan, epoch_plan_over,
};
use crate::engine::CpuEngine;
use crate::error::{Error, Result};
use crate::gpu::{self, GpuContext, GpuEngineOptions, resident_row_limit};
use crate::model::{Fitted, Model, init_params};
use crate::program::Program;
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
/// let trainer = Trainer::new(TrainConfig::default().batch_size(16).epochs(3).seed(7))?;
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
    /// let trainer = Trainer::new(TrainConfig::default().backend(Backend::Gpu))?.with_gpu(gl);
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
    /// let trainer = Trainer::new(TrainConfig::default().epochs(2))?
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
    /// let trainer = Trainer::new(TrainConfig::default().batch_size(256).epochs(2))?;
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
    /// let trainer = Trainer::new(TrainConfig::default().epochs(3))?;
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
    /// let cfg = TrainConfig::default().optimizer(Optimizer::adam()).learning_rate(0.01);
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
        let mut holdout = match self.config.early_stopping {
            Some(e) => Some(Holdout::new(
                data.0,
                &spec.program(),
                e.validation_fraction,
                self.config.seed,
            )?),
            None => None,
        };
        let mut session = self.session(spec.program(), data, &init, scope)?;
        if !state.optimizer.is_empty() {
            session.set_optimizer_state(&state.optimizer)?;
        }
        let mut stepper = Stepper::resume(
            cfg.optimizer,
            cfg.penalty,
            cfg.schedule,
            cfg.learning_rate,
            &state,
        );
        let mut snapshot = init;
        let rule = self.config.early_stopping.unwrap_or_default();
        let mut watch = holdout.as_mut().map(|h| Watch::new(h, rule));
        let (mut report, ended) = self.run(
            session.as_mut(),
            (model.name(), data.0.n(), started),
            (&mut stepper, state.epochs_done),
            &mut snapshot,
            watch.as_mut(),
        )?;
        // Stored whether or not the fit ended in an error. A halted session holds the
        // parameters of its last applied update; after a divergence those may already be
        // infinite, and then the last epoch's finite snapshot is kept instead. Early
        // stopping keeps its best epoch's.
        let params = session.params()?;
        let params = match watch.and_then(|w| w.best_params) {
            Some(best) => best,
            None if all_finite(&params) => params,
            None => snapshot,
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
        report.verify = session.deviations();
        let traffic = session.traffic();
        report.mode = traffic.mode.to_string();
        report.bytes_to_device = traffic.bytes;
        report.dispatches = traffic.dispatches;
        report.submissions = traffic.submissions;
        report.gather_time = traffic.gather;
        report.upload_wait = traffic.upload_wait;
        report.gpu_wait = traffic.gpu_wait;
        report.wall = started.elapsed();
        ended.map(|()| report)
    }

    /// The session for the configured backend, with the initial parameters loaded.
    fn session<'s, 'a>(
        &self,
        program: Program,
        (data, weights): Weighted<'a>,
        init: &[Vec<f32>],
        scope: &'s Scope<'s, 'a>,
    ) -> Result<Box<dyn Session + 'a>> {
        let cfg = &self.config;
        let cap = cfg.batch_size.min(data.n());
        let (tol, depth, rule) = (cfg.tol, cfg.ring_depth, cfg.optimizer.rule());
        let gpu = |ctx: &GpuContext, program: Program| -> Result<Box<dyn Session + 'a>> {
            let verify = cfg.verify;
            let tol = GpuEngineOptions {
                tol: tol.map(|t| t as f32),
                rule,
                // The engine takes it where the data and model allow (see the option).
                fuse_glm: cfg.fuse_steps
                    && verify.is_none()
                    && cfg.penalty == Penalty::None
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
        let context = || self.gpu.clone().map_or_else(gpu::shared, Ok);
        match cfg.backend {
            Backend::Gpu => return gpu(&context()?, program),
            Backend::Auto => match context().and_then(|ctx| gpu(&ctx, program.clone())) {
                Ok(session) => return Ok(session),
                Err(e @ (Error::NoAdapter { .. } | Error::DeviceLimit { .. })) => {
                    eprintln!("gradflow: training on the CPU: {e}");
                }
                Err(e) => return Err(e),
            },
            Backend::Cpu => {}
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

    /// The epoch loop over any session. Returns the report and, separately, the error that
    /// ended the fit (if any), so that the caller stores the parameters either way.
    fn run(
        &self,
        session: &mut dyn Session,
        (model, n, started): (&'static str, usize, Instant),
        (stepper, first_epoch): (&mut Stepper, usize),
        snapshot: &mut Vec<Vec<f32>>,
        mut watch: Option<&mut Watch<'_>>,
    ) -> Result<(Report, Result<()>)> {
        let cfg = &self.config;
        let train_rows = watch.as_ref().map(|w| w.holdout.train_rows.clone());
        let mut report = Report {
            model,
            backend: session.backend(),
            epoch_losses: Vec::new(),
            epoch_lrs: Vec::new(),
            validation_losses: Vec::new(),
            step_losses: Vec::new(),
            steps: 0,
            samples: 0,
            stop: StopReason::MaxEpochs,
            wall: started.elapsed(),
            verify: Vec::new(),
            mode: String::new(),
            bytes_to_device: 0,
            dispatches: 0,
            submissions: 0,
            gather_time: std::time::Duration::ZERO,
            upload_wait: std::time::Duration::ZERO,
            gpu_wait: std::time::Duration::ZERO,
        };
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
        let (mut best, mut stale) = (f64::INFINITY, 0usize);
        let horizon = first_epoch + cfg.epochs;
        for epoch in first_epoch..horizon {
            let (seed, batch, shuffle, drop) =
                (cfg.seed, cfg.batch_size, cfg.shuffle, cfg.drop_last);
            let plan = Arc::new(match &train_rows {
                Some(rows) => epoch_plan_over(seed, epoch, rows, batch, shuffle, drop)?,
                None => epoch_plan(seed, epoch, n, batch, shuffle, drop)?,
            });
            session.begin_epoch(&plan)?;
            let sizes: Vec<usize> = plan.batches().map(|b| b.len).collect();
            let mut synced = Synced::default();
            let mut lr = cfg.learning_rate;
            for batch in plan.batches() {
                lr = stepper.lr(epoch, horizon, sizes.len());
                session.step(batch, &stepper.next(lr))?;
                let every = cfg.loss_every.unwrap_or(usize::MAX);
                let due = (batch.index + 1) % every == 0 && batch.index + 1 < sizes.len();
                if due {
                    let halted = absorb(&mut synced, session.sync()?);
                    progress(epoch, &synced, &sizes, &report);
                    if halted {
                        break;
                    }
                }
            }
            absorb(&mut synced, session.sync()?);
            progress(epoch, &synced, &sizes, &report);
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
                    if all_finite(&params) {
                        *snapshot = params;
                    }
                    let loss = report.final_loss();
                    stepper.end_epoch(loss);
                    if let Some(rule) = cfg.no_improvement {
                        if loss < best - rule.tol {
                            stale = 0;
                        } else {
                            stale += 1;
                        }
                        best = best.min(loss);
                        if stale >= rule.epochs {
                            report.stop = StopReason::NoImprovement { epoch, best };
                            break;
                        }
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
                    let err = Error::Diverged {
                        step: report.steps,
                        epoch,
                        loss,
                        learning_rate: cfg.learning_rate,
                    };
                    return Ok((report, Err(err)));
                }
            }
        }
        Ok((report, Ok(())))
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
        if loss < self.best - self.tol {
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
