//! The closed-form solution of linear regression: the normal equations (seed 001).
//!
//! With the bias folded in as a column of ones, `X̃ = [X 1]`, the least-squares solution
//! solves `(X̃ᵀX̃) θ = X̃ᵀy`, `θ = (w, b)`. gradflow accumulates `X̃ᵀX̃` and `X̃ᵀy` in `f64`
//! (the f32 data are exact in f64, so accumulation is the only rounding) and factorises with
//! nalgebra:
//!
//! 1. Cholesky, when the matrix is positive definite and its condition number is at most
//!    [`CONDITION_LIMIT`];
//! 2. otherwise, with [`Solve::Auto`], the minimum-norm least-squares solution through the
//!    SVD (singular values below `1e-12 · σ_max` are treated as zero), reported as
//!    [`Method::MinNormLeastSquares`] with the numerical rank; with [`Solve::Strict`], an
//!    [`Error::IllConditioned`].

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};

/// Largest condition number of `X̃ᵀX̃` solved by Cholesky.
///
/// `cond(X̃ᵀX̃) = cond(X̃)²`; past 1e12 an f64 solve keeps fewer than ~4 significant digits
/// of the f32 data's 7, so the answer is no longer trustworthy as an exact solution.
pub const CONDITION_LIMIT: f64 = 1e12;

/// What to do when `X̃ᵀX̃` is singular or badly conditioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solve {
    /// Fall back to the minimum-norm least-squares solution (the one `numpy.linalg.lstsq`
    /// gives), and say so in [`NormalSolution::method`].
    #[default]
    Auto,
    /// Return [`Error::IllConditioned`] instead.
    Strict,
}

/// How the system was solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Cholesky factorisation of a well-conditioned `X̃ᵀX̃`.
    Cholesky,
    /// SVD pseudo-inverse: the minimum-norm solution among all least-squares solutions.
    MinNormLeastSquares {
        /// Numerical rank of `X̃ᵀX̃` (p + 1 when full rank).
        rank: usize,
    },
}

/// The normal-equation solution.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalSolution {
    /// `ŵ`, length p.
    pub weights: Vec<f64>,
    /// `b̂`.
    pub bias: f64,
    /// 2-norm condition number of `X̃ᵀX̃` (∞ when singular).
    pub condition: f64,
    /// How it was solved.
    pub method: Method,
}

/// Rows per parallel partial sum; the partial sums are added in a fixed order, so the
/// result does not depend on the thread count.
const CHUNK: usize = 8192;

/// Solves the normal equations for `data` (real targets).
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, model::normal_eq::{solve, Method, Solve}};
/// let data = Synthetic::linear(500, 2).weights(vec![1.5, 1.5]).bias(0.1).noise(0.0).dataset()?;
/// let sol = solve(&data, Solve::Strict)?;
/// assert_eq!(sol.method, Method::Cholesky);
/// assert!((sol.weights[0] - 1.5).abs() < 1e-6 && (sol.bias - 0.1).abs() < 1e-6);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::TargetMismatch`] for class labels; [`Error::IllConditioned`] under
/// [`Solve::Strict`] when the condition number passes [`CONDITION_LIMIT`].
pub fn solve(data: &Dataset, mode: Solve) -> Result<NormalSolution> {
    let Targets::Real(y) = data.targets() else {
        return Err(Error::TargetMismatch {
            model: "normal equations",
            expected: "real-valued targets".into(),
            got: data.targets().describe(),
        });
    };
    let (a, rhs) = gram(data.features(), y, data.p());
    let d = data.p() + 1;
    let eig = a.clone().symmetric_eigen();
    let (lo, hi) = eig
        .eigenvalues
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &v| {
            (lo.min(v), hi.max(v.abs()))
        });
    let condition = if lo > 0.0 { hi / lo } else { f64::INFINITY };
    let (theta, method) = match a.clone().cholesky() {
        Some(ch) if condition <= CONDITION_LIMIT => (ch.solve(&rhs), Method::Cholesky),
        _ if mode == Solve::Strict => {
            return Err(Error::IllConditioned {
                condition,
                limit: CONDITION_LIMIT,
            });
        }
        _ => {
            let svd = a.svd(true, true);
            let cut = 1e-12 * svd.singular_values.max();
            let rank = svd.singular_values.iter().filter(|&&s| s > cut).count();
            let theta = svd.solve(&rhs, cut).map_err(|_| Error::IllConditioned {
                condition,
                limit: CONDITION_LIMIT,
            })?;
            (theta, Method::MinNormLeastSquares { rank })
        }
    };
    Ok(NormalSolution {
        weights: theta.rows(0, d - 1).iter().copied().collect(),
        bias: theta[d - 1],
        condition,
        method,
    })
}

/// `(X̃ᵀX̃, X̃ᵀy)` in f64 with `X̃ = [X 1]`.
fn gram(x: &[f32], y: &[f32], p: usize) -> (DMatrix<f64>, DVector<f64>) {
    let d = p + 1;
    let partials: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks(CHUNK * p)
        .zip(y.par_chunks(CHUNK))
        .map(|(xc, yc)| {
            let mut a = vec![0f64; d * d];
            let mut r = vec![0f64; d];
            let mut row = vec![1f64; d]; // the trailing 1 is the bias column
            for (xr, &yi) in xc.chunks_exact(p).zip(yc) {
                for (dst, &v) in row.iter_mut().zip(xr) {
                    *dst = f64::from(v);
                }
                for i in 0..d {
                    let ri = row[i];
                    r[i] += ri * f64::from(yi);
                    for j in i..d {
                        a[i * d + j] += ri * row[j];
                    }
                }
            }
            (a, r)
        })
        .collect();
    let mut a = DMatrix::<f64>::zeros(d, d);
    let mut r = DVector::<f64>::zeros(d);
    for (pa, pr) in &partials {
        for i in 0..d {
            r[i] += pr[i];
            for j in i..d {
                a[(i, j)] += pa[i * d + j];
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            a[(i, j)] = a[(j, i)];
        }
    }
    (a, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collinear_features_fall_back_or_fail() {
        // Column 1 = 2 × column 0: rank-deficient.
        let x: Vec<f32> = (0..50).flat_map(|i| [i as f32, 2.0 * i as f32]).collect();
        let y: Vec<f32> = (0..50).map(|i| 3.0 * i as f32 + 1.0).collect();
        let data = Dataset::new(x, 2, Targets::Real(y)).unwrap();
        assert!(matches!(
            solve(&data, Solve::Strict),
            Err(Error::IllConditioned { .. })
        ));
        let sol = solve(&data, Solve::Auto).unwrap();
        assert_eq!(sol.method, Method::MinNormLeastSquares { rank: 2 });
        // Minimum norm: w ∝ (1, 2) with w₀ + 2w₁ = 3 → w = (0.6, 1.2).
        assert!((sol.weights[0] - 0.6).abs() < 1e-6 && (sol.weights[1] - 1.2).abs() < 1e-6);
        assert!((sol.bias - 1.0).abs() < 1e-6);
    }
}
