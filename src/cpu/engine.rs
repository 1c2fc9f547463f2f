//! The CPU engine: runs a [`Program`] with the reference kernels of [`crate::cpu`].
//!
//! The engine owns one buffer per [`BufDecl`](crate::program::BufDecl), sized for a batch
//! capacity, and borrows the dataset: in `f32` the features are read in place, never
//! copied. In `f64` (the gradient check) they are converted once.

use std::borrow::Cow;
use std::ops::Range;

use crate::cpu::fast::glm::{Batch, Glm, GlmTargets};
use crate::cpu::{self, Real, fast, loss::LossKind};
pub use crate::data::Rows;
use crate::data::{BatchTargets, TargetKind, Targets};
use crate::error::{Error, Result};
use crate::program::{BufId, Op, Program, Src};
use crate::program::{Rule, StepScalars};

/// Which kernels a [`CpuEngine`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CpuKernels {
    /// The fast `f32` kernels of [`crate::cpu::fast`]: fused GLM passes, sgemm, threads
    /// for large batches. What CPU training uses unless told otherwise.
    #[default]
    Fast,
    /// The reference kernels of [`crate::cpu`] (sums in `f64`, plain loops): the oracle.
    Reference,
}

enum EngineTargets<'a, T: Clone> {
    None,
    Real(Cow<'a, [T]>),
    Labels(Cow<'a, [u32]>),
}

/// Runs a model's [`Program`] on the CPU in precision `T`.
pub struct CpuEngine<'a, T: Real> {
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
    /// Which kernels run; [`CpuKernels::Fast`] applies to `f32` engines only.
    kernels: CpuKernels,
    /// Fast kernels: a shuffled batch's feature rows, gathered once per step for sgemm.
    gathered: Vec<f32>,
    /// The index list `gathered` holds the rows of (address and length), set by `forward`.
    gathered_for: Option<(usize, usize)>,
}

impl<'a, T: Real> CpuEngine<'a, T> {
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
            kernels: CpuKernels::Reference,
            gathered: Vec::new(),
            gathered_for: None,
        }
    }

    /// Runs with `kernels` (engines start with [`CpuKernels::Reference`]; the trainer asks
    /// for [`TrainConfig::cpu_kernels`](crate::TrainConfig::cpu_kernels)). An `f64`
    /// engine always runs the reference kernels.
    pub fn with_kernels(mut self, kernels: CpuKernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// Whether the fast kernels run: asked for, and `T` is `f32`.
    fn fast(&self) -> bool {
        self.kernels == CpuKernels::Fast && T::as_f32(&self.x).is_some()
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
        self.gathered_for = None;
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
        if self.fast() {
            self.gather(rows);
        }
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
        let (m, cols) = (rows.len(), self.program.out_cols);
        if self.fast() {
            let (out, delta) = (self.program.output.0, self.program.delta.0);
            let mut dz = std::mem::take(&mut self.bufs[delta]);
            // δ starts as a copy of z and becomes ∂L/∂z in place.
            let sum = self.batch(rows).map(|batch| {
                let d = &mut f32s_mut(&mut dz)[..m * cols];
                d.copy_from_slice(&f32s(&self.bufs[out])[..m * cols]);
                fast::glm::batch_loss(&batch, cols, d)
            });
            self.bufs[delta] = dz;
            return Ok(sum? / m as f64);
        }
        let mut dz = std::mem::take(&mut self.bufs[self.program.delta.0]);
        let z = &self.bufs[self.program.output.0];
        // Weights are read like the targets: one per row, through the same view.
        let w = self.weights.as_deref().map(|w| rows.view(w, 1).0);
        let loss = match (self.program.loss, &self.targets) {
            (LossKind::Mse, EngineTargets::Real(y)) => {
                let (y, idx) = rows.view(y, cols);
                cpu::loss::mse(z, y, idx, m, cols, &mut dz, w)
            }
            (LossKind::SigmoidBce, EngineTargets::Labels(l)) => {
                let (l, idx) = rows.view(l, 1);
                cpu::loss::sigmoid_bce(z, l, idx, m, &mut dz, w)
            }
            (LossKind::SoftmaxCce, EngineTargets::Labels(l)) => {
                let (l, idx) = rows.view(l, 1);
                cpu::loss::softmax_cce(z, l, idx, m, cols, &mut dz, w)
            }
            (kind, _) => {
                self.bufs[self.program.delta.0] = dz;
                return Err(Error::TargetMismatch {
                    model: "engine",
                    expected: format!("targets for {kind:?}"),
                    got: "none of that kind".into(),
                });
            }
        };
        self.bufs[self.program.delta.0] = dz;
        Ok(loss)
    }

    /// Back-propagates the last loss into every parameter's gradient buffer.
    ///
    /// # Errors
    /// As [`CpuEngine::forward`].
    pub fn backward(&mut self, rows: Rows<'_>) -> Result<()> {
        self.check_rows(rows)?;
        if self.fast() && !self.is_gathered(rows) {
            self.gather(rows);
        }
        let ops = std::mem::take(&mut self.program.backward);
        ops.iter().for_each(|op| self.run(op, rows));
        self.program.backward = ops;
        Ok(())
    }

    /// The loss of the batch and every parameter's gradient at the current parameters:
    /// [`CpuEngine::forward`], [`CpuEngine::loss`] and [`CpuEngine::backward`] in one call,
    /// which the fast kernels run as one fused pass for a GLM whose weights fit
    /// [`fast::glm::FUSED_MAX_WEIGHTS`] (the output and δ buffers are then not written);
    /// a wider GLM (a softmax over many classes on long embeddings) runs the three parts
    /// on sgemm. Training calls this; verify mode and the gradient check call
    /// the three parts, to compare each tensor.
    ///
    /// # Errors
    /// As [`CpuEngine::forward`] and [`CpuEngine::loss`].
    pub fn loss_and_grads(&mut self, rows: Rows<'_>) -> Result<f64> {
        let fuses = self.p * self.program.out_cols <= fast::glm::FUSED_MAX_WEIGHTS;
        match self.program.as_glm().filter(|_| self.fast() && fuses) {
            Some(glm) => {
                self.check_rows(rows)?;
                let mut gw = std::mem::take(&mut self.bufs[glm.grad_w.0]);
                let mut gb = std::mem::take(&mut self.bufs[glm.grad_b.0]);
                let loss = self.batch(rows).map(|batch| {
                    let pass = Glm {
                        x: f32s(&self.x),
                        p: self.p,
                        batch,
                        w: f32s(&self.bufs[glm.w.0]),
                        b: f32s(&self.bufs[glm.b.0]),
                    };
                    pass.loss_and_grads(f32s_mut(&mut gw), f32s_mut(&mut gb))
                });
                self.bufs[glm.grad_w.0] = gw;
                self.bufs[glm.grad_b.0] = gb;
                loss
            }
            None => {
                self.forward(rows)?;
                let loss = self.loss(rows)?;
                self.backward(rows)?;
                Ok(loss)
            }
        }
    }

    /// Fast kernels: asks the CPU to start loading feature rows `idx` (the first rows of
    /// the next shuffled batch), so that the next step does not begin with a stall.
    pub fn prefetch(&self, idx: &[u32]) {
        if self.fast() {
            let x = f32s(&self.x);
            for &r in idx {
                if let Some(row) = x.get(r as usize * self.p..(r as usize + 1) * self.p) {
                    fast::prefetch(row);
                }
            }
        }
    }

    /// The fast kernels' view of a batch's targets, weights and loss.
    fn batch<'r>(&'r self, rows: Rows<'r>) -> Result<Batch<'r>> {
        let targets = match (self.program.loss, &self.targets) {
            (LossKind::Mse, EngineTargets::Real(y)) => GlmTargets::Real(f32s(y)),
            (LossKind::SigmoidBce | LossKind::SoftmaxCce, EngineTargets::Labels(l)) => {
                GlmTargets::Labels(l)
            }
            (kind, _) => {
                return Err(Error::TargetMismatch {
                    model: "engine",
                    expected: format!("targets for {kind:?}"),
                    got: "none of that kind".into(),
                });
            }
        };
        Ok(Batch {
            rows,
            targets,
            weights: self.weights.as_deref(),
            loss: self.program.loss,
        })
    }

    /// Fast kernels: copies a shuffled batch's feature rows into `gathered`.
    fn gather(&mut self, rows: Rows<'_>) {
        if let Rows::Gather(idx) = rows {
            let x = f32s(&self.x);
            self.gathered.resize(idx.len() * self.p, 0.0);
            fast::ops::gather(x, self.p, idx, &mut self.gathered);
            self.gathered_for = Some((idx.as_ptr() as usize, idx.len()));
        }
    }

    /// Whether `gathered` holds `rows` (always, for rows read in place).
    fn is_gathered(&self, rows: Rows<'_>) -> bool {
        match rows {
            Rows::Range { .. } => true,
            Rows::Gather(idx) => self.gathered_for == Some((idx.as_ptr() as usize, idx.len())),
        }
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
        let total: usize = self.program.params.iter().map(|d| d.rows * d.cols).sum();
        // From a few thousand parameters (the MLP's 19,000; not a GLM's 65) the update
        // is worth a hand-off: measured W3 1.77–1.81 → 1.84–1.91 M rows/s.
        if self.fast() && total >= UPDATE_SPLIT {
            return self.update_on_team(rule, step);
        }
        for (d, [s1, s2]) in self.program.params.iter().zip(&mut self.state) {
            let s = step.of(d.is_bias);
            let grad = std::mem::take(&mut self.bufs[d.grad.0]);
            cpu::update::apply(rule, &mut self.bufs[d.value.0], &grad, s1, s2, &s.of());
            self.bufs[d.grad.0] = grad;
        }
    }

    /// [`CpuEngine::update`] with every tensor cut in two halves, one for each member of
    /// the [`team`](fast::team): the update is elementwise, so the bits are the same.
    fn update_on_team(&mut self, rule: Rule, step: &StepScalars) {
        let params = &self.program.params;
        let mut values: Vec<Vec<T>> = params
            .iter()
            .map(|d| std::mem::take(&mut self.bufs[d.value.0]))
            .collect();
        let grads: Vec<Vec<T>> = params
            .iter()
            .map(|d| std::mem::take(&mut self.bufs[d.grad.0]))
            .collect();
        let scalars: Vec<_> = params
            .iter()
            .map(|d| step.of(d.is_bias).of::<T>())
            .collect();
        {
            type Half<'a, T> = (&'a mut [T], &'a [T], &'a mut [T], &'a mut [T]);
            let mut halves: [Vec<(Half<'_, T>, usize)>; 2] = [Vec::new(), Vec::new()];
            let tensors = values.iter_mut().zip(&grads).zip(&mut self.state);
            for (i, ((value, grad), [s1, s2])) in tensors.enumerate() {
                let n = params[i].rows * params[i].cols;
                let mid = n / 2;
                let (v0, v1) = value[..n].split_at_mut(mid);
                let (g0, g1) = grad[..n].split_at(mid);
                let (a0, a1) = s1[..n].split_at_mut(mid);
                let (b0, b1) = s2[..n].split_at_mut(mid);
                halves[0].push(((v0, g0, a0, b0), i));
                halves[1].push(((v1, g1, a1, b1), i));
            }
            let halves = halves.map(std::sync::Mutex::new);
            fast::team::for_each(2, &|h| {
                let mut half = halves[h]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for ((value, grad, s1, s2), i) in half.iter_mut() {
                    cpu::update::apply(rule, value, grad, s1, s2, &scalars[*i]);
                }
            });
        }
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

    fn run(&mut self, op: &Op, rows: Rows<'_>) {
        if self.fast() {
            return self.run_fast(op, rows);
        }
        let m = rows.len();
        match *op {
            Op::Matmul {
                layout,
                m: dm,
                k: dk,
                n: dn,
                a,
                b,
                c,
            } => {
                let (mm, kk, nn) = (dm.eval(m), dk.eval(m), dn.eval(m));
                let mut out = std::mem::take(&mut self.bufs[c.0]);
                let bv = &self.bufs[b.0];
                match a {
                    Src::Features => {
                        let (av, idx) = rows.view(&self.x, self.p);
                        cpu::matmul::matmul(layout, mm, kk, nn, av, idx, bv, &mut out);
                    }
                    Src::Buf(a) => {
                        cpu::matmul::matmul(layout, mm, kk, nn, &self.bufs[a.0], None, bv, &mut out)
                    }
                }
                self.bufs[c.0] = out;
            }
            Op::BiasAdd { z, cols, bias } => {
                let mut zv = std::mem::take(&mut self.bufs[z.0]);
                cpu::bias::bias_add(&mut zv, m, cols, &self.bufs[bias.0]);
                self.bufs[z.0] = zv;
            }
            Op::Activate { f, z, a, cols } => {
                let mut av = std::mem::take(&mut self.bufs[a.0]);
                cpu::activation::activate(f, &self.bufs[z.0][..m * cols], &mut av);
                self.bufs[a.0] = av;
            }
            Op::ActivateBackward { f, a, grad, cols } => {
                let mut g = std::mem::take(&mut self.bufs[grad.0]);
                cpu::activation::activate_backward(f, &self.bufs[a.0], &mut g[..m * cols]);
                self.bufs[grad.0] = g;
            }
            Op::ColSums { x, cols, out } => {
                let mut o = std::mem::take(&mut self.bufs[out.0]);
                cpu::reduce::col_sums(&self.bufs[x.0], m, cols, &mut o);
                self.bufs[out.0] = o;
            }
        }
    }
}

impl<T: Real> CpuEngine<'_, T> {
    /// [`CpuEngine::run`] with the fast kernels (an `f32` engine).
    fn run_fast(&mut self, op: &Op, rows: Rows<'_>) {
        let m = rows.len();
        let written = match *op {
            Op::Matmul { c, .. } => c,
            Op::BiasAdd { z, .. } => z,
            Op::Activate { a, .. } => a,
            Op::ActivateBackward { grad, .. } => grad,
            Op::ColSums { out, .. } => out,
        };
        let mut out = std::mem::take(&mut self.bufs[written.0]);
        let o = f32s_mut(&mut out);
        let buf = |id: BufId| f32s(&self.bufs[id.0]);
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
                let a = match (a, rows) {
                    (Src::Features, Rows::Gather(_)) => &self.gathered[..],
                    (Src::Features, Rows::Range { start, .. }) => &f32s(&self.x)[start * self.p..],
                    (Src::Buf(a), _) => buf(a),
                };
                let (mm, kk, nn) = (dm.eval(m), dk.eval(m), dn.eval(m));
                fast::ops::matmul_split(layout, mm, kk, nn, a, buf(b), o);
            }
            Op::BiasAdd { cols, bias, .. } => {
                let bias = buf(bias);
                by_rows(&mut o[..m * cols], m, cols, &|rows, z| {
                    fast::ops::bias_add(z, rows.len(), cols, bias);
                });
            }
            Op::Activate { f, z, cols, .. } => {
                let z = buf(z);
                by_rows(&mut o[..m * cols], m, cols, &|rows, part| {
                    fast::ops::activate(f, &z[rows.start * cols..rows.end * cols], part);
                });
            }
            Op::ActivateBackward { f, a, cols, .. } => {
                let a = buf(a);
                by_rows(&mut o[..m * cols], m, cols, &|rows, part| {
                    let a = &a[rows.start * cols..rows.end * cols];
                    fast::ops::activate_backward(f, a, part);
                });
            }
            Op::ColSums { x, cols, .. } => fast::ops::col_sums(buf(x), m, cols, o),
        }
        self.bufs[written.0] = out;
    }
}

/// Parameters from which the update is split over the team (a few µs of work).
const UPDATE_SPLIT: usize = 1 << 13;

/// Runs `f(rows, out_rows)` over an `m × cols` output: as two halves of rows on the team
/// when it is large enough, else whole. An elementwise op gives the same bits either way.
fn by_rows(out: &mut [f32], m: usize, cols: usize, f: &(dyn Fn(Range<usize>, &mut [f32]) + Sync)) {
    if m * cols >= fast::ops::SPLIT_ELEMENTS && m >= 2 {
        let mid = m / 2;
        fast::team::split_in_two(out, mid * cols, &|h, part| {
            f(if h == 0 { 0..mid } else { mid..m }, part);
        });
    } else {
        f(0..m, out);
    }
}

/// An `f32` engine's values (the fast kernels run only where [`CpuEngine::fast`] holds).
fn f32s<T: Real>(v: &[T]) -> &[f32] {
    T::as_f32(v).expect("the fast kernels run on f32 engines only")
}

/// As [`f32s`], mutably.
fn f32s_mut<T: Real>(v: &mut [T]) -> &mut [f32] {
    T::as_f32_mut(v).expect("the fast kernels run on f32 engines only")
}

fn to_f32<T: Real>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.f64() as f32).collect()
}
