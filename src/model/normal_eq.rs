//! The closed-form solution of linear regression: the normal equations (seed 001).
//!
//! With the bias folded in as a column of ones, `X̃ = [X 1]`, the least-squares solution
//! solves `(X̃ᵀX̃) θ = X̃ᵀy`, `θ = (w, b)`. gradflow takes the columns' means out first
//! ([`Centre`]: rows far from zero would leave their spread in the sums' last digits),
//! forms `X̃ᵀX̃` and `X̃ᵀy` of the centred rows by a gemm per block of [`BLOCK`] rows, the
//! blocks added in `f64`: by default ([`Precision::Exact`]) the gemm runs in `f64`, so
//! the products of the f32 data are exact to f64's rounding; [`Precision::Fast`] runs it in
//! `f32`, as numpy's float32 solve does. The system is scaled to unit diagonal (columns
//! on scales apart then do not look singular), and factorised with nalgebra:
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

/// Rows per gemm block of the Gram matrix (with [`Precision::Fast`], sums run over this
/// many rows in `f32`; across blocks they always run in `f64`).
pub const BLOCK: usize = 1024;

/// Largest condition number of `X̃ᵀX̃` solved from the fast Gram matrix: its ~1e-7
/// relative perturbation then moves the solution by at most ~1e-4 relative, below what
/// f32 training can resolve; past it the exact `f64` Gram matrix is formed instead.
pub const FAST_CONDITION_LIMIT: f64 = 1e3;

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
    solve_with(data, mode, Precision::Exact)
}

/// How the Gram matrix `X̃ᵀX̃` is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Every product in `f64` (of the centred f32 data), sums in `f64`: the solution of the data
    /// as given, to ~1e-12 on a well-conditioned problem. [`solve`]'s choice.
    #[default]
    Exact,
    /// Products and sums within a block of [`BLOCK`] rows in `f32` (numpy's float32
    /// `X.T @ X`), blocks added in `f64`: about twice as fast, ~1e-7 relative error in the
    /// matrix. Where the condition number exceeds [`FAST_CONDITION_LIMIT`], so that this
    /// could show in the solution, the exact matrix is formed instead.
    Fast,
}

/// [`solve`] with a choice of [`Precision`].
///
/// ```
/// use gradflow::{data::Synthetic, model::normal_eq::{solve, solve_with, Precision, Solve}};
/// let data = Synthetic::linear(5000, 8).seed(2).dataset()?;
/// let (exact, fast) = (solve(&data, Solve::Auto)?, solve_with(&data, Solve::Auto, Precision::Fast)?);
/// for (a, b) in exact.weights.iter().zip(&fast.weights) {
///     assert!((a - b).abs() < 1e-5);
/// }
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// As [`solve`].
pub fn solve_with(data: &Dataset, mode: Solve, precision: Precision) -> Result<NormalSolution> {
    let y = real_targets(data)?;
    let (x, p) = (data.features(), data.p());
    let centre = Centre::of(x, y, p, None);
    let sums = match precision {
        Precision::Exact => gram_sums(x, y, p, None, &centre),
        Precision::Fast => {
            let fast = gram::<f32>(x, y, p, None, &centre);
            if condition_number(&system(&fast, p, 0.0).0) <= FAST_CONDITION_LIMIT {
                fast
            } else {
                gram_sums(x, y, p, None, &centre)
            }
        }
    };
    solve_sums(&sums, p, 0.0, mode, &centre)
}

/// The (weighted) means of the feature columns and of the target, taken out of every row
/// before the sums are formed: the sums of raw rows far from zero (a column near 10⁶
/// varying by units) would hold their spread in their last digits, and the system built
/// from them be singular to f64. Centred, the bias decouples from the weights and comes
/// back as `ȳ − x̄·w`.
#[derive(Debug, Clone, PartialEq)]
pub struct Centre {
    /// Each feature column's mean.
    pub x: Vec<f64>,
    /// The target's mean.
    pub y: f64,
}

impl Centre {
    /// The means of the rows `x` (p features each) and targets `y` under the row weights.
    pub fn of(x: &[f32], y: &[f32], p: usize, weights: Option<&[f32]>) -> Centre {
        Centre::from_sums(&Centre::sums(x, y, p, weights), p)
    }

    /// `[Σ sᵢxᵢ (p values), Σ sᵢyᵢ, Σ sᵢ]` in f64, in a fixed order of chunks: what one
    /// rank of a distributed solve contributes, added over the ranks before
    /// [`Centre::from_sums`].
    pub fn sums(x: &[f32], y: &[f32], p: usize, weights: Option<&[f32]>) -> Vec<f64> {
        let partials: Vec<Vec<f64>> = y
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, yc)| {
                let mut acc = vec![0f64; p + 2];
                for (i, &yi) in yc.iter().enumerate() {
                    let r = c * CHUNK + i;
                    let s = weights.map_or(1.0, |w| f64::from(w[r]));
                    for (a, &v) in acc.iter_mut().zip(&x[r * p..(r + 1) * p]) {
                        *a += s * f64::from(v);
                    }
                    acc[p] += s * f64::from(yi);
                    acc[p + 1] += s;
                }
                acc
            })
            .collect();
        let mut total = vec![0f64; p + 2];
        for part in &partials {
            total.iter_mut().zip(part).for_each(|(t, v)| *t += v);
        }
        total
    }

    /// The means from [`Centre::sums`] (zeros when the weights sum to 0).
    pub fn from_sums(sums: &[f64], p: usize) -> Centre {
        let total = sums[p + 1];
        let mean = |v: f64| if total > 0.0 { v / total } else { 0.0 };
        Centre {
            x: sums[..p].iter().map(|&v| mean(v)).collect(),
            y: mean(sums[p]),
        }
    }
}

/// The targets of `data`, which must be real.
fn real_targets(data: &Dataset) -> Result<&[f32]> {
    match data.targets() {
        Targets::Real(y) => Ok(y),
        other => Err(Error::TargetMismatch {
            model: "normal equations",
            expected: "real-valued targets".into(),
            got: other.describe(),
        }),
    }
}

/// The sums `Σᵢ sᵢ zᵢ zᵢᵀ` with `zᵢ = [xᵢ − x̄, 1, yᵢ − ȳ]` over the rows `x` (p features
/// each) and targets `y`, `sᵢ` the row weights (1 without them), `x̄, ȳ` the [`Centre`]: a
/// `(p + 2)²` row-major matrix in `f64`. Sums of parts of the rows add up to the sums of
/// all of them, so a distributed solve adds its ranks' sums before [`solve_sums`].
///
/// ```
/// use gradflow::model::normal_eq::{gram_sums, solve_sums, Centre, Solve};
/// // y = 2x + 1 on three rows near 10⁶, the middle one counted twice.
/// let (x, y, w) = ([1e6, 1e6 + 1.0, 1e6 + 2.0], [1.0, 3.0, 5.0], [1.0, 2.0, 1.0]);
/// let y: Vec<f32> = x.iter().map(|v| 2.0 * (v - 1e6) + 1.0).collect();
/// let centre = Centre::of(&x, &y, 1, Some(&w));
/// let sums = gram_sums(&x, &y, 1, Some(&w), &centre);
/// assert_eq!(sums[1 * 3 + 1], 4.0); // Σ sᵢ: the bias column's square
/// let sol = solve_sums(&sums, 1, 0.0, Solve::Strict, &centre)?;
/// assert!((sol.weights[0] - 2.0).abs() < 1e-9);
/// assert!((sol.bias - (1.0 - 2e6)).abs() < 1e-3);
/// # Ok::<(), gradflow::Error>(())
/// ```
pub fn gram_sums(
    x: &[f32],
    y: &[f32],
    p: usize,
    weights: Option<&[f32]>,
    centre: &Centre,
) -> Vec<f64> {
    gram::<f64>(x, y, p, weights, centre)
}

/// Solves `(X̃ᵀSX̃ + ridge · I_w) θ = X̃ᵀSy` from [`gram_sums`]' sums (the ridge on the
/// weights only, never the bias) and puts the centre back into the bias. The system is
/// scaled to unit diagonal first (each column by its root sum of squares), so that columns
/// on scales apart — one in 10⁻³, one in 10⁶ — do not make it look singular; then
/// Cholesky when well conditioned, else as `mode` says.
///
/// # Errors
/// [`Error::IllConditioned`] under [`Solve::Strict`] past [`CONDITION_LIMIT`], or when
/// even the SVD fails.
pub fn solve_sums(
    sums: &[f64],
    p: usize,
    ridge: f64,
    mode: Solve,
    centre: &Centre,
) -> Result<NormalSolution> {
    let d = p + 1;
    let (a, rhs) = system(sums, p, ridge);
    // D⁻¹ A D⁻¹ (D θ) = D⁻¹ r with D the diagonal's roots (1 for an empty column): the
    // condition and the Cholesky solve of the scaled system.
    let scale: Vec<f64> = (0..d)
        .map(|i| {
            let v = a[(i, i)].sqrt();
            if v > 0.0 && v.is_finite() { v } else { 1.0 }
        })
        .collect();
    let scaled = DMatrix::from_fn(d, d, |i, j| a[(i, j)] / (scale[i] * scale[j]));
    let condition = condition_number(&scaled);
    let theta: Vec<f64> = match scaled.cholesky() {
        Some(ch) if condition <= CONDITION_LIMIT => {
            let r = DVector::from_fn(d, |i, _| rhs[i] / scale[i]);
            let t = ch.solve(&r);
            t.iter().zip(&scale).map(|(t, s)| t / s).collect()
        }
        _ if mode == Solve::Strict => {
            return Err(Error::IllConditioned {
                condition,
                limit: CONDITION_LIMIT,
            });
        }
        // Singular even when scaled: the minimum-norm solution of the system as it is
        // (numpy's `lstsq` of the centred rows), not of the scaled one.
        _ => {
            let svd = a.svd(true, true);
            let cut = 1e-12 * svd.singular_values.max();
            let rank = svd.singular_values.iter().filter(|&&s| s > cut).count();
            let theta = svd.solve(&rhs, cut).map_err(|_| Error::IllConditioned {
                condition,
                limit: CONDITION_LIMIT,
            })?;
            let weights = theta.iter().copied().collect::<Vec<f64>>();
            return Ok(uncentre(
                weights,
                p,
                centre,
                condition,
                Method::MinNormLeastSquares { rank },
            ));
        }
    };
    Ok(uncentre(theta, p, centre, condition, Method::Cholesky))
}

/// The solution from θ of the centred system: the bias `θ_b + ȳ − x̄·w`.
fn uncentre(
    theta: Vec<f64>,
    p: usize,
    centre: &Centre,
    condition: f64,
    method: Method,
) -> NormalSolution {
    let weights = theta[..p].to_vec();
    let shift: f64 = weights.iter().zip(&centre.x).map(|(w, m)| w * m).sum();
    NormalSolution {
        bias: theta[p] + centre.y - shift,
        weights,
        condition,
        method,
    }
}

/// `(X̃ᵀSX̃ + ridge · I_w, X̃ᵀSy)` from the sums: the upper triangle mirrored (gemm's tiles
/// may round the two triangles differently, and Cholesky wants an exactly symmetric
/// matrix).
fn system(sums: &[f64], p: usize, ridge: f64) -> (DMatrix<f64>, DVector<f64>) {
    let d = p + 2;
    let a = DMatrix::from_fn(p + 1, p + 1, |i, j| {
        let v = sums[i.min(j) * d + i.max(j)];
        if i == j && i < p { v + ridge } else { v }
    });
    let r = DVector::from_fn(p + 1, |i, _| sums[i * d + p + 1]);
    (a, r)
}

/// The 2-norm condition number of a symmetric matrix (∞ when not positive definite).
fn condition_number(a: &DMatrix<f64>) -> f64 {
    let eig = a.clone().symmetric_eigen();
    let (lo, hi) = eig
        .eigenvalues
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &v| {
            (lo.min(v), hi.max(v.abs()))
        });
    if lo > 0.0 { hi / lo } else { f64::INFINITY }
}

/// A precision the Gram matrix's blocks are multiplied in.
trait BlockFloat: Copy + Default + Into<f64> + Send {
    fn of64(v: f64) -> Self;
    /// `c = aᵀ a` for `a` of `rows × d`, row-major (`c`: d × d).
    fn gram_block(d: usize, rows: usize, a: &[Self], c: &mut [Self]);
}

macro_rules! block_float {
    ($t:ty, $gemm:path) => {
        impl BlockFloat for $t {
            #[allow(clippy::cast_possible_truncation)]
            fn of64(v: f64) -> Self {
                v as $t
            }
            fn gram_block(d: usize, rows: usize, a: &[Self], c: &mut [Self]) {
                assert!(a.len() >= rows * d && c.len() >= d * d);
                // SAFETY: aᵀ (d × rows, strides 1 and d) and a (rows × d, strides d and 1)
                // lie within a's rows · d values; c's d × d within c; beta = 0.
                unsafe {
                    $gemm(
                        d,
                        rows,
                        d,
                        1.0,
                        a.as_ptr(),
                        1,
                        d as isize,
                        a.as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        d as isize,
                        1,
                    );
                }
            }
        }
    };
}
block_float!(f32, matrixmultiply::sgemm);
block_float!(f64, matrixmultiply::dgemm);

/// [`gram_sums`] per block of [`BLOCK`] rows by a gemm in `T` (f64: products and sums in
/// f64; f32: sums over a block in f32), added over blocks
/// in `f64` in block order (parallel over groups of blocks, so the same result on any
/// thread count). A weighted row enters as `√sᵢ zᵢ`.
fn gram<T: BlockFloat>(
    x: &[f32],
    y: &[f32],
    p: usize,
    weights: Option<&[f32]>,
    centre: &Centre,
) -> Vec<f64> {
    let d = p + 2;
    let partials: Vec<Vec<f64>> = x
        .par_chunks(CHUNK * p)
        .zip(y.par_chunks(CHUNK))
        .enumerate()
        .map(|(chunk, (xc, yc))| {
            let mut acc = vec![0f64; d * d];
            let mut block = vec![T::default(); BLOCK * d];
            let mut c = vec![T::default(); d * d];
            for (b, (xb, yb)) in xc.chunks(BLOCK * p).zip(yc.chunks(BLOCK)).enumerate() {
                let rows = yb.len();
                let first = chunk * CHUNK + b * BLOCK;
                let rows_of = block.chunks_exact_mut(d).zip(xb.chunks_exact(p)).zip(yb);
                for (i, ((dst, xr), &yi)) in rows_of.enumerate() {
                    let root = weights.map_or(1.0, |w| f64::from(w[first + i]).sqrt());
                    for ((v, &xv), m) in dst.iter_mut().zip(xr).zip(&centre.x) {
                        *v = T::of64((f64::from(xv) - m) * root);
                    }
                    dst[p] = T::of64(root);
                    dst[p + 1] = T::of64((f64::from(yi) - centre.y) * root);
                }
                T::gram_block(d, rows, &block, &mut c);
                for (a, &v) in acc.iter_mut().zip(&c) {
                    *a += v.into();
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; d * d];
    for acc in &partials {
        for (t, &v) in total.iter_mut().zip(acc) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast Gram matrix (f32 blocks) is within ~1e-7 of the exact one (f64 products),
    /// on a block count that is not whole and a width that is not a multiple of 8.
    #[test]
    fn fast_gram_is_within_f32_rounding_of_the_exact_one() {
        let data = crate::data::Synthetic::linear(3 * CHUNK + 517, 13)
            .seed(5)
            .dataset()
            .unwrap();
        let Targets::Real(y) = data.targets() else {
            unreachable!("linear data")
        };
        let centre = Centre::of(data.features(), y, 13, None);
        let (af, rf) = system(&gram::<f32>(data.features(), y, 13, None, &centre), 13, 0.0);
        let (ae, re) = system(&gram::<f64>(data.features(), y, 13, None, &centre), 13, 0.0);
        let rel = |d: f64, s: f64| d / s;
        assert!(
            rel((&af - &ae).amax(), ae.amax()) < 1e-6,
            "{}",
            (&af - &ae).amax()
        );
        assert!(
            rel((&rf - &re).amax(), re.amax()) < 1e-6,
            "{}",
            (&rf - &re).amax()
        );
        assert_eq!(af, af.transpose(), "not symmetric");
        assert_eq!(af[(13, 13)], data.n() as f64);
    }

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
