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
