//! The CPU engine: interprets a [`Program`] once, op by op, with a set of [`Kernels`]
//! (the reference oracle, or the fast `f32` kernels; see [`super::kernels`]).
//!
//! The engine owns one buffer per [`BufDecl`](crate::program::BufDecl), sized for a batch
//! capacity, and borrows the dataset: in `f32` the features are read in place, never
//! copied. In `f64` (the gradient check) they are converted once.

use std::borrow::Cow;

pub use super::kernels::{Chosen, CpuKernels};
use super::kernels::{GlmPass, Kernels, LossInput, Operand, Precision, TargetView};
use crate::cpu::{self, Real};
pub use crate::data::Rows;
use crate::data::{BatchTargets, TargetKind, Targets};
use crate::error::{Error, Result};
use crate::program::{BufId, LossKind, Op, Program, Src};
use crate::program::{Rule, StepScalars};

enum EngineTargets<'a, T: Clone> {
    None,
    Real(Cow<'a, [T]>),
    Labels(Cow<'a, [u32]>),
}

/// Runs a model's [`Program`] on the CPU in precision `T` with kernels `K`: a set named
/// in the type (`CpuEngine<'_, f32, Reference>`, verify mode's oracle), or by default one
/// chosen at run time ([`CpuEngine::with_kernels`]).
pub struct CpuEngine<'a, T: Real, K: Kernels<T> = Chosen<T>> {
    program: Program,
    bufs: Vec<Vec<T>>,
    x: Cow<'a, [T]>,
    p: usize,
    n: usize,
    targets: EngineTargets<'a, T>,
    cap: usize,
    /// Row weights for the loss, read like the targets (`None`: every row weighs 1).
    weights: Option<Cow<'a, [f32]>>,
    /// Optimizer state per parameter (see [`crate::cpu::update`]), made at the first update.
    state: Vec<[Vec<T>; 2]>,
    /// The kernels every op runs with.
    kernels: K,
}

impl<'a, T: Precision> CpuEngine<'a, T> {
    /// An engine over features `x` (n × p, row-major) and optional targets, for batches
    /// of at most `cap` rows. Parameters start at zero; see [`CpuEngine::set_params`].
    pub fn new(
        program: Program,
        x: &'a [f32],
        p: usize,
        targets: Option<&'a Targets>,
        cap: usize,
    ) -> Self {
        let bufs = program
            .bufs
            .iter()
            .map(|b| vec![T::zero(); b.len(cap)])
            .collect();
        let targets = match targets {
            None => EngineTargets::None,
            Some(Targets::Real(y)) => EngineTargets::Real(T::from_f32_slice(y)),
            Some(Targets::Classes { labels, .. }) => EngineTargets::Labels(Cow::Borrowed(labels)),
        };
        CpuEngine {
            program,
            bufs,
            x: T::from_f32_slice(x),
            p,
            n: x.len() / p.max(1),
            targets,
            cap,
            weights: None,
            state: Vec::new(),
            kernels: T::kernels(CpuKernels::Reference),
        }
    }

    /// Runs with `kernels` (engines start with [`CpuKernels::Reference`]; the trainer asks
    /// for [`TrainConfig::cpu_kernels`](crate::TrainConfig::cpu_kernels)). An `f64`
    /// engine always runs the reference kernels.
    pub fn with_kernels(mut self, kernels: CpuKernels) -> Self {
        self.kernels = T::kernels(kernels);
        self
    }

    /// Weighs row `i`'s loss and gradient by `weights[i]` (see [`crate::cpu::loss`]).
    pub fn with_weights(mut self, weights: Cow<'a, [f32]>) -> Self {
        self.weights = Some(weights);
        self
    }

    /// An engine that holds no dataset: each batch (or group of consecutive batches) is
    /// copied in by [`CpuEngine::load`], then read as rows `0 ..` of what was loaded. This
    /// is how the CPU trains from a generator or a file, and how verify mode reruns a
    /// gathered batch.
    ///
    /// ```
    /// use gradflow::data::{BatchTargets, Synthetic, TargetKind};
    /// use gradflow::engine::{CpuEngine, Rows};
    /// use gradflow::model::{LinearRegression, Model};
    /// let data = Synthetic::linear(4, 2).dataset()?;
    /// let program = LinearRegression::new().spec_for(&data)?.program();
    /// let mut engine = CpuEngine::<f32>::for_batches(program, 2, TargetKind::Real, 4);
    /// engine.load(&[1.0, 2.0, 3.0, 4.0], BatchTargets::Real(&[3.0, 7.0]), None)?;
    /// let loss = engine.step(Rows::Range { start: 0, len: 2 }, 0.1)?;
    /// assert_eq!(loss, (9.0 + 49.0) / 2.0); // zero parameters: mean(y²), as in seed 000
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn for_batches(program: Program, p: usize, kind: TargetKind, cap: usize) -> Self {
        let targets = match kind {
            TargetKind::Real => EngineTargets::Real(Cow::Owned(Vec::new())),
            TargetKind::Labels => EngineTargets::Labels(Cow::Owned(Vec::new())),
        };
        let mut engine = Self::new(program, &[], p, None, cap);
        engine.targets = targets;
        engine
    }
}

impl<'a, T: Real, K: Kernels<T>> CpuEngine<'a, T, K> {
    /// The same engine with kernels `kernels`, named in its type: how verify mode and
    /// early stopping hold the reference oracle (`.on(Reference)`).
    pub fn on<K2: Kernels<T>>(self, kernels: K2) -> CpuEngine<'a, T, K2> {
        CpuEngine {
            program: self.program,
            bufs: self.bufs,
            x: self.x,
            p: self.p,
            n: self.n,
            targets: self.targets,
            cap: self.cap,
            weights: self.weights,
            state: self.state,
            kernels,
        }
    }

    /// Copies rows into the engine (`x`: rows × p, one target per row, and optionally one
    /// weight per row), replacing what it read before; rows `0 .. rows` are then
    /// addressable.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `x` is not whole rows of p, the target or weight
    /// count differs from the rows, or the targets are of another kind than the engine's.
    pub fn load(
        &mut self,
        x: &[f32],
        targets: BatchTargets<'_>,
        weights: Option<&[f32]>,
    ) -> Result<()> {
        let rows = x.len() / self.p.max(1);
        if weights.is_some_and(|w| w.len() != rows) {
            return Err(Error::ShapeMismatch {
                what: "loaded batch weights",
                expected: format!("one per row: {rows}"),
                got: weights.map_or(0, <[f32]>::len).to_string(),
            });
        }
        let kind_matches = matches!(
            (&self.targets, targets),
            (EngineTargets::Real(_), BatchTargets::Real(_))
                | (EngineTargets::Labels(_), BatchTargets::Labels(_))
        );
        if !x.len().is_multiple_of(self.p.max(1)) || targets.len() != rows || !kind_matches {
            return Err(Error::ShapeMismatch {
                what: "loaded batch",
                expected: format!(
                    "rows × {} features and one target per row, of the engine's kind",
                    self.p
                ),
                got: format!(
                    "{} values and {} {:?} targets",
                    x.len(),
                    targets.len(),
                    targets.kind()
                ),
            });
        }
        self.kernels.forget_gathered();
        let dst = self.x.to_mut();
        dst.clear();
        dst.extend(x.iter().map(|&v| T::of(f64::from(v))));
        match (&mut self.targets, targets) {
            (EngineTargets::Real(y), BatchTargets::Real(src)) => {
                let y = y.to_mut();
                y.clear();
                y.extend(src.iter().map(|&v| T::of(f64::from(v))));
            }
            (EngineTargets::Labels(l), BatchTargets::Labels(src)) => {
                let l = l.to_mut();
                l.clear();
                l.extend_from_slice(src);
            }
            _ => unreachable!("kinds checked above"),
        }
        match weights {
            Some(w) => {
                let dst = self
                    .weights
                    .get_or_insert_with(|| Cow::Owned(Vec::new()))
                    .to_mut();
                dst.clear();
                dst.extend_from_slice(w);
            }
            None => self.weights = None,
        }
        self.n = rows;
        Ok(())
    }

    /// The program being run.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Batch capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Sets every parameter from `values` (in [`Program::params`] order).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the count or a length differs from the program.
    pub fn set_params(&mut self, values: &[Vec<f32>]) -> Result<()> {
        self.program.check_params(values)?;
        for (decl, v) in self.program.params.iter().zip(values) {
            for (d, &s) in self.bufs[decl.value.0].iter_mut().zip(v) {
                *d = T::of(f64::from(s));
            }
        }
        Ok(())
    }

    /// The parameter values, rounded to `f32`, in [`Program::params`] order.
    pub fn params(&self) -> Vec<Vec<f32>> {
        self.program
            .params
            .iter()
            .map(|d| {
                self.bufs[d.value.0]
                    .iter()
                    .map(|v| v.f64() as f32)
                    .collect()
            })
            .collect()
    }

    /// The gradients from the last [`CpuEngine::backward`], in [`Program::params`] order.
    pub fn grads(&self) -> Vec<&[T]> {
        self.program
            .params
            .iter()
            .map(|d| &self.bufs[d.grad.0][..])
            .collect()
    }

    /// The gradients, for in-place changes (a distributed fit replaces a rank's
    /// gradients by the global batch's before the update).
    pub fn grads_mut(&mut self) -> Vec<&mut [T]> {
        let mut bufs: Vec<Option<&mut Vec<T>>> = self.bufs.iter_mut().map(Some).collect();
        self.program
            .params
            .iter()
            .map(|d| {
                &mut bufs[d.grad.0]
                    .take()
                    .expect("one gradient buffer per parameter")[..]
            })
            .collect()
    }

    /// Parameter tensor `i`, for in-place changes (the gradient check perturbs it).
    pub fn param_mut(&mut self, i: usize) -> &mut [T] {
        let id = self.program.params[i].value;
        &mut self.bufs[id.0]
    }

    /// Buffer `id`, for inspection (verify mode compares these with the GPU's).
    pub fn buf(&self, id: BufId) -> &[T] {
        &self.bufs[id.0]
    }

    /// Runs the forward pass for `rows`; the result is in [`Program::output`].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the batch is empty or exceeds the capacity, or a
    /// row index is out of range.
    pub fn forward(&mut self, rows: Rows<'_>) -> Result<()> {
        self.check_rows(rows)?;
        self.kernels.gather(&self.x, self.p, rows);
        let ops = std::mem::take(&mut self.program.forward);
        ops.iter().for_each(|op| self.run(op, rows));
        self.program.forward = ops;
        Ok(())
    }

    /// The fused loss on the output of the last forward pass: returns the mean loss and
    /// writes ∂L/∂output into [`Program::delta`].
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] when the engine has no targets of the loss's kind.
    pub fn loss(&mut self, rows: Rows<'_>) -> Result<f64> {
        self.check_rows(rows)?;
        let input = loss_input(&self.program, &self.targets, self.weights.as_deref(), rows)?;
        let (out, delta) = (self.program.output.0, self.program.delta.0);
        let mut dz = std::mem::take(&mut self.bufs[delta]);
        let loss = self.kernels.loss(&input, &self.bufs[out], &mut dz);
        self.bufs[delta] = dz;
        Ok(loss)
    }

    /// Back-propagates the last loss into every parameter's gradient buffer.
    ///
    /// # Errors
    /// As [`CpuEngine::forward`].
    pub fn backward(&mut self, rows: Rows<'_>) -> Result<()> {
        self.check_rows(rows)?;
        self.kernels.ensure_gathered(&self.x, self.p, rows);
        let ops = std::mem::take(&mut self.program.backward);
        ops.iter().for_each(|op| self.run(op, rows));
        self.program.backward = ops;
        Ok(())
    }

    /// The loss of the batch and every parameter's gradient at the current parameters:
    /// [`CpuEngine::forward`], [`CpuEngine::loss`] and [`CpuEngine::backward`] in one call,
    /// which the fast kernels run as one fused pass for a GLM whose weights fit
    /// [`FUSED_MAX_WEIGHTS`](crate::cpu::fast::glm::FUSED_MAX_WEIGHTS) (the output and δ buffers are then not written);
    /// a wider GLM (a softmax over many classes on long embeddings) runs the three parts
    /// on sgemm. Training calls this; verify mode and the gradient check call
    /// the three parts, to compare each tensor.
    ///
    /// # Errors
    /// As [`CpuEngine::forward`] and [`CpuEngine::loss`].
    pub fn loss_and_grads(&mut self, rows: Rows<'_>) -> Result<f64> {
        if let Some(glm) = self.program.as_glm() {
            self.check_rows(rows)?;
            let input = loss_input(&self.program, &self.targets, self.weights.as_deref(), rows)?;
            let mut gw = std::mem::take(&mut self.bufs[glm.grad_w.0]);
            let mut gb = std::mem::take(&mut self.bufs[glm.grad_b.0]);
            let pass = GlmPass {
                x: &self.x,
                p: self.p,
                input,
                w: &self.bufs[glm.w.0],
                b: &self.bufs[glm.b.0],
            };
            let fused = self.kernels.glm_loss_and_grads(pass, &mut gw, &mut gb);
            self.bufs[glm.grad_w.0] = gw;
            self.bufs[glm.grad_b.0] = gb;
            if let Some(loss) = fused {
                return Ok(loss);
            }
        }
        self.forward(rows)?;
        let loss = self.loss(rows)?;
        self.backward(rows)?;
        Ok(loss)
    }

    /// Asks the CPU to start loading feature rows `idx` (the first rows of the next
    /// shuffled batch), so that the next step does not begin with a stall (the fast
    /// kernels; the reference ones ignore it).
    pub fn prefetch(&self, idx: &[u32]) {
        self.kernels.prefetch(&self.x, self.p, idx);
    }

    /// Plain SGD on every parameter: `θ −= lr · ∂L/∂θ`.
    pub fn sgd(&mut self, lr: f64) {
        for d in &self.program.params {
            let grad = std::mem::take(&mut self.bufs[d.grad.0]);
            cpu::update::sgd(&mut self.bufs[d.value.0], &grad, T::of(lr));
            self.bufs[d.grad.0] = grad;
        }
    }

    /// One optimizer step on every parameter with `rule` and the step's scalars
    /// (penalties apply to weights only). The state (velocities, moments) lives in the
    /// engine, zero at first.
    pub fn update(&mut self, rule: Rule, step: &StepScalars) {
        self.ensure_state();
        let params = &self.program.params;
        let mut values: Vec<Vec<T>> = params
            .iter()
            .map(|d| std::mem::take(&mut self.bufs[d.value.0]))
            .collect();
        let grads: Vec<Vec<T>> = params
            .iter()
            .map(|d| std::mem::take(&mut self.bufs[d.grad.0]))
            .collect();
        let tensors = params
            .iter()
            .zip(values.iter_mut().zip(&grads))
            .zip(&mut self.state)
            .map(|((d, (value, grad)), [s1, s2])| {
                let s = step.of(d.is_bias).of::<T>();
                (&mut value[..], &grad[..], &mut s1[..], &mut s2[..], s)
            })
            .collect();
        self.kernels.update(rule, tensors);
        for ((d, value), grad) in params.iter().zip(values).zip(grads) {
            self.bufs[d.value.0] = value;
            self.bufs[d.grad.0] = grad;
        }
    }

    /// The optimizer state, in [`Program::params`] order, two tensors each (zeros before
    /// the first [`CpuEngine::update`]).
    pub fn optimizer_state(&mut self) -> Vec<[Vec<f32>; 2]> {
        self.ensure_state();
        self.state
            .iter()
            .map(|[a, b]| [to_f32(a), to_f32(b)])
            .collect()
    }

    /// Restores the optimizer state (as [`CpuEngine::optimizer_state`] returned it).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the count or a length differs from the program.
    pub fn set_optimizer_state(&mut self, state: &[[Vec<f32>; 2]]) -> Result<()> {
        self.program.check_state(state)?;
        let of = |v: &Vec<f32>| v.iter().map(|&x| T::of(f64::from(x))).collect();
        self.state = state.iter().map(|[a, b]| [of(a), of(b)]).collect();
        Ok(())
    }

    fn ensure_state(&mut self) {
        if self.state.len() != self.program.params.len() {
            self.state = self
                .program
                .params
                .iter()
                .map(|d| {
                    [
                        vec![T::zero(); d.rows * d.cols],
                        vec![T::zero(); d.rows * d.cols],
                    ]
                })
                .collect();
        }
    }

    /// Forward, loss, backward and SGD update on one batch; returns the batch loss
    /// (computed before the update, as in the seeds' loop).
    ///
    /// # Errors
    /// As [`CpuEngine::forward`] and [`CpuEngine::loss`].
    pub fn step(&mut self, rows: Rows<'_>, lr: f64) -> Result<f64> {
        self.forward(rows)?;
        let loss = self.loss(rows)?;
        self.backward(rows)?;
        self.sgd(lr);
        Ok(loss)
    }

    fn check_rows(&self, rows: Rows<'_>) -> Result<()> {
        let m = rows.len();
        if m == 0 || m > self.cap {
            return Err(Error::param(
                "batch rows",
                m,
                "must be between 1 and the engine's batch capacity",
            ));
        }
        let out_of_range = match rows {
            Rows::Range { start, len } => start + len > self.n,
            Rows::Gather(idx) => idx.iter().any(|&r| r as usize >= self.n),
        };
        if out_of_range {
            return Err(Error::ShapeMismatch {
                what: "batch rows",
                expected: format!("row indices below n = {}", self.n),
                got: "an index at or beyond n".into(),
            });
        }
        Ok(())
    }

    /// One op of the program on `rows`, with the engine's kernels.
    fn run(&mut self, op: &Op, rows: Rows<'_>) {
        let m = rows.len();
        let written = match *op {
            Op::Matmul { c, .. } => c,
            Op::BiasAdd { z, .. } => z,
            Op::Activate { a, .. } => a,
            Op::ActivateBackward { grad, .. } => grad,
            Op::ColSums { out, .. } => out,
        };
        let mut out = std::mem::take(&mut self.bufs[written.0]);
        let buf = |id: BufId| &self.bufs[id.0][..];
        let k = &self.kernels;
        match *op {
            Op::Matmul {
                layout,
                m: dm,
                k: dk,
                n: dn,
                a,
                b,
                ..
            } => {
                let a = match a {
                    Src::Features => Operand::Features {
                        x: &self.x,
                        p: self.p,
                        rows,
                    },
                    Src::Buf(a) => Operand::Buf(buf(a)),
                };
                k.matmul(
                    layout,
                    (dm.eval(m), dk.eval(m), dn.eval(m)),
                    a,
                    buf(b),
                    &mut out,
                );
            }
            Op::BiasAdd { cols, bias, .. } => k.bias_add(&mut out, m, cols, buf(bias)),
            Op::Activate { f, z, cols, .. } => k.activate(f, buf(z), &mut out, m, cols),
            Op::ActivateBackward { f, a, cols, .. } => {
                k.activate_backward(f, buf(a), &mut out, m, cols);
            }
            Op::ColSums { x, cols, .. } => k.col_sums(buf(x), m, cols, &mut out),
        }
        self.bufs[written.0] = out;
    }
}

fn to_f32<T: Real>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.f64() as f32).collect()
}

/// The loss's inputs for `rows`: the loss, the targets and the weights. A free function
/// over the engine's fields, so that the caller may borrow its buffers mutably beside it.
fn loss_input<'r, T: Clone>(
    program: &Program,
    targets: &'r EngineTargets<'_, T>,
    weights: Option<&'r [f32]>,
    rows: Rows<'r>,
) -> Result<LossInput<'r, T>> {
    let view = match (program.loss, targets) {
        (LossKind::Mse, EngineTargets::Real(y)) => TargetView::Real(&y[..]),
        (LossKind::SigmoidBce | LossKind::SoftmaxCce, EngineTargets::Labels(l)) => {
            TargetView::Labels(&l[..])
        }
        (kind, _) => {
            return Err(Error::TargetMismatch {
                model: "engine",
                expected: format!("targets for {kind:?}"),
                got: "none of that kind".into(),
            });
        }
    };
    Ok(LossInput {
        kind: program.loss,
        rows,
        targets: view,
        weights,
        cols: program.out_cols,
    })
}
