//! Losses fused with their output gradient.
//!
//! Each kernel reads the model's output `z` for a batch of N rows and the batch's targets,
//! returns the mean loss and writes `δ = ∂L/∂z`, the gradient that back-propagation starts
//! from. Fusing them is what the seeds' derivations suggest: for each pair the gradient
//! collapses to a difference.
//!
//! | kernel | loss L (mean over the N rows) | δ = ∂L/∂z |
//! |---|---|---|
//! | [`mse`] | 1/N Σᵢ Σⱼ (zᵢⱼ − yᵢⱼ)² | 2/N (z − y) |
//! | [`sigmoid_bce`] | 1/N Σᵢ [softplus(zᵢ) − yᵢ zᵢ] | 1/N (σ(z) − y) |
//! | [`softmax_cce`] | 1/N Σᵢ [logsumexp(zᵢ) − zᵢ,yᵢ] | 1/N (softmax(z) − onehot(y)) |
//!
//! The classification losses are computed from logits, never from probabilities:
//! `softplus(z) = max(z, 0) + ln(1 + e^−|z|)` and `logsumexp` with the row maximum
//! subtracted stay finite for any finite `z`, where `−ln σ(z)` would give `inf` at
//! z = −100 in `f32`.
//!
//! **Targets** are read through `rows` like the features: `Some(idx)` reads the target of
//! batch row `r` at `idx[r]`, `None` reads them in order.
//!
//! **Weights.** With `w = Some(weights)` (read through `rows` like the targets) each row's
//! loss and gradient are scaled by its weight, and the mean still divides by N, as
//! scikit-learn's SGD estimators apply `sample_weight × class_weight`: weights that
//! average 1 leave the learning rate's meaning unchanged.

use super::Real;
use super::activation::sigmoid;

pub use crate::program::LossKind;

fn target_index(rows: Option<&[u32]>, r: usize) -> usize {
    rows.map_or(r, |idx| idx[r] as usize)
}

fn weight(w: Option<&[f32]>, t: usize) -> f64 {
    w.map_or(1.0, |w| f64::from(w[t]))
}

/// Mean squared error over a `n × cols` batch; writes `dz = 2/N (z − y)`.
///
/// `y` holds `cols` values per target row.
///
/// # Example
/// ```
/// // Seed 000, step 4: ŷ = (3, 4, 2), y = (4.6, 6.1, 3.1).
/// let mut dz = [0f32; 3];
/// let loss = gradflow::cpu::loss::mse(&[3.0, 4.0, 2.0], &[4.6, 6.1, 3.1], None, 3, 1, &mut dz, None);
/// assert!((loss - (1.6f64 * 1.6 + 2.1 * 2.1 + 1.1 * 1.1) / 3.0).abs() < 1e-5);
/// assert!((dz[0] - 2.0 / 3.0 * -1.6).abs() < 1e-6);
/// ```
pub fn mse<T: Real>(
    z: &[T],
    y: &[T],
    rows: Option<&[u32]>,
    n: usize,
    cols: usize,
    dz: &mut [T],
    w: Option<&[f32]>,
) -> f64 {
    debug_assert!(z.len() >= n * cols && dz.len() >= n * cols);
    let scale = 2.0 / n as f64;
    let mut sum = 0f64;
    for r in 0..n {
        let t = target_index(rows, r);
        let wr = weight(w, t);
        for j in 0..cols {
            let diff = z[r * cols + j].f64() - y[t * cols + j].f64();
            sum += wr * diff * diff;
            dz[r * cols + j] = T::of(scale * wr * diff);
        }
    }
    sum / n as f64
}

/// Binary cross-entropy of `σ(z)` against labels in {0, 1}; writes `dz = (σ(z) − y)/N`.
///
/// # Example
/// ```
/// let mut dz = [0f32; 2];
/// let loss = gradflow::cpu::loss::sigmoid_bce(&[0.0, -200.0], &[1, 0], None, 2, &mut dz, None);
/// assert!((loss - std::f64::consts::LN_2 / 2.0).abs() < 1e-7); // ln 2 and ~0
/// assert_eq!(dz, [-0.25, 0.0]);
/// ```
pub fn sigmoid_bce<T: Real>(
    z: &[T],
    labels: &[u32],
    rows: Option<&[u32]>,
    n: usize,
    dz: &mut [T],
    w: Option<&[f32]>,
) -> f64 {
    debug_assert!(z.len() >= n && dz.len() >= n);
    let inv_n = 1.0 / n as f64;
    let mut sum = 0f64;
    for r in 0..n {
        let t = target_index(rows, r);
        let (y, wr) = (f64::from(labels[t]), weight(w, t));
        let zr = z[r].f64();
        sum += wr * (zr.max(0.0) - y * zr + (-zr.abs()).exp().ln_1p());
        dz[r] = T::of(wr * (sigmoid(zr) - y) * inv_n);
    }
    sum * inv_n
}

/// Categorical cross-entropy of `softmax(z)` against labels in `0..cols`; writes
/// `dz = (softmax(z) − onehot(y))/N`.
///
/// # Example
/// ```
/// let mut dz = [0f32; 2];
/// let loss = gradflow::cpu::loss::softmax_cce(&[0.0, 0.0], &[1], None, 1, 2, &mut dz, None);
/// assert!((loss - std::f64::consts::LN_2).abs() < 1e-7);
/// assert_eq!(dz, [0.5, -0.5]);
/// ```
pub fn softmax_cce<T: Real>(
    z: &[T],
    labels: &[u32],
    rows: Option<&[u32]>,
    n: usize,
    cols: usize,
    dz: &mut [T],
    w: Option<&[f32]>,
) -> f64 {
    debug_assert!(z.len() >= n * cols && dz.len() >= n * cols);
    let inv_n = 1.0 / n as f64;
    let mut sum = 0f64;
    for r in 0..n {
        let t = target_index(rows, r);
        let (label, wr) = (labels[t] as usize, weight(w, t));
        let zr = &z[r * cols..(r + 1) * cols];
        let max = zr.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.f64()));
        let denom: f64 = zr.iter().map(|v| (v.f64() - max).exp()).sum();
        let lse = max + denom.ln();
        sum += wr * (lse - zr[label].f64());
        for (j, d) in dz[r * cols..(r + 1) * cols].iter_mut().enumerate() {
            let p = (zr[j].f64() - lse).exp();
            let onehot = if j == label { 1.0 } else { 0.0 };
            *d = T::of(wr * (p - onehot) * inv_n);
        }
    }
    sum * inv_n
}
