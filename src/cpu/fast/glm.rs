//! Linear, logistic and softmax regression in one fused pass per batch.
//!
//! The reference engine runs a GLM step as five kernels (X·W, + b, the loss, Xᵀδ, 1ᵀδ),
//! each a pass over its operands, and reads a shuffled batch through its index twice. Here
//! the batch is cut into chunks of [`CHUNK`] rows; for each chunk the rows are read once
//! from memory to compute z = x·W + b, the loss and δ are computed on the chunk's z, and
//! Xᵀδ is accumulated while the chunk's rows are still in L1. The next chunk's rows are
//! prefetched meanwhile, so a random-order batch costs about what a sequential one does.
//!
//! A batch of at least `2 · BLOCK` rows (full-batch descent) is split into blocks of
//! [`BLOCK`] rows on rayon's threads; each block's partial gradient is summed in `f32` and
//! the blocks are added in `f64`, in block order: the same result on any number of threads.
//! A mini-batch of at least `2 · CHUNK` rows is split into two halves on the
//! [`team`], whose hand-off is fast enough for a 10 µs step; the second
//! half's gradient is added to the first's, on one thread or two alike.
//!
//! The loss and δ are those of [`crate::cpu::loss`] (weights, `2/N` for MSE, `1/N` for the
//! cross-entropies), in `f32` with [`super::math`]'s `exp`/`ln`.

use rayon::prelude::*;

use std::sync::{Mutex, PoisonError};

use super::{axpy, dot, math, multiversion, prefetch, team};
use crate::data::Rows;
use crate::program::LossKind;

/// The most weights (p · k) a GLM's fused pass takes: its k dot products per row read Wᵀ
/// from the caches, which holds up while Wᵀ is at most 48 KiB; past that, the engine runs
/// forward, loss and backward on sgemm, which blocks W for the caches.
/// Measured on the full-batch L-BFGS evaluation (100,000 rows, 2 cores, ms per
/// evaluation, fused against sgemm): p = 512, k = 20 (10,240 weights) 94 against 104;
/// k = 32 (16,384) 155 against 111; k = 100 470 against 246; p = 128, k = 32 (4,096) 44
/// against 51; p = 64, k = 10 28 against 45.
pub const FUSED_MAX_WEIGHTS: usize = 12_288;

/// Rows per fused pass: 64 rows of 64 features are 16 KiB, half of a typical L1.
pub const CHUNK: usize = 64;
/// How many rows ahead of the one being read a shuffled batch prefetches.
pub const PREFETCH_AHEAD: usize = 16;
/// How far ahead rows read in order are prefetched, in bytes: the hardware prefetcher
/// alone fell behind the fused pass's read–compute–reread pattern (W4, full batch: 9.7 →
/// 7.9 ms an iteration with 4 KiB ahead, 7.4 with 8 KiB; 16 and 32 KiB no better).
pub const PREFETCH_AHEAD_BYTES: usize = 8192;
/// Rows per thread task in a large batch.
pub const BLOCK: usize = 16_384;

/// The targets a GLM reads, indexed like the feature rows.
#[derive(Debug, Clone, Copy)]
pub enum GlmTargets<'a> {
    /// `k` real values per row (MSE).
    Real(&'a [f32]),
    /// A class per row (the cross-entropies).
    Labels(&'a [u32]),
}

/// What a batch's loss reads besides the model's output: which rows, their targets and
/// weights, and the loss.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The batch: which rows of the data (and of the targets and weights).
    pub rows: Rows<'a>,
    /// Targets.
    pub targets: GlmTargets<'a>,
    /// Row weights, or every row weighs 1.
    pub weights: Option<&'a [f32]>,
    /// The fused loss.
    pub loss: LossKind,
}

impl Batch<'_> {
    /// The batch's row `r` as stored.
    #[inline(always)]
    pub fn source(&self, r: usize) -> usize {
        match self.rows {
            Rows::Range { start, .. } => start + r,
            Rows::Gather(idx) => idx[r] as usize,
        }
    }

    /// δ's factor: `2/N` for the mean squared error, `1/N` for the cross-entropies.
    pub fn scale(&self) -> f32 {
        let m = self.rows.len() as f32;
        match self.loss {
            LossKind::Mse => 2.0 / m,
            LossKind::SigmoidBce | LossKind::SoftmaxCce => 1.0 / m,
        }
    }

    /// The summed (weighted, unnormalised) loss of batch rows `c .. c + len` from their
    /// outputs `z` (`len × k`), which are replaced by δ = ∂L/∂z, already scaled by
    /// [`Batch::scale`]. The mean loss is the sum over the batch divided by its rows.
    #[inline(always)]
    pub fn loss_in_place(&self, c: usize, len: usize, k: usize, z: &mut [f32]) -> f64 {
        // Plain loops, no closures: a closure is a function of its own, compiled without
        // the AVX2 of the `multiversion!` caller this is inlined into.
        let mut total = 0f64;
        let mut s = 0;
        while s < len {
            let n = CHUNK.min(len - s);
            total += f64::from(self.chunk_loss(c + s, n, k, &mut z[s * k..(s + n) * k]));
            s += n;
        }
        total
    }

    /// [`Batch::loss_in_place`] for at most [`CHUNK`] rows. The targets and weights are
    /// gathered into arrays first, so that the arithmetic runs over plain arrays and
    /// vectorises (for one output: 8 rows at a time with AVX2).
    #[inline(always)]
    fn chunk_loss(&self, c: usize, n: usize, k: usize, z: &mut [f32]) -> f32 {
        let scale = self.scale();
        let mut w = [1f32; CHUNK];
        if let Some(weights) = self.weights {
            for (i, wi) in w.iter_mut().enumerate().take(n) {
                *wi = weights[self.source(c + i)];
            }
        }
        let mut terms = [0f32; CHUNK];
        match (self.loss, self.targets) {
            (LossKind::Mse, GlmTargets::Real(y)) if k == 1 => {
                let mut ys = [0f32; CHUNK];
                for (i, v) in ys.iter_mut().enumerate().take(n) {
                    *v = y[self.source(c + i)];
                }
                for i in 0..n {
                    let diff = z[i] - ys[i];
                    terms[i] = w[i] * diff * diff;
                    z[i] = scale * w[i] * diff;
                }
            }
            (LossKind::Mse, GlmTargets::Real(y)) => {
                for i in 0..n {
                    let t = self.source(c + i);
                    for j in 0..k {
                        let diff = z[i * k + j] - y[t * k + j];
                        terms[i] += w[i] * diff * diff;
                        z[i * k + j] = scale * w[i] * diff;
                    }
                }
            }
            (LossKind::SigmoidBce, GlmTargets::Labels(labels)) => {
                let mut ys = [0f32; CHUNK];
                for (i, v) in ys.iter_mut().enumerate().take(n) {
                    *v = labels[self.source(c + i)] as f32;
                }
                for i in 0..n {
                    // One exponential serves both: softplus(z) = max(z, 0) + ln(1 + e)
                    // and σ(z) = 1/(1 + e) or e/(1 + e), with e = e^−|z| ≤ 1.
                    let zi = z[i];
                    let e = math::exp(-zi.abs());
                    let inv = 1.0 / (1.0 + e);
                    let sigma = if zi >= 0.0 { inv } else { e * inv };
                    terms[i] = w[i] * (zi.max(0.0) + math::ln(1.0 + e) - ys[i] * zi);
                    z[i] = w[i] * (sigma - ys[i]) * scale;
                }
            }
            (LossKind::SoftmaxCce, GlmTargets::Labels(labels)) => {
                for i in 0..n {
                    let label = labels[self.source(c + i)] as usize;
                    let zr = &mut z[i * k..(i + 1) * k];
                    // One exponential per output: e = e^(z − max) serves the sum (the
                    // loss is ln Σe − (z_label − max)) and softmax = e / Σe.
                    let mut max = f32::NEG_INFINITY;
                    for &v in zr.iter() {
                        max = max.max(v);
                    }
                    let shifted = zr[label] - max;
                    let mut total = 0f32;
                    for v in zr.iter_mut() {
                        *v = math::exp(*v - max);
                        total += *v;
                    }
                    terms[i] = w[i] * (math::ln(total) - shifted);
                    let f = w[i] * scale / total;
                    for v in zr.iter_mut() {
                        *v *= f;
                    }
                    zr[label] -= w[i] * scale;
                }
            }
            // The engine pairs each loss with its targets' kind before calling.
            _ => unreachable!("a loss and its targets are checked to match"),
        }
        sum(&terms[..n])
    }
}

multiversion! {
    /// [`Batch::loss_in_place`] over a whole batch, compiled wide: the entry for a model
    /// whose output comes from other ops (the MLP), where no fused pass inlines it.
    pub fn batch_loss(batch: &Batch<'_>, k: usize, z: &mut [f32]) -> f64 {
        batch.loss_in_place(0, batch.rows.len(), k, z)
    }
}

/// `Σ v[i]` with 16 partial sums, in a fixed order.
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let chunks = v.chunks_exact(L);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..L {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One GLM step's inputs: the data, the batch, the parameters.
#[derive(Debug, Clone, Copy)]
pub struct Glm<'a> {
    /// Feature rows, `p` values each (the whole dataset, or a loaded group).
    pub x: &'a [f32],
    /// Features per row.
    pub p: usize,
    /// The batch's rows, targets, weights and loss.
    pub batch: Batch<'a>,
    /// Weights W, `p × k` row-major.
    pub w: &'a [f32],
    /// Bias, `k`.
    pub b: &'a [f32],
}

impl Glm<'_> {
    /// Outputs per row.
    fn k(&self) -> usize {
        self.b.len()
    }

    /// Returns the mean loss over the batch and writes ∂L/∂W (`p × k`) into `gw` and
    /// ∂L/∂b (`k`) into `gb`. The caller has checked the rows against the data.
    ///
    /// # Example
    /// ```
    /// use gradflow::cpu::fast::glm::{Batch, Glm, GlmTargets};
    /// use gradflow::cpu::loss::LossKind;
    /// use gradflow::engine::Rows;
    /// // Seed 000's first batch: X = [[1,2],[3,1],[1,1]], y = (4.6, 6.1, 3.1), w = 0.
    /// let x = [1.0f32, 2.0, 3.0, 1.0, 1.0, 1.0];
    /// let glm = Glm {
    ///     x: &x, p: 2,
    ///     batch: Batch {
    ///         rows: Rows::Range { start: 0, len: 3 },
    ///         targets: GlmTargets::Real(&[4.6, 6.1, 3.1]),
    ///         weights: None, loss: LossKind::Mse,
    ///     },
    ///     w: &[0.0, 0.0], b: &[0.0],
    /// };
    /// let (mut gw, mut gb) = ([0f32; 2], [0f32; 1]);
    /// let loss = glm.loss_and_grads(&mut gw, &mut gb);
    /// assert!((loss - (4.6f64.powi(2) + 6.1f64.powi(2) + 3.1f64.powi(2)) / 3.0).abs() < 1e-5);
    /// // ∂L/∂w = 2/N Xᵀ(ŷ − y) = (−2·(4.6 + 18.3 + 3.1)/3, −2·(9.2 + 6.1 + 3.1)/3).
    /// assert!((gw[0] - -17.333_334).abs() < 1e-4 && (gw[1] - -12.266_667).abs() < 1e-4);
    /// assert!((gb[0] - -9.2).abs() < 1e-5);
    /// ```
    pub fn loss_and_grads(&self, gw: &mut [f32], gb: &mut [f32]) -> f64 {
        let (p, k, m) = (self.p, self.k(), self.batch.rows.len());
        debug_assert!(gw.len() >= p * k && gb.len() >= k && self.w.len() >= p * k);
        // Wᵀ: one contiguous row of p weights per output, so that z is k dot products.
        let mut wt = vec![0f32; k * p];
        for l in 0..p {
            for j in 0..k {
                wt[j * p + l] = self.w[l * k + j];
            }
        }
        let (loss, gwt, gbias) = if m >= 2 * BLOCK {
            self.blocks(&wt)
        } else if m >= 2 * CHUNK {
            self.halves(&wt)
        } else {
            let mut gwt = vec![0f32; k * p];
            let mut gbias = vec![0f32; k];
            let loss = block(self, &wt, 0, m, &mut gwt, &mut gbias);
            (loss, gwt, gbias)
        };
        for l in 0..p {
            for j in 0..k {
                gw[l * k + j] = gwt[j * p + l];
            }
        }
        gb[..k].copy_from_slice(&gbias);
        loss / m as f64
    }
}

/// A value alone on its cache lines (two 64-byte lines: x86's adjacent-line prefetch).
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A part of a batch's result: its summed loss and its gradients (Wᵀ-shaped, and b's).
type Part = (f64, Vec<f32>, Vec<f32>);

impl Glm<'_> {
    /// A large batch in blocks of [`BLOCK`] rows on rayon's threads, their partial
    /// gradients added in `f64` in block order: independent of how rayon scheduled them.
    fn blocks(&self, wt: &[f32]) -> Part {
        let (p, k, m) = (self.p, self.k(), self.batch.rows.len());
        let blocks = m.div_ceil(BLOCK);
        let parts: Vec<Part> = (0..blocks)
            .into_par_iter()
            .map(|i| {
                let (r0, r1) = (i * BLOCK, ((i + 1) * BLOCK).min(m));
                let mut gwt = vec![0f32; k * p];
                let mut gbias = vec![0f32; k];
                let loss = block(self, wt, r0, r1, &mut gwt, &mut gbias);
                (loss, gwt, gbias)
            })
            .collect();
        let mut loss = 0f64;
        let mut gwt = vec![0f64; k * p];
        let mut gbias = vec![0f64; k];
        for (l, gw_part, gb_part) in &parts {
            loss += l;
            gwt.iter_mut()
                .zip(gw_part)
                .for_each(|(a, &b)| *a += f64::from(b));
            gbias
                .iter_mut()
                .zip(gb_part)
                .for_each(|(a, &b)| *a += f64::from(b));
        }
        let round = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        (loss, round(gwt), round(gbias))
    }

    /// A mini-batch in two halves (the first a whole number of chunks) on the
    /// [`team`](super::team), the second half's gradient added to the first's: the same
    /// sums whether one thread runs both or two run one each. A 256-row step is about
    /// 10 µs, too short for rayon's hand-off; the team's is well under one.
    fn halves(&self, wt: &[f32]) -> Part {
        let (p, k, m) = (self.p, self.k(), self.batch.rows.len());
        let mid = (m / 2).div_ceil(CHUNK) * CHUNK;
        // Each half allocates and fills its own buffers on its own thread, in slots a
        // cache line apart: no line is written by both threads.
        let out: [Padded<Mutex<Option<Part>>>; 2] = Default::default();
        team::for_each(2, &|h| {
            let (r0, r1) = if h == 0 { (0, mid) } else { (mid, m) };
            let (mut gwt, mut gbias) = (vec![0f32; k * p], vec![0f32; k]);
            let loss = block(self, wt, r0, r1, &mut gwt, &mut gbias);
            *out[h].0.lock().unwrap_or_else(PoisonError::into_inner) = Some((loss, gwt, gbias));
        });
        let [first, second] = out.map(|o| {
            o.0.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .expect("the team ran both halves")
        });
        let (mut loss, mut gwt, mut gbias) = first;
        loss += second.0;
        gwt.iter_mut().zip(&second.1).for_each(|(a, b)| *a += b);
        gbias.iter_mut().zip(&second.2).for_each(|(a, b)| *a += b);
        (loss, gwt, gbias)
    }
}

multiversion! {
    /// Batch rows `r0 .. r1`: adds their gradient into `gwt` (Wᵀ-shaped, `k × p`) and `gb`
    /// and returns the sum of their (weighted) losses.
    fn block(
        glm: &Glm<'_>,
        wt: &[f32],
        r0: usize,
        r1: usize,
        gwt: &mut [f32],
        gb: &mut [f32],
    ) -> f64 {
        let (p, k) = (glm.p, glm.k());
        let mut z = vec![0f32; CHUNK * k];
        let mut loss = 0f64;
        let row = |s: usize| &glm.x[s * p..(s + 1) * p];
        let gathered = matches!(glm.batch.rows, Rows::Gather(_));
        let ahead = if gathered {
            PREFETCH_AHEAD
        } else {
            PREFETCH_AHEAD_BYTES.div_ceil(4 * p.max(1))
        };
        if gathered {
            // The rows the loop below would have asked for before its first: the session
            // prefetches only the first rows of a batch, not those of its second half.
            for r in r0..(r0 + PREFETCH_AHEAD).min(r1) {
                prefetch(row(glm.batch.source(r)));
            }
        }
        for c in (r0..r1).step_by(CHUNK) {
            let len = CHUNK.min(r1 - c);
            for i in 0..len {
                // Ask for the row `ahead` places on: for a shuffled batch, so that a few
                // rows are always in flight (more would only queue in the CPU); for rows
                // in order, to stay ahead of the pass.
                if c + i + ahead < r1 {
                    prefetch(row(glm.batch.source(c + i + ahead)));
                }
                let xr = row(glm.batch.source(c + i));
                for j in 0..k {
                    z[i * k + j] = dot(xr, &wt[j * p..(j + 1) * p]) + glm.b[j];
                }
            }
            // z becomes δ in place.
            loss += glm.batch.loss_in_place(c, len, k, &mut z[..len * k]);
            for i in 0..len {
                let xr = row(glm.batch.source(c + i));
                for j in 0..k {
                    let d = z[i * k + j];
                    axpy(d, xr, &mut gwt[j * p..(j + 1) * p]);
                    gb[j] += d;
                }
            }
        }
        loss
    }
}
