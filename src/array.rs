//! `ndarray` in and out (feature `ndarray`): datasets from `ArrayView2`, predictions as
//! arrays.
//!
//! ```
//! use gradflow::array::{dataset_real, PredictArray};
//! use gradflow::model::LinearRegression;
//! use gradflow::{TrainConfig, Trainer};
//! use ndarray::{array, Array1};
//! let x = array![[0.0f32, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0]];
//! let y: Array1<f32> = x.rows().into_iter().map(|r| 2.0 * r[0] - r[1] + 0.5).collect();
//! let data = dataset_real(x.view(), y.view())?;
//! let mut model = LinearRegression::new();
//! model.fit(&data, &Trainer::new(TrainConfig::sgd().batch_size(4).epochs(2000))?)?;
//! let pred = model.predict_array(x.view())?;
//! assert!((pred[2] - 1.5).abs() < 1e-3);
//! # Ok::<(), gradflow::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::model::{LinearRegression, LogisticRegression, Mlp, SoftmaxRegression};

/// The rows of `x` as one row-major slice (copied when `x` is not in standard layout,
/// such as a transposed view).
fn rows(x: ArrayView2<'_, f32>) -> Vec<f32> {
    x.iter().copied().collect()
}

fn check_rows(x: &ArrayView2<'_, f32>, targets: usize) -> Result<()> {
    if x.nrows() != targets {
        return Err(Error::ShapeMismatch {
            what: "array targets",
            expected: format!("one per row of x: {}", x.nrows()),
            got: targets.to_string(),
        });
    }
    Ok(())
}

/// A regression dataset from features `x` (n × p) and targets `y` (n).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `y` is not one per row; the checks of [`Dataset::new`].
pub fn dataset_real(x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<Dataset> {
    check_rows(&x, y.len())?;
    Dataset::new(rows(x), x.ncols(), Targets::Real(y.to_vec()))
}

/// A classification dataset from features `x` (n × p) and labels in `0..classes`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the labels are not one per row; the checks of
/// [`Dataset::new`] (a label ≥ classes among them).
pub fn dataset_labels(
    x: ArrayView2<'_, f32>,
    labels: ArrayView1<'_, u32>,
    classes: usize,
) -> Result<Dataset> {
    check_rows(&x, labels.len())?;
    let targets = Targets::Classes {
        labels: labels.to_vec(),
        classes,
    };
    Dataset::new(rows(x), x.ncols(), targets)
}

/// Predictions as arrays.
pub trait PredictArray {
    /// What one row predicts: `f32` for a regression, a `u32` class for a classifier.
    type Output;
    /// One prediction per row of `x`.
    ///
    /// # Errors
    /// As the model's `predict`.
    fn predict_array(&self, x: ArrayView2<'_, f32>) -> Result<Array1<Self::Output>>;
}

/// Class probabilities as an `n × k` array.
pub trait PredictProbaArray {
    /// Row `i` is the distribution over the classes for row `i` of `x`.
    ///
    /// # Errors
    /// As the model's `predict_proba`.
    fn predict_proba_array(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>>;
}

impl PredictArray for LinearRegression {
    type Output = f32;
    fn predict_array(&self, x: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        Ok(Array1::from(self.predict(&rows(x))?))
    }
}

/// Reshapes `n × k` row-major probabilities.
fn matrix(v: Vec<f32>, n: usize) -> Result<Array2<f32>> {
    let k = v.len() / n.max(1);
    Array2::from_shape_vec((n, k), v).map_err(|e| Error::ShapeMismatch {
        what: "probabilities",
        expected: format!("{n} rows × {k}"),
        got: e.to_string(),
    })
}

macro_rules! classifier_arrays {
    ($($model:ty),*) => {$(
        impl PredictArray for $model {
            type Output = u32;
            fn predict_array(&self, x: ArrayView2<'_, f32>) -> Result<Array1<u32>> {
                Ok(Array1::from(self.predict(&rows(x))?))
            }
        }

        impl PredictProbaArray for $model {
            fn predict_proba_array(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
                matrix(self.predict_proba(&rows(x))?, x.nrows())
            }
        }
    )*};
}

classifier_arrays!(LogisticRegression, SoftmaxRegression, Mlp);
