//! Full-batch fits: the loss and gradient over every row at once, minimised by L-BFGS
//! ([`super::lbfgs`]), on the CPU's fast kernels or on the device.
//!
//! The model's program is the same one the mini-batch loop runs; an evaluation is its
//! forward pass, fused loss and backward pass over all n rows with no update. On the
//! device the dataset and the parameters stay resident; per evaluation the host writes
//! the parameters and reads back the mean loss and the gradients (p · k values for a
//! linear model), and the two-loop recursion runs on the host in `f64`.
//!
//! **Targets of a regression are standardised for the solve.** L-BFGS stops on the
//! gradient's size, and a squared error on targets in the thousands has gradients a
//! million times those of one on targets near 1, so one `tol` could not serve both. The
//! solver fits y′ = (y − ȳ)/s_y, whose objective is the original one divided by s_y²
//! (the L2 term too, with W′ = W / s_y), and maps the result back: W = s_y W′,
//! b = s_y b′ + ȳ. The minimiser is the same.

use std::borrow::Cow;
use std::ops::Range;
use std::time::Instant;

use super::lbfgs::{self, End, Settings};
use super::session::Traffic;
use super::trainer::Weighted;
use super::{Backend, Choices, Penalty, Progress, Report, Solver, StopReason, TrainState, Trainer};
use crate::cpu::engine::{CpuEngine, CpuKernels, Rows};
use crate::data::Standardizer;
use crate::data::{Dataset, HostTargets, RowSource, RowWeights, Targets, gather_rows};
use crate::dist::{Group, from_bytes, to_bytes};
use crate::error::Error;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuEngine, GpuEngineOptions};
use crate::model::{Fitted, Model, Spec};
use crate::program::LossKind;
use crate::program::Program;

/// Where the loss and gradient over all rows are computed.
pub(crate) enum Evaluator<'a> {
    /// The CPU's fast kernels over the dataset in place.
    Cpu(Box<CpuEngine<'a, f32>>),
    /// The device, with the dataset resident and read in stored order.
    Gpu {
        engine: Box<GpuEngine>,
        backend: String,
    },
}

impl<'a> Evaluator<'a> {
    /// Over `data` with `targets` (the solver's, perhaps standardised) and row weights,
    /// on `kernels` (the config's: fast, or the reference oracle).
    pub fn cpu(
        program: Program,
        (data, targets): (&'a Dataset, &'a Targets),
        weights: Option<Vec<f32>>,
        kernels: CpuKernels,
    ) -> Self {
        let mut engine =
            CpuEngine::<f32>::new(program, data.features(), data.p(), Some(targets), data.n())
                .with_kernels(kernels);
        if let Some(w) = weights {
            engine = engine.with_weights(Cow::Owned(w));
        }
        Evaluator::Cpu(Box::new(engine))
    }

    /// On the device: uploads the data once, with an identity order.
    ///
    /// # Errors
    /// [`crate::Error::DeviceLimit`] when the data or the full-batch buffers do not fit;
    /// [`crate::Error::Device`].
    pub fn gpu(
        ctx: &GpuContext,
        program: Program,
        data: &Dataset,
        targets: &Targets,
        weights: Option<Vec<f32>>,
    ) -> Result<Self> {
        let (x, p, n) = (data.features(), data.p(), data.n());
        let options = GpuEngineOptions {
            loss_slots: Some(1),
            ..GpuEngineOptions::default()
        };
        let mut engine = match weights {
            Some(w) => GpuEngine::weighted(ctx, program, x, p, targets, &w, n, options)?,
            None => GpuEngine::with_options(ctx, program, x, p, targets, n, options)?,
        };
        let identity: Vec<u32> = (0..n as u32).collect();
        engine.set_order(&identity)?;
        let info = ctx.info();
        Ok(Evaluator::Gpu {
            engine: Box::new(engine),
            backend: format!("gpu: {} ({:?})", info.name, info.backend),
        })
    }

    /// `cpu`, or the adapter's name.
    pub fn backend(&self) -> String {
        match self {
            Evaluator::Cpu(_) => "cpu".into(),
            Evaluator::Gpu { backend, .. } => backend.clone(),
        }
    }

    /// The mean loss and the gradients at `params` over all `n` rows: alone, `rows` are
    /// all of them; in a distributed fit, this rank's contiguous part (of the rows it
    /// holds), and one all-reduce of the sums (mean × rows) gives every rank the means
    /// over all n.
    fn eval(
        &mut self,
        params: &[Vec<f32>],
        (rows, n): (Range<usize>, usize),
        group: Option<&Group>,
    ) -> Result<(f64, Vec<Vec<f32>>)> {
        let Some(group) = group else {
            return self.eval_rows(params, rows);
        };
        let lens: Vec<usize> = program_lens(params);
        let local = if rows.is_empty() {
            Ok((0.0, Vec::new()))
        } else {
            self.eval_rows(params, rows.clone())
        };
        let m = rows.len() as f64;
        let mut sums = match &local {
            Ok((loss, grads)) if !rows.is_empty() => {
                let mut sums: Vec<f64> =
                    grads.iter().flatten().map(|&g| f64::from(g) * m).collect();
                sums.push(loss * m);
                sums
            }
            _ => vec![0.0; lens.iter().sum::<usize>() + 1],
        };
        group.reduce(&mut sums, local)?;
        let loss = sums.pop().unwrap_or(0.0) / n as f64;
        let mut at = 0;
        let grads = lens
            .iter()
            .map(|&len| {
                let g = sums[at..at + len]
                    .iter()
                    .map(|&s| (s / n as f64) as f32)
                    .collect();
                at += len;
                g
            })
            .collect();
        Ok((loss, grads))
    }

    /// The mean loss and the gradients over rows `rows` (stored order).
    fn eval_rows(
        &mut self,
        params: &[Vec<f32>],
        rows: Range<usize>,
    ) -> Result<(f64, Vec<Vec<f32>>)> {
        match self {
            Evaluator::Cpu(engine) => {
                engine.set_params(params)?;
                let rows = Rows::Range {
                    start: rows.start,
                    len: rows.len(),
                };
                let loss = engine.loss_and_grads(rows)?;
                Ok((
                    loss,
                    engine.grads().into_iter().map(<[f32]>::to_vec).collect(),
                ))
            }
            Evaluator::Gpu { engine, .. } => {
                engine.set_params(params)?;
                let (loss, grads) = engine.loss_and_grads(rows.start, rows.len())?;
                Ok((f64::from(loss), grads))
            }
        }
    }

    /// Bytes sent and launches made, for the report.
    pub fn traffic(&self) -> Traffic {
        match self {
            Evaluator::Cpu(_) => Traffic {
                mode: "in-memory",
                ..Traffic::default()
            },
            Evaluator::Gpu { engine, .. } => Traffic {
                mode: "resident",
                bytes: engine.bytes_uploaded(),
                dispatches: engine.launches().0,
                submissions: engine.launches().1,
                ..Traffic::default()
            },
        }
    }
}

/// A regression's targets standardised for the solve (see the module's notes), or the
/// targets as they are.
pub(crate) struct SolveTargets<'a> {
    /// What the solver fits.
    pub targets: Cow<'a, Targets>,
    /// (ȳ, s_y) of a standardised regression target.
    shift: Option<(f64, f64)>,
}

impl<'a> SolveTargets<'a> {
    /// Standardises real targets under an MSE loss; leaves labels alone. The mean and
    /// deviation are those of `rows` of the targets, merged over the ranks of a
    /// distributed fit (each its own rows).
    pub fn new(
        targets: &'a Targets,
        loss: LossKind,
        (rows, group): (Range<usize>, Option<&Group>),
    ) -> Result<Self> {
        Ok(match (targets, loss) {
            (Targets::Real(y), LossKind::Mse) if !y.is_empty() => {
                let mine = &y[rows];
                let len = mine.len() as f64;
                let mean = mine.iter().map(|&v| f64::from(v)).sum::<f64>() / len.max(1.0);
                let m2 = mine
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>();
                let (count, mean, m2) = match group {
                    None => (len, mean, m2),
                    Some(g) => {
                        // Chan's merge of the ranks' (count, mean, M2), in rank order.
                        let all = g.gather(Ok(to_bytes(&[len, mean, m2])))?;
                        let (mut c, mut mu, mut s) = (0f64, 0f64, 0f64);
                        for part in all.iter().map(|b| from_bytes(b)) {
                            let (cr, mr, sr) = (part[0], part[1], part[2]);
                            if cr == 0.0 {
                                continue;
                            }
                            let (delta, total) = (mr - mu, c + cr);
                            mu += delta * cr / total;
                            s += sr + delta * delta * c * cr / total;
                            c = total;
                        }
                        (c, mu, s)
                    }
                };
                let var = m2 / count.max(1.0);
                let sd = if var.sqrt() > 0.0 { var.sqrt() } else { 1.0 };
                let scaled = y
                    .iter()
                    .map(|&v| ((f64::from(v) - mean) / sd) as f32)
                    .collect();
                SolveTargets {
                    targets: Cow::Owned(Targets::Real(scaled)),
                    shift: Some((mean, sd)),
                }
            }
            _ => SolveTargets {
                targets: Cow::Borrowed(targets),
                shift: None,
            },
        })
    }

    /// Parameters in the solver's units from the model's.
    fn to_solver(&self, program: &Program, params: &[Vec<f32>]) -> Vec<f64> {
        let (mean, sd) = self.shift.unwrap_or((0.0, 1.0));
        program
            .params
            .iter()
            .zip(params)
            .flat_map(|(d, v)| {
                let shift = if d.is_bias { mean } else { 0.0 };
                v.iter().map(move |&x| (f64::from(x) - shift) / sd)
            })
            .collect()
    }

    /// Parameters in the model's units from the solver's flat vector.
    fn to_model(&self, program: &Program, x: &[f64]) -> Vec<Vec<f32>> {
        unflatten(program, x, self.shift.unwrap_or((0.0, 1.0)))
    }

    /// A loss in the solver's units, in the model's.
    fn loss_to_model(&self, loss: f64) -> f64 {
        self.shift.map_or(loss, |(_, sd)| loss * sd * sd)
    }
}

/// What a full-batch fit returns to the trainer.
pub(crate) struct Solved {
    pub params: Vec<Vec<f32>>,
    /// The data loss (no penalty) after each iteration, in the model's units.
    pub losses: Vec<f64>,
    pub iterations: usize,
    pub evaluations: usize,
    pub stop: StopReason,
    pub converged: bool,
}

/// L-BFGS on `evaluator` from `init`: `settings`, the L2 coefficient `penalty` on the
/// non-bias tensors, `progress` told each iteration; `group`: the ranks of a distributed
/// fit, which evaluate in parts and then run the same iterations on the same values.
/// The interrupt check, told the iterations done: an error stops the solve.
type Interrupt<'a> = &'a dyn Fn(usize) -> Result<()>;

pub(crate) fn solve(
    (evaluator, group): (&mut Evaluator<'_>, Option<&Group>),
    program: &Program,
    targets: &SolveTargets<'_>,
    ((rows, n), init): ((Range<usize>, usize), &[Vec<f32>]),
    settings: Settings,
    penalty: Penalty,
    (progress, stop): (&mut dyn FnMut(Progress), Interrupt<'_>),
) -> Result<Solved> {
    // Iterations done, for the interrupt check before each evaluation.
    let done = std::cell::Cell::new(0);
    let l2 = match penalty {
        Penalty::L2(a) => a,
        _ => 0.0,
    };
    let weight_mask: Vec<bool> = program
        .params
        .iter()
        .flat_map(|d| std::iter::repeat_n(!d.is_bias, d.rows * d.cols))
        .collect();
    let penalty_of = |x: &[f64]| -> f64 {
        0.5 * l2
            * x.iter()
                .zip(&weight_mask)
                .filter(|(_, w)| **w)
                .map(|(v, _)| v * v)
                .sum::<f64>()
    };
    let mut objective = |x: &[f64]| -> Result<(f64, Vec<f64>)> {
        stop(done.get())?;
        let params = unflatten(program, x, (0.0, 1.0));
        let (loss, grads) = evaluator.eval(&params, (rows.clone(), n), group)?;
        let mut g: Vec<f64> = grads.iter().flatten().map(|&v| f64::from(v)).collect();
        if l2 > 0.0 {
            g.iter_mut()
                .zip(x)
                .zip(&weight_mask)
                .filter(|(_, w)| **w)
                .for_each(|((g, v), _)| *g += l2 * v);
        }
        Ok((loss + penalty_of(x), g))
    };
    let started = std::time::Instant::now();
    let mut losses = Vec::new();
    let mut on_iter = |iteration: usize, f: f64, x: &[f64]| {
        // The report shows the data loss, as the mini-batch loop's does.
        let loss = targets.loss_to_model(f - penalty_of(x));
        losses.push(loss);
        done.set(iteration);
        progress(Progress {
            epoch: iteration - 1,
            steps: iteration as u64,
            loss,
            samples_per_sec: (iteration * n) as f64 / started.elapsed().as_secs_f64().max(1e-9),
        });
        true
    };
    let x0 = targets.to_solver(program, init);
    let out = lbfgs::minimize(&mut objective, x0, settings, &mut on_iter)?;
    let converged = match out.end {
        End::Gradient => true,
        // No step lowers the loss at f32 precision: converged when the gradient is at
        // the level rounding leaves (a relative 10⁻⁵ of the loss, or 10⁻⁵ absolute).
        End::Stalled => out.grad_inf <= 1e-5 * out.f.abs().max(1.0),
        End::MaxIter => false,
    };
    let stop = match out.end {
        End::Gradient => StopReason::Converged {
            iterations: out.iterations,
            gradient: out.grad_inf,
        },
        End::Stalled => StopReason::Stalled {
            iterations: out.iterations,
            gradient: out.grad_inf,
        },
        End::MaxIter => StopReason::MaxEpochs,
    };
    Ok(Solved {
        params: targets.to_model(program, &out.x),
        losses,
        iterations: out.iterations,
        evaluations: out.evaluations,
        stop,
        converged,
    })
}

/// Each tensor's length.
fn program_lens(params: &[Vec<f32>]) -> Vec<usize> {
    params.iter().map(Vec::len).collect()
}

/// The program's tensors from a flat solver vector, each value `v · sd` and the biases
/// shifted by `mean` (`(0, 1)`: as they are, the engine's units inside an evaluation).
fn unflatten(program: &Program, x: &[f64], (mean, sd): (f64, f64)) -> Vec<Vec<f32>> {
    let mut at = 0;
    program
        .params
        .iter()
        .map(|d| {
            let len = d.rows * d.cols;
            let shift = if d.is_bias { mean } else { 0.0 };
            let v = x[at..at + len]
                .iter()
                .map(|&v| (v * sd + shift) as f32)
                .collect();
            at += len;
            v
        })
        .collect()
}

impl Trainer {
    /// A full-batch L-BFGS fit (see [`super::full_batch`]): the data in memory, evaluated
    /// on the CPU's fast kernels or resident on the device.
    pub(super) fn fit_full_batch<M: Model + ?Sized>(
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
        let n = data.n();
        let group = self.group.as_ref();
        let held = InMemory::of((data, weights), group, "solver lbfgs")?;
        let (dataset, rows, row_weights) = (&*held.data, held.rows, held.weights);
        let program = spec.program();
        let scope = (rows.clone(), group);
        let solve_targets = SolveTargets::new(dataset.targets(), program.loss, scope)?;
        let mut notes = Vec::new();
        let kernels = self.config.cpu_kernels;
        let t = &solve_targets.targets;
        let on_gpu = match self.gpu_context(&mut notes)? {
            Some(ctx) => {
                match Evaluator::gpu(&ctx, program.clone(), dataset, t, row_weights.clone()) {
                    Ok(e) => Some(e),
                    Err(e @ Error::DeviceLimit { .. }) if self.config.backend == Backend::Auto => {
                        notes.push(format!("training on the CPU: {e}"));
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let mut evaluator = match on_gpu {
            Some(e) => e,
            None => Evaluator::cpu(program.clone(), (dataset, t), row_weights, kernels),
        };
        let mut report = Report::new(model.name(), evaluator.backend(), choices);
        report.setup = started.elapsed();
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
        let solved = solve(
            (&mut evaluator, group),
            &program,
            &solve_targets,
            ((rows, n), &init),
            settings,
            choices.penalty,
            (&mut progress, &|iteration| {
                self.check_interrupt(iteration as u64, iteration)
            }),
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
}

/// The rows a full-batch fit (L-BFGS, the normal equations) reads: `auto::resolve` picks
/// one only for data in memory, or a distributed fit, each rank holding its share.
pub(super) struct InMemory<'a> {
    /// The dataset: the source itself, or this rank's share gathered.
    pub data: Cow<'a, Dataset>,
    /// The rows of `data` this process sums over.
    pub rows: Range<usize>,
    /// Every row's weight, when weighted.
    pub weights: Option<Vec<f32>>,
}

impl<'a> InMemory<'a> {
    /// The source's rows in memory; a rank's share gathered from a streamed one.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `solver` for a streamed source outside a
    /// distributed fit; the source's errors while gathering.
    pub fn of(
        (data, weights): Weighted<'a>,
        group: Option<&Group>,
        solver: &'static str,
    ) -> Result<Self> {
        let n = data.n();
        match (data.in_memory(), group) {
            (Some(d), _) => Ok(InMemory {
                data: Cow::Borrowed(d),
                rows: group.map_or(0..n, |g| g.part(n)),
                weights: weights.map(|w| w.all(d.targets())),
            }),
            (None, Some(g)) => {
                let (d, w) = g.agree(gather_shard(data, weights, g.part(n)))?;
                Ok(InMemory {
                    data: Cow::Owned(d),
                    rows: 0..g.part(n).len(),
                    weights: w,
                })
            }
            (None, None) => Err(Error::param(
                solver,
                "on a streamed source",
                "needs the rows in memory: use solver sgd",
            )),
        }
    }
}

/// Rows `rows` of `data` gathered into memory, with their weights: a rank's share of a
/// distributed full-batch fit. An empty share (fewer rows than ranks) holds the first row
/// so that the engines have a dataset, and evaluates none of it.
fn gather_shard(
    data: &dyn RowSource,
    weights: Option<&RowWeights<'_>>,
    rows: Range<usize>,
) -> Result<(Dataset, Option<Vec<f32>>)> {
    let idx: Vec<u32> = if rows.is_empty() {
        vec![0]
    } else {
        rows.map(|r| r as u32).collect()
    };
    let (mut x, mut targets, mut w) = (
        Vec::new(),
        HostTargets::empty(data.target_kind()),
        Vec::new(),
    );
    gather_rows(data, weights, &idx, (&mut x, &mut targets, &mut w))?;
    let targets = match (targets, data.classes()) {
        (HostTargets::Real(y), _) => Targets::Real(y),
        (HostTargets::Labels(labels), Some(classes)) => Targets::Classes { labels, classes },
        (HostTargets::Labels(labels), None) => Targets::Classes {
            classes: labels.iter().max().map_or(1, |&m| m as usize + 1),
            labels,
        },
    };
    let weights = weights.is_some().then_some(w);
    Ok((Dataset::new(x, data.p(), targets)?, weights))
}
