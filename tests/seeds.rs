//! Seed 000's worked example and exercises, and seed 001's normal equations, number for
//! number.

use approx::assert_abs_diff_eq;
use gradflow::cpu::{loss, matmul, reduce, update};
use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::model::normal_eq::{self, Method, Solve};
use gradflow::model::{Init, LinearRegression, Model};
use gradflow::{StopReason, TrainConfig, Trainer};

/// Seed 000's 12 observations: `X` (12 × 2) and `y = X (1.5, 1.5)ᵀ + 0.1`.
fn seed_example() -> Dataset {
    let x: Vec<f32> = vec![
        1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 2.0, -2.0, 3.0, 1.0, 2.0, -1.0, -0.5, 0.5,
        1.2, 2.0, 1.0, -2.0, 3.0, -1.0, 1.0,
    ];
    let y: Vec<f32> = x.chunks(2).map(|r| 1.5 * r[0] + 1.5 * r[1] + 0.1).collect();
    Dataset::new(x, 2, Targets::Real(y)).unwrap()
}

#[test]
fn the_targets_are_the_printed_ones() {
    let Targets::Real(y) = seed_example().targets().clone() else {
        unreachable!()
    };
    let printed = [
        4.6, 6.1, 3.1, 1.6, 6.1, 1.6, 4.6, -2.15, 2.65, 4.6, 1.6, 0.1,
    ];
    for (a, b) in y.iter().zip(printed) {
        assert_abs_diff_eq!(*a, b, epsilon = 1e-6);
    }
}

/// Steps 4 and 5 with the kernels called one by one: ŷ = (3, 4, 2);
/// ∂L/∂w = 2/3 Xᵀ(ŷ − y) = (−6.000, −4.267); ∂L/∂b = −3.200;
/// with η = 0.1: w⁽¹⁾ = (1.600, 1.427), b⁽¹⁾ = 0.320.
#[test]
fn first_batch_gradients_and_update_by_kernel() {
    let data = seed_example();
    let Targets::Real(y) = data.targets() else {
        unreachable!()
    };
    let (mut w, mut b) = (vec![1f32, 1.0], vec![0f32]);
    let mut yhat = [0f32; 3];
    matmul::matmul(
        matmul::Layout::NN,
        3,
        2,
        1,
        data.features(),
        None,
        &w,
        &mut yhat,
    );
    gradflow::cpu::bias::bias_add(&mut yhat, 3, 1, &b);
    assert_eq!(yhat, [3.0, 4.0, 2.0]);
    let mut dz = [0f32; 3];
    loss::mse(&yhat, y, None, 3, 1, &mut dz, None);
    let (mut gw, mut gb) = ([0f32; 2], [0f32; 1]);
    matmul::matmul(
        matmul::Layout::TN,
        2,
        3,
        1,
        data.features(),
        None,
        &dz,
        &mut gw,
    );
    reduce::col_sums(&dz, 3, 1, &mut gb);
    // f32 gradients of values given to 3 decimals; 1e-5 is ~10 ulps at this magnitude.
    assert_abs_diff_eq!(gw[0], -6.000, epsilon = 1e-5);
    assert_abs_diff_eq!(gw[1], -4.266_667, epsilon = 1e-5);
    assert_abs_diff_eq!(gb[0], -3.200, epsilon = 1e-5);
    update::sgd(&mut w, &gw, 0.1);
    update::sgd(&mut b, &gb, 0.1);
    assert_abs_diff_eq!(w[0], 1.600, epsilon = 1e-6);
    assert_abs_diff_eq!(w[1], 1.426_667, epsilon = 1e-6);
    assert_abs_diff_eq!(b[0], 0.320, epsilon = 1e-6);
}

/// The same step through the linear model's program: the engine must give the same numbers.
#[test]
fn first_batch_through_the_model_program() {
    let data = seed_example();
    let spec = LinearRegression::new().spec_for(&data).unwrap();
    let mut engine =
        CpuEngine::<f32>::new(spec.program(), data.features(), 2, Some(data.targets()), 3);
    engine.set_params(&[vec![1.0, 1.0], vec![0.0]]).unwrap();
    let batch = Rows::Range { start: 0, len: 3 };
    let l = engine.step(batch, 0.1).unwrap();
    // L = 1/3 (1.6² + 2.1² + 1.1²) = 2.7133…
    assert_abs_diff_eq!(
        l,
        (1.6f64.powi(2) + 2.1f64.powi(2) + 1.1f64.powi(2)) / 3.0,
        epsilon = 1e-5
    );
    let g = engine.grads();
    assert_abs_diff_eq!(g[0][0], -6.000, epsilon = 1e-5);
    assert_abs_diff_eq!(g[0][1], -4.266_667, epsilon = 1e-5);
    assert_abs_diff_eq!(g[1][0], -3.200, epsilon = 1e-5);
    let p = engine.params();
    assert_abs_diff_eq!(p[0][0], 1.600, epsilon = 1e-6);
    assert_abs_diff_eq!(p[0][1], 1.426_667, epsilon = 1e-6);
    assert_abs_diff_eq!(p[1][0], 0.320, epsilon = 1e-6);
}

/// `lr_gradient_descent(X, y, batch_size=3, max_iter=1000)`: w = 1, b = 0, η = 0.1,
/// tol = 1e-8, remainder dropped. The seed prints w = (1.49997, 1.49982), b = 0.10031.
/// Our shuffles differ from numpy's, so the path differs; the solution must not:
/// within 1e-3 of (1.5, 1.5, 0.1).
#[test]
fn seed_loop_converges_to_the_truth() {
    let data = seed_example();
    let cfg = TrainConfig::sgd()
        .batch_size(3)
        .learning_rate(0.1)
        .epochs(1000)
        .drop_last(true)
        .tol(1e-8);
    let mut model = LinearRegression::new().with_init(Init::Ones);
    let report = model.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    let (w, b) = (model.weights().unwrap(), model.bias().unwrap());
    assert_abs_diff_eq!(w[0], 1.5, epsilon = 1e-3);
    assert_abs_diff_eq!(w[1], 1.5, epsilon = 1e-3);
    assert_abs_diff_eq!(b, 0.1, epsilon = 1e-3);
    assert!(
        matches!(report.stop, StopReason::Tolerance { .. }),
        "{:?}",
        report.stop
    );
    eprintln!(
        "seed loop: w = {w:?}, b = {b}, stop = {:?}, epochs = {}",
        report.stop,
        report.epoch_losses.len()
    );
}

/// Exercise 1: stochastic GD (batch 1) on the same example, with the seed's η = 0.1 and
/// tol = 1e-8. Some rows alone would be unstable (η · 2‖x‖² = 2.6 > 2 for x = (−2, 3)), but
/// the data are noise-free, so every row's residual vanishes at the same point and the
/// cycle contracts: it reaches the same solution.
#[test]
fn stochastic_gd_reaches_the_same_solution() {
    let data = seed_example();
    let cfg = TrainConfig::sgd()
        .batch_size(1)
        .learning_rate(0.1)
        .epochs(1000)
        .tol(1e-8);
    let mut model = LinearRegression::new().with_init(Init::Ones);
    let report = model.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    let (w, b) = (model.weights().unwrap(), model.bias().unwrap());
    assert_abs_diff_eq!(w[0], 1.5, epsilon = 1e-3);
    assert_abs_diff_eq!(w[1], 1.5, epsilon = 1e-3);
    assert_abs_diff_eq!(b, 0.1, epsilon = 1e-3);
    assert!(matches!(report.stop, StopReason::Tolerance { .. }));
    eprintln!("SGD: w = {w:?}, b = {b}, stop = {:?}", report.stop);
}

/// η = 1 multiplies the residual by |1 − 2‖x‖²| ≥ 1 on most rows: it must diverge, and say so.
#[test]
fn an_unstable_step_size_diverges_with_an_error() {
    let data = seed_example();
    let cfg = TrainConfig::sgd()
        .batch_size(1)
        .learning_rate(1.0)
        .epochs(2000);
    let mut model = LinearRegression::new().with_init(Init::Ones);
    match model.fit(&data, &Trainer::new(cfg).unwrap()) {
        Err(err @ gradflow::Error::Diverged { .. }) => {
            assert!(err.to_string().contains("smaller learning rate"))
        }
        other => panic!("expected Diverged, got {:?}", other.map(|r| r.final_loss())),
    }
    assert!(
        model.weights().unwrap().iter().all(|v| v.is_finite()),
        "the last finite parameters are kept"
    );
}

/// Seed 001: ŵ = (XᵀX)⁻¹Xᵀy with the bias as a column of ones, on the seed example
/// (noise-free, so the solution is exactly (1.5, 1.5, 0.1)), against an f64 oracle.
#[test]
fn normal_equations_solve_the_seed_example_exactly() {
    let sol = normal_eq::solve(&seed_example(), Solve::Strict).unwrap();
    assert_eq!(sol.method, Method::Cholesky);
    // Exact data, f64 solve: only the f32 rounding of the targets (1e-7 relative) remains.
    assert_abs_diff_eq!(sol.weights[0], 1.5, epsilon = 1e-6);
    assert_abs_diff_eq!(sol.weights[1], 1.5, epsilon = 1e-6);
    assert_abs_diff_eq!(sol.bias, 0.1, epsilon = 1e-6);
}

/// Normal equations = converged gradient descent = an independent f64 oracle (Gaussian
/// elimination written out below) on a well-conditioned noisy problem.
#[test]
fn normal_equations_match_gradient_descent_and_an_f64_oracle() {
    let data = Synthetic::linear(4000, 5)
        .seed(3)
        .noise(0.5)
        .dataset()
        .unwrap();
    let sol = normal_eq::solve(&data, Solve::Strict).unwrap();
    let oracle = lstsq_oracle(&data);
    for (a, b) in sol.weights.iter().chain([&sol.bias]).zip(&oracle) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-9);
    }
    // Full-batch GD to convergence: the minimiser is the same point.
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.2)
        .epochs(3000)
        .shuffle(false);
    let mut gd = LinearRegression::new();
    gd.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    for (a, b) in gd.weights().unwrap().iter().zip(&sol.weights) {
        assert_abs_diff_eq!(f64::from(*a), *b, epsilon = 2e-4);
    }
    assert_abs_diff_eq!(f64::from(gd.bias().unwrap()), sol.bias, epsilon = 2e-4);
}

/// Least squares in f64 by Gaussian elimination with partial pivoting on [X 1].
fn lstsq_oracle(data: &Dataset) -> Vec<f64> {
    let d = data.p() + 1;
    let Targets::Real(y) = data.targets() else {
        unreachable!()
    };
    let mut a = vec![vec![0f64; d + 1]; d];
    for (i, &yi) in y.iter().enumerate() {
        let row: Vec<f64> = data
            .row(i)
            .iter()
            .map(|&v| f64::from(v))
            .chain([1.0])
            .collect();
        for r in 0..d {
            for c in 0..d {
                a[r][c] += row[r] * row[c];
            }
            a[r][d] += row[r] * f64::from(yi);
        }
    }
    for col in 0..d {
        let piv = (col..d)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, piv);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, pv) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *v -= f * pv;
                }
            }
        }
    }
    (0..d).map(|r| a[r][d] / a[r][r]).collect()
}
