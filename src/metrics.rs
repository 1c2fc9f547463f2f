//! Scores for fitted models.

use crate::error::{Error, Result};

fn same_len(a: usize, b: usize) -> Result<()> {
    if a != b || a == 0 {
        return Err(Error::ShapeMismatch {
            what: "metric inputs",
            expected: "two non-empty slices of equal length".into(),
            got: format!("lengths {a} and {b}"),
        });
    }
    Ok(())
}

/// Mean squared error `1/n Σ (ŷ − y)²`, accumulated in f64.
///
/// # Errors
/// [`Error::ShapeMismatch`] for empty or unequal inputs.
pub fn mse(pred: &[f32], truth: &[f32]) -> Result<f64> {
    same_len(pred.len(), truth.len())?;
    Ok(pred
        .iter()
        .zip(truth)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / pred.len() as f64)
}

/// Coefficient of determination `R² = 1 − SS_res / SS_tot` (1 is perfect; 0 is the mean).
///
/// # Example
/// ```
/// let r2 = gradflow::metrics::r2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0])?;
/// assert_eq!(r2, 1.0);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] for empty or unequal inputs.
pub fn r2(pred: &[f32], truth: &[f32]) -> Result<f64> {
    same_len(pred.len(), truth.len())?;
    let mean = truth.iter().map(|&v| f64::from(v)).sum::<f64>() / truth.len() as f64;
    let ss_tot: f64 = truth.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
    let ss_res = mse(pred, truth)? * pred.len() as f64;
    Ok(if ss_tot == 0.0 {
        if ss_res == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - ss_res / ss_tot
    })
}

/// Share of labels predicted exactly.
///
/// # Errors
/// [`Error::ShapeMismatch`] for empty or unequal inputs.
pub fn accuracy(pred: &[u32], truth: &[u32]) -> Result<f64> {
    same_len(pred.len(), truth.len())?;
    Ok(pred.iter().zip(truth).filter(|(a, b)| a == b).count() as f64 / pred.len() as f64)
}

/// Mean absolute error `1/n Σ |ŷ − y|`, accumulated in f64.
///
/// ```
/// let mae = gradflow::metrics::mae(&[1.0, 2.0, 4.0], &[1.0, 3.0, 2.0])?;
/// assert_eq!(mae, 1.0);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] for empty or unequal inputs.
pub fn mae(pred: &[f32], truth: &[f32]) -> Result<f64> {
    same_len(pred.len(), truth.len())?;
    Ok(pred
        .iter()
        .zip(truth)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
        .sum::<f64>()
        / pred.len() as f64)
}

/// Cross-entropy of predicted probabilities: `−1/n Σ log p(yᵢ)`, with `proba` row-major
/// `n × k` (each row a distribution, as `predict_proba` gives). Probabilities are clipped
/// to `[1e-15, 1]` like scikit-learn's `log_loss`, so a confident mistake costs ≈ 34.5, not ∞.
///
/// ```
/// // Two rows, two classes: p(y₀ = 1) = 0.8, p(y₁ = 0) = 0.6.
/// let l = gradflow::metrics::log_loss(&[0.2, 0.8, 0.6, 0.4], &[1, 0], 2)?;
/// assert!((l - -(0.8f64.ln() + 0.6f64.ln()) / 2.0).abs() < 1e-7);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] when `proba` is not `labels.len() × k`;
/// [`Error::LabelOutOfRange`] for a label ≥ k.
pub fn log_loss(proba: &[f32], labels: &[u32], k: usize) -> Result<f64> {
    same_len(proba.len(), labels.len() * k)?;
    check_labels(labels, k)?;
    let total: f64 = proba
        .chunks(k)
        .zip(labels)
        .map(|(row, &y)| -f64::from(row[y as usize]).clamp(1e-15, 1.0).ln())
        .sum();
    Ok(total / labels.len() as f64)
}

fn check_labels(labels: &[u32], k: usize) -> Result<()> {
    match labels.iter().enumerate().find(|&(_, &l)| l as usize >= k) {
        Some((row, &label)) => Err(Error::LabelOutOfRange {
            row,
            label,
            classes: k,
        }),
        None => Ok(()),
    }
}

/// The confusion matrix: entry `[t][p]` counts rows of true class `t` predicted as `p`
/// (scikit-learn's orientation: rows are truth).
///
/// ```
/// let m = gradflow::metrics::confusion_matrix(&[0, 1, 1, 2], &[0, 1, 2, 2], 3)?;
/// assert_eq!(m, vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 1, 1]]);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] for empty or unequal inputs; [`Error::LabelOutOfRange`] for a
/// label ≥ k in either.
pub fn confusion_matrix(pred: &[u32], truth: &[u32], k: usize) -> Result<Vec<Vec<u64>>> {
    same_len(pred.len(), truth.len())?;
    check_labels(pred, k)?;
    check_labels(truth, k)?;
    let mut m = vec![vec![0u64; k]; k];
    for (&p, &t) in pred.iter().zip(truth) {
        m[t as usize][p as usize] += 1;
    }
    Ok(m)
}

/// Per-class precision, recall, F1 and support, with their macro and support-weighted
/// means: scikit-learn's `classification_report`. A class never predicted has precision
/// 0 (and so F1 0), as scikit-learn's `zero_division=0`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassReport {
    /// `tp / (tp + fp)` per class.
    pub precision: Vec<f64>,
    /// `tp / (tp + fn)` per class.
    pub recall: Vec<f64>,
    /// Harmonic mean of the two, per class.
    pub f1: Vec<f64>,
    /// True rows per class.
    pub support: Vec<u64>,
}

impl ClassReport {
    /// Precision, recall and F1 of `pred` against `truth` over `k` classes.
    ///
    /// ```
    /// use gradflow::metrics::ClassReport;
    /// // Class 1: 2 predicted, 1 right (precision ½); 1 true, found (recall 1).
    /// let r = ClassReport::new(&[0, 1, 1], &[0, 1, 0], 2)?;
    /// assert_eq!((r.precision[1], r.recall[1]), (0.5, 1.0));
    /// assert!((r.f1[1] - 2.0 / 3.0).abs() < 1e-12);
    /// assert_eq!(r.support, [2, 1]);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`confusion_matrix`].
    pub fn new(pred: &[u32], truth: &[u32], k: usize) -> Result<Self> {
        Ok(Self::from_confusion(&confusion_matrix(pred, truth, k)?))
    }

    /// The report of a confusion matrix (`m[true][predicted]`, as [`confusion_matrix`]
    /// returns): how scores over data read in blocks are made, by adding the blocks'
    /// matrices.
    ///
    /// ```
    /// use gradflow::metrics::ClassReport;
    /// let r = ClassReport::from_confusion(&[vec![1, 1], vec![0, 1]]);
    /// assert_eq!((r.precision[1], r.recall[1]), (0.5, 1.0));
    /// ```
    pub fn from_confusion(m: &[Vec<u64>]) -> Self {
        let k = m.len();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut r = ClassReport {
            precision: Vec::with_capacity(k),
            recall: Vec::with_capacity(k),
            f1: Vec::with_capacity(k),
            support: Vec::with_capacity(k),
        };
        for c in 0..k {
            let tp = m[c][c];
            let predicted: u64 = m.iter().map(|row| row[c]).sum();
            let actual: u64 = m[c].iter().sum();
            let (p, rc) = (ratio(tp, predicted), ratio(tp, actual));
            r.precision.push(p);
            r.recall.push(rc);
            r.f1.push(if p + rc == 0.0 {
                0.0
            } else {
                2.0 * p * rc / (p + rc)
            });
            r.support.push(actual);
        }
        r
    }

    /// Unweighted means over the classes: (precision, recall, F1).
    pub fn macro_avg(&self) -> (f64, f64, f64) {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        (mean(&self.precision), mean(&self.recall), mean(&self.f1))
    }

    /// Means weighted by support: (precision, recall, F1).
    pub fn weighted_avg(&self) -> (f64, f64, f64) {
        let total = self.support.iter().sum::<u64>().max(1) as f64;
        let mean = |v: &[f64]| {
            v.iter()
                .zip(&self.support)
                .map(|(x, &s)| x * s as f64)
                .sum::<f64>()
                / total
        };
        (mean(&self.precision), mean(&self.recall), mean(&self.f1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-learn's `classification_report` on the same labels, written out:
    /// y_true = [0,0,1,1,2,2,2], y_pred = [0,1,1,1,2,0,2].
    #[test]
    fn class_report_matches_sklearn() {
        let (truth, pred) = ([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2]);
        let r = ClassReport::new(&pred, &truth, 3).unwrap();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(&r.precision, &[0.5, 2.0 / 3.0, 1.0]), "{r:?}");
        assert!(close(&r.recall, &[0.5, 1.0, 2.0 / 3.0]), "{r:?}");
        assert!(close(&r.f1, &[0.5, 0.8, 0.8]), "{r:?}");
        let (p, rc, f) = r.macro_avg();
        assert!((p - 0.722_222_222_222).abs() < 1e-9 && (rc - 0.722_222_222_222).abs() < 1e-9);
        assert!((f - 0.7).abs() < 1e-12);
        let (_, _, wf) = r.weighted_avg();
        assert!((wf - (0.5 * 2.0 + 0.8 * 2.0 + 0.8 * 3.0) / 7.0).abs() < 1e-12);
        assert!(matches!(
            confusion_matrix(&[3], &[0], 3),
            Err(Error::LabelOutOfRange { label: 3, .. })
        ));
    }
}
