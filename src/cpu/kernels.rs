//! The CPU kernel sets an engine runs a program with.
//!
//! [`CpuEngine`](super::engine::CpuEngine) interprets a [`Program`](crate::program::Program)
//! once, op by op; what each op computes with is a [`Kernels`] implementation:
//!
//! | set | precision | what it is |
//! |---|---|---|
//! | [`Reference`] | any [`Real`] (`f32`, `f64`) | plain loops summing in `f64`: the oracle of every test, of verify mode and of the gradient check |
//! | [`Fast`] | `f32` | what CPU training runs: sgemm, a shuffled batch's rows gathered once per step, one fused pass per batch for a GLM, the work split over the [`team`](super::fast::team) |
//!
//! An engine names its set in its type (`CpuEngine<'_, f32, Reference>`), or takes it at
//! run time ([`CpuKernels`], the trainer's setting) behind a [`Chosen`] box.

use std::ops::Range;

use super::fast::glm::{Batch, Glm, GlmTargets};
use super::{Real, fast};
use crate::data::Rows;
use crate::program::{Activation, Layout, LossKind, Rule, Scalars};

/// Which kernels an engine chosen at run time runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CpuKernels {
    /// The fast `f32` kernels of [`crate::cpu::fast`]: fused GLM passes, sgemm, threads
    /// for large batches. What CPU training uses unless told otherwise.
    #[default]
    Fast,
    /// The reference kernels of [`crate::cpu`] (sums in `f64`, plain loops): the oracle.
    Reference,
}

/// A matmul's left operand: the batch's feature rows (through `rows`), or a buffer.
#[derive(Debug, Clone, Copy)]
pub enum Operand<'r, T> {
    /// The features, `p` values a row, read at `rows`.
    Features {
        /// All the engine's rows.
        x: &'r [T],
        /// Values per row.
        p: usize,
        /// The batch's rows.
        rows: Rows<'r>,
    },
    /// A buffer of the program.
    Buf(&'r [T]),
}

/// A batch's targets as the loss reads them, indexed like the feature rows.
#[derive(Debug, Clone, Copy)]
pub enum TargetView<'r, T> {
    /// Real values, `cols` a row (MSE).
    Real(&'r [T]),
    /// A class a row (the cross-entropies).
    Labels(&'r [u32]),
}

/// What a fused loss reads besides the output: the loss, the batch's rows, their targets
/// and weights, and the shape.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'r, T> {
    /// The loss.
    pub kind: LossKind,
    /// The batch's rows (of the targets and weights, as of the features).
    pub rows: Rows<'r>,
    /// The targets.
    pub targets: TargetView<'r, T>,
    /// Row weights, or every row weighs 1.
    pub weights: Option<&'r [f32]>,
    /// Output columns.
    pub cols: usize,
}

/// One parameter tensor's update: the values, the gradient, the two state tensors and
/// the step's scalars for it.
pub type Tensor<'t, T> = (&'t mut [T], &'t [T], &'t mut [T], &'t mut [T], Scalars<T>);

/// One set of CPU kernels: everything an engine computes with.
pub trait Kernels<T: Real> {
    /// Called before the forward pass reads `rows` of `x` (`p` a row): the fast set
    /// gathers a shuffled batch's rows here, once for all of the step's products.
    fn gather(&mut self, _x: &[T], _p: usize, _rows: Rows<'_>) {}
    /// As [`Kernels::gather`] before the backward pass: only if `rows` are not the ones
    /// gathered last.
    fn ensure_gathered(&mut self, _x: &[T], _p: usize, _rows: Rows<'_>) {}
    /// The engine's rows changed (a group was loaded): anything gathered is stale.
    fn forget_gathered(&mut self) {}
    /// `c = op(a) · op(b)`, `shape = (m, k, n)`.
    fn matmul(
        &self,
        layout: Layout,
        shape: (usize, usize, usize),
        a: Operand<'_, T>,
        b: &[T],
        c: &mut [T],
    );
    /// `z[i, :] += bias` over `m` rows of `cols`.
    fn bias_add(&self, z: &mut [T], m: usize, cols: usize, bias: &[T]);
    /// `a = f(z)` over `m` rows of `cols`.
    fn activate(&self, f: Activation, z: &[T], a: &mut [T], m: usize, cols: usize);
    /// `grad ⊙= f′` (from the activation's output `a`) over `m` rows of `cols`.
    fn activate_backward(&self, f: Activation, a: &[T], grad: &mut [T], m: usize, cols: usize);
    /// `out = 1ᵀ x` over `m` rows of `cols`.
    fn col_sums(&self, x: &[T], m: usize, cols: usize, out: &mut [T]);
    /// The mean loss of output `z` and `δ = ∂L/∂z` into `dz`.
    fn loss(&self, input: &LossInput<'_, T>, z: &[T], dz: &mut [T]) -> f64;
    /// A GLM's mean loss and gradients in one pass over `x`'s `rows`, when this set has
    /// such a pass for these shapes; `None`: the engine runs forward, loss and backward.
    fn glm_loss_and_grads(
        &self,
        _glm: GlmPass<'_, T>,
        _gw: &mut [T],
        _gb: &mut [T],
    ) -> Option<f64> {
        None
    }
    /// One optimizer step with `rule` on every tensor.
    fn update(&self, rule: Rule, tensors: Vec<Tensor<'_, T>>) {
        for (value, grad, s1, s2, s) in tensors {
            super::update::apply(rule, value, grad, s1, s2, &s);
        }
    }
    /// Asks the CPU to start loading rows `idx` of `x` (the next batch's first rows).
    fn prefetch(&self, _x: &[T], _p: usize, _idx: &[u32]) {}
}

/// A GLM step's inputs for a fused pass: the data, the batch, the parameters.
#[derive(Debug, Clone, Copy)]
pub struct GlmPass<'r, T> {
    /// All the engine's rows.
    pub x: &'r [T],
    /// Features per row.
    pub p: usize,
    /// The loss's inputs.
    pub input: LossInput<'r, T>,
    /// Weights W, `p × k`.
    pub w: &'r [T],
    /// Bias, `k`.
    pub b: &'r [T],
}

/// The reference kernels (`crate::cpu`): plain loops, sums in `f64`, any precision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

impl<T: Real> Kernels<T> for Reference {
    fn matmul(
        &self,
        layout: Layout,
        (m, k, n): (usize, usize, usize),
        a: Operand<'_, T>,
        b: &[T],
        c: &mut [T],
    ) {
        match a {
            Operand::Features { x, p, rows } => {
                let (a, idx) = rows.view(x, p);
                super::matmul::matmul(layout, m, k, n, a, idx, b, c);
            }
            Operand::Buf(a) => super::matmul::matmul(layout, m, k, n, a, None, b, c),
        }
    }
    fn bias_add(&self, z: &mut [T], m: usize, cols: usize, bias: &[T]) {
        super::bias::bias_add(z, m, cols, bias);
    }
    fn activate(&self, f: Activation, z: &[T], a: &mut [T], m: usize, cols: usize) {
        super::activation::activate(f, &z[..m * cols], a);
    }
    fn activate_backward(&self, f: Activation, a: &[T], grad: &mut [T], m: usize, cols: usize) {
        super::activation::activate_backward(f, a, &mut grad[..m * cols]);
    }
    fn col_sums(&self, x: &[T], m: usize, cols: usize, out: &mut [T]) {
        super::reduce::col_sums(x, m, cols, out);
    }
    fn loss(&self, input: &LossInput<'_, T>, z: &[T], dz: &mut [T]) -> f64 {
        let (rows, m, cols) = (input.rows, input.rows.len(), input.cols);
        // Weights are read like the targets: one per row, through the same view.
        let w = input.weights.map(|w| rows.view(w, 1).0);
        match (input.kind, input.targets) {
            (LossKind::Mse, TargetView::Real(y)) => {
                let (y, idx) = rows.view(y, cols);
                super::loss::mse(z, y, idx, m, cols, dz, w)
            }
            (LossKind::SigmoidBce, TargetView::Labels(l)) => {
                let (l, idx) = rows.view(l, 1);
                super::loss::sigmoid_bce(z, l, idx, m, dz, w)
            }
            (LossKind::SoftmaxCce, TargetView::Labels(l)) => {
                let (l, idx) = rows.view(l, 1);
                super::loss::softmax_cce(z, l, idx, m, cols, dz, w)
            }
            (kind, _) => unreachable!("the engine checks the targets against {kind:?}"),
        }
    }
}

/// The fast `f32` kernels (`crate::cpu::fast`), with the rows of the last shuffled batch
/// they gathered for sgemm.
#[derive(Debug, Clone, Default)]
pub struct Fast {
    /// A shuffled batch's feature rows, gathered once per step.
    gathered: Vec<f32>,
    /// The index list `gathered` holds the rows of (address and length).
    gathered_for: Option<(usize, usize)>,
}

/// Parameters from which the update is split over the team (a few µs of work). From a
/// few thousand parameters (the MLP's 19,000; not a GLM's 65) the update is worth a
/// hand-off: measured W3 1.77–1.81 → 1.84–1.91 M rows/s.
const UPDATE_SPLIT: usize = 1 << 13;

impl Fast {
    fn fast_batch<'r>(input: &LossInput<'r, f32>) -> Batch<'r> {
        Batch {
            rows: input.rows,
            targets: match input.targets {
                TargetView::Real(y) => GlmTargets::Real(y),
                TargetView::Labels(l) => GlmTargets::Labels(l),
            },
            weights: input.weights,
            loss: input.kind,
        }
    }
}

impl Kernels<f32> for Fast {
    fn gather(&mut self, x: &[f32], p: usize, rows: Rows<'_>) {
        if let Rows::Gather(idx) = rows {
            self.gathered.resize(idx.len() * p, 0.0);
            fast::ops::gather(x, p, idx, &mut self.gathered);
            self.gathered_for = Some((idx.as_ptr() as usize, idx.len()));
        }
    }
    fn ensure_gathered(&mut self, x: &[f32], p: usize, rows: Rows<'_>) {
        let held = match rows {
            Rows::Range { .. } => true,
            Rows::Gather(idx) => self.gathered_for == Some((idx.as_ptr() as usize, idx.len())),
        };
        if !held {
            self.gather(x, p, rows);
        }
    }
    fn forget_gathered(&mut self) {
        self.gathered_for = None;
    }
    fn matmul(
        &self,
        layout: Layout,
        (m, k, n): (usize, usize, usize),
        a: Operand<'_, f32>,
        b: &[f32],
        c: &mut [f32],
    ) {
        let a = match a {
            Operand::Features {
                rows: Rows::Gather(_),
                ..
            } => &self.gathered[..],
            Operand::Features {
                x,
                p,
                rows: Rows::Range { start, .. },
            } => &x[start * p..],
            Operand::Buf(a) => a,
        };
        fast::ops::matmul_split(layout, m, k, n, a, b, c);
    }
    fn bias_add(&self, z: &mut [f32], m: usize, cols: usize, bias: &[f32]) {
        by_rows(&mut z[..m * cols], m, cols, &|rows, z| {
            fast::ops::bias_add(z, rows.len(), cols, bias);
        });
    }
    fn activate(&self, f: Activation, z: &[f32], a: &mut [f32], m: usize, cols: usize) {
        by_rows(&mut a[..m * cols], m, cols, &|rows, part| {
            fast::ops::activate(f, &z[rows.start * cols..rows.end * cols], part);
        });
    }
    fn activate_backward(&self, f: Activation, a: &[f32], grad: &mut [f32], m: usize, cols: usize) {
        by_rows(&mut grad[..m * cols], m, cols, &|rows, part| {
            let a = &a[rows.start * cols..rows.end * cols];
            fast::ops::activate_backward(f, a, part);
        });
    }
    fn col_sums(&self, x: &[f32], m: usize, cols: usize, out: &mut [f32]) {
        fast::ops::col_sums(x, m, cols, out);
    }
    fn loss(&self, input: &LossInput<'_, f32>, z: &[f32], dz: &mut [f32]) -> f64 {
        let (m, cols) = (input.rows.len(), input.cols);
        // δ starts as a copy of z and becomes ∂L/∂z in place.
        let d = &mut dz[..m * cols];
        d.copy_from_slice(&z[..m * cols]);
        fast::glm::batch_loss(&Self::fast_batch(input), cols, d) / m as f64
    }
    fn glm_loss_and_grads(
        &self,
        glm: GlmPass<'_, f32>,
        gw: &mut [f32],
        gb: &mut [f32],
    ) -> Option<f64> {
        (glm.p * glm.input.cols <= fast::glm::FUSED_MAX_WEIGHTS).then(|| {
            let pass = Glm {
                x: glm.x,
                p: glm.p,
                batch: Self::fast_batch(&glm.input),
                w: glm.w,
                b: glm.b,
            };
            pass.loss_and_grads(gw, gb)
        })
    }
    fn update(&self, rule: Rule, tensors: Vec<Tensor<'_, f32>>) {
        let total: usize = tensors.iter().map(|t| t.0.len()).sum();
        if total < UPDATE_SPLIT {
            return Reference.update(rule, tensors);
        }
        // Every tensor cut in two halves, one for each member of the team: the update
        // is elementwise, so the bits are the same.
        let mut halves: [Vec<Tensor<'_, f32>>; 2] = [Vec::new(), Vec::new()];
        for (value, grad, s1, s2, s) in tensors {
            let mid = value.len() / 2;
            let (v0, v1) = value.split_at_mut(mid);
            let (g0, g1) = grad[..v0.len() + v1.len()].split_at(mid);
            let (a0, a1) = s1.split_at_mut(mid);
            let (b0, b1) = s2.split_at_mut(mid);
            halves[0].push((v0, g0, a0, b0, s));
            halves[1].push((v1, g1, a1, b1, s));
        }
        let halves = halves.map(std::sync::Mutex::new);
        fast::team::for_each(2, &|h| {
            let mut half = halves[h]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (value, grad, s1, s2, s) in half.iter_mut() {
                super::update::apply(rule, value, grad, s1, s2, s);
            }
        });
    }
    fn prefetch(&self, x: &[f32], p: usize, idx: &[u32]) {
        for &r in idx {
            if let Some(row) = x.get(r as usize * p..(r as usize + 1) * p) {
                fast::prefetch(row);
            }
        }
    }
}

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

/// A kernel set chosen at run time ([`CpuKernels`]): the engine's default, so that a
/// setting can pick it.
pub type Chosen<T> = Box<dyn Kernels<T> + Send>;

impl<T: Real> Kernels<T> for Chosen<T> {
    fn gather(&mut self, x: &[T], p: usize, rows: Rows<'_>) {
        (**self).gather(x, p, rows);
    }
    fn ensure_gathered(&mut self, x: &[T], p: usize, rows: Rows<'_>) {
        (**self).ensure_gathered(x, p, rows);
    }
    fn forget_gathered(&mut self) {
        (**self).forget_gathered();
    }
    fn matmul(
        &self,
        layout: Layout,
        shape: (usize, usize, usize),
        a: Operand<'_, T>,
        b: &[T],
        c: &mut [T],
    ) {
        (**self).matmul(layout, shape, a, b, c);
    }
    fn bias_add(&self, z: &mut [T], m: usize, cols: usize, bias: &[T]) {
        (**self).bias_add(z, m, cols, bias);
    }
    fn activate(&self, f: Activation, z: &[T], a: &mut [T], m: usize, cols: usize) {
        (**self).activate(f, z, a, m, cols);
    }
    fn activate_backward(&self, f: Activation, a: &[T], grad: &mut [T], m: usize, cols: usize) {
        (**self).activate_backward(f, a, grad, m, cols);
    }
    fn col_sums(&self, x: &[T], m: usize, cols: usize, out: &mut [T]) {
        (**self).col_sums(x, m, cols, out);
    }
    fn loss(&self, input: &LossInput<'_, T>, z: &[T], dz: &mut [T]) -> f64 {
        (**self).loss(input, z, dz)
    }
    fn glm_loss_and_grads(&self, glm: GlmPass<'_, T>, gw: &mut [T], gb: &mut [T]) -> Option<f64> {
        (**self).glm_loss_and_grads(glm, gw, gb)
    }
    fn update(&self, rule: Rule, tensors: Vec<Tensor<'_, T>>) {
        (**self).update(rule, tensors);
    }
    fn prefetch(&self, x: &[T], p: usize, idx: &[u32]) {
        (**self).prefetch(x, p, idx);
    }
}

/// The precisions an engine runs in, and the kernel sets each can choose.
pub trait Precision: Real {
    /// `which` in this precision: the fast set exists for `f32` only, so an `f64` engine
    /// always runs the reference kernels.
    fn kernels(which: CpuKernels) -> Chosen<Self>;
}

impl Precision for f32 {
    fn kernels(which: CpuKernels) -> Chosen<f32> {
        match which {
            CpuKernels::Fast => Box::new(Fast::default()),
            CpuKernels::Reference => Box::new(Reference),
        }
    }
}

impl Precision for f64 {
    fn kernels(_: CpuKernels) -> Chosen<f64> {
        Box::new(Reference)
    }
}
