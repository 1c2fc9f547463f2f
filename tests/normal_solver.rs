//! `Solver::Normal` (`--solver normal`): linear regression's closed form through the
//! trainer, against scikit-learn's `LinearRegression` on diabetes (kept in
//! `tests/data/reference.json`), against an `f64` oracle of the weighted ridge system on
//! awkward data, against L-BFGS driven to its tightest tolerance, and refused where it
//! does not apply.

use gradflow::data::{Dataset, RowSource, Synthetic, Targets};
use gradflow::io::{CsvOptions, csv::read};
use gradflow::model::{LinearRegression, LogisticRegression, Model};
use gradflow::{Backend, Error, Penalty, Solver, StopReason, TrainConfig, Trainer};
use nalgebra::{DMatrix, DVector};

fn normal() -> TrainConfig {
    TrainConfig::default().solver(Solver::Normal)
}

/// The normal equations on raw (unstandardised) features.
fn solve_raw(data: &Dataset) -> (LinearRegression, gradflow::Report) {
    let mut model = LinearRegression::new();
    let report = Trainer::new(normal().standardize(false))
        .unwrap()
        .fit(&mut model, data)
        .unwrap();
    (model, report)
}

fn params(model: &LinearRegression) -> Vec<f64> {
    let f = model.fitted().unwrap();
    f.params.concat().iter().map(|&v| f64::from(v)).collect()
}

/// `(XᵀSX + ridge I_w) θ = XᵀSy` with `X = [x 1]`: the weights by least squares through
/// the QR factors of the weighted, centred rows stacked over `√ridge I` (no normal
/// equations formed), the bias from the means — the oracle.
fn oracle(data: &Dataset, weights: Option<&[f32]>, ridge: f64) -> Vec<f64> {
    let (p, n) = (data.p(), data.n());
    let Targets::Real(y) = data.targets() else {
        unreachable!("regression data")
    };
    let s = |i: usize| weights.map_or(1.0, |w| f64::from(w[i]));
    let x = |i: usize, j: usize| f64::from(data.features()[i * p + j]);
    let total: f64 = (0..n).map(s).sum();
    let mx: Vec<f64> = (0..p)
        .map(|j| (0..n).map(|i| s(i) * x(i, j)).sum::<f64>() / total)
        .collect();
    let my = (0..n).map(|i| s(i) * f64::from(y[i])).sum::<f64>() / total;
    let a = DMatrix::from_fn(n + p, p, |i, j| match i < n {
        true => s(i).sqrt() * (x(i, j) - mx[j]),
        false if i - n == j => ridge.sqrt(),
        false => 0.0,
    });
    let b = DVector::from_fn(n + p, |i, _| match i < n {
        true => s(i).sqrt() * (f64::from(y[i]) - my),
        false => 0.0,
    });
    let qr = a.qr();
    let w = qr
        .r()
        .solve_upper_triangular(&(qr.q().transpose() * b))
        .unwrap();
    let mut theta: Vec<f64> = w.iter().copied().collect();
    theta.push(my - theta.iter().zip(&mx).map(|(w, m)| w * m).sum::<f64>());
    theta
}

#[test]
fn it_is_scikit_learn_s_least_squares_solution_on_diabetes() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reference.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let entry = &reference["diabetes"]["lbfgs"];
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/diabetes-train.csv");
    let data = read(path, &CsvOptions::default()).unwrap().dataset;
    let mut model = LinearRegression::new();
    let report = Trainer::new(normal())
        .unwrap()
        .fit(&mut model, &data)
        .unwrap();
    assert!(report.converged);
    assert!(
        matches!(report.stop, StopReason::Solved { rank: 11, .. }),
        "{}",
        report.stop
    );
    let ours = params(&model);
    let sk: Vec<f64> = entry["coef"]
        .as_array()
        .unwrap()
        .iter()
        .chain(entry["intercept"].as_array().unwrap())
        .map(|v| v.as_f64().unwrap())
        .collect();
    let norm = sk.iter().map(|v| v * v).sum::<f64>().sqrt();
    let err = ours
        .iter()
        .zip(&sk)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt()
        / norm;
    // f32 parameters of an f64 solve: ~1e-7 of their scale.
    assert!(err < 1e-6, "‖θ − θ_sklearn‖ / ‖θ_sklearn‖ = {err:e}");
}

#[test]
fn weighted_ridge_is_the_f64_oracle_s_solution_on_awkward_data() {
    // Features on scales from 1e-3 to 1e3 and an offset, 1003 rows (no whole block).
    let base = Synthetic::linear(1003, 7)
        .seed(11)
        .noise(0.3)
        .dataset()
        .unwrap();
    let scales = [1e-3f32, 1.0, 1e3, 0.5, 20.0, 1.0, 7.0];
    let x: Vec<f32> = base
        .features()
        .chunks(7)
        .flat_map(|r| r.iter().zip(&scales).map(|(v, s)| v * s + 3.0))
        .collect();
    let data = Dataset::new(x, 7, base.targets().clone()).unwrap();
    let weights: Vec<f32> = (0..1003).map(|i| 0.25 + (i % 5) as f32).collect();
    for (penalty, ridge) in [
        (Penalty::None, 0.0),
        (Penalty::L2(0.02), 1003.0 * 0.02 / 2.0),
    ] {
        let mut model = LinearRegression::new();
        let config = normal().penalty(penalty).standardize(false);
        let report = Trainer::new(config)
            .unwrap()
            .fit_weighted(&mut model, &data, Some(&weights))
            .unwrap();
        assert!(
            matches!(report.stop, StopReason::Solved { rank: 8, .. }),
            "{}",
            report.stop
        );
        let want = oracle(&data, Some(&weights), ridge);
        for (i, (a, b)) in params(&model).iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                "{penalty:?}: parameter {i}: {a} vs the oracle's {b}"
            );
        }
    }
}

/// Raw columns near 10⁶ varying by units (exact in f32): the sums of the raw rows would
/// hold the spread in their last digits (a condition number of 1e23 and a fit worse than
/// the mean); centred, the least-squares solution to f32's precision of the bias.
#[test]
fn columns_far_from_zero_are_solved_centred() {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..100 {
        let (a, b) = ((i * 7 % 10) as f32, (i * 3 % 10) as f32);
        x.extend([1e6 + a, 1e6 + b]);
        y.push(a - 2.0 * b + if i % 2 == 0 { 1.0 } else { -1.0 });
    }
    let data = Dataset::new(x, 2, Targets::Real(y)).unwrap();
    let (model, report) = solve_raw(&data);
    assert!(
        matches!(report.stop, StopReason::Solved { rank: 3, .. }),
        "{}",
        report.stop
    );
    let (want, got) = (oracle(&data, None, 0.0), params(&model));
    for j in 0..2 {
        assert!((got[j] - want[j]).abs() < 1e-5, "{got:?} vs {want:?}");
    }
    // The bias is near 1e6: f32 holds it to 0.0625.
    assert!((got[2] - want[2]).abs() < 0.07, "{got:?} vs {want:?}");
}

#[test]
fn integer_weights_are_repeated_rows() {
    let data = Synthetic::linear(300, 3).seed(2).dataset().unwrap();
    let weights: Vec<f32> = (0..300).map(|i| (i % 3) as f32).collect();
    let mut weighted = LinearRegression::new();
    Trainer::new(normal())
        .unwrap()
        .fit_weighted(&mut weighted, &data, Some(&weights))
        .unwrap();
    let Targets::Real(y) = data.targets() else {
        unreachable!("regression data")
    };
    let (mut x, mut t) = (Vec::new(), Vec::new());
    for (i, &w) in weights.iter().enumerate() {
        for _ in 0..w as usize {
            x.extend_from_slice(&data.features()[i * 3..(i + 1) * 3]);
            t.push(y[i]);
        }
    }
    let repeated = Dataset::new(x, 3, Targets::Real(t)).unwrap();
    let mut model = LinearRegression::new();
    Trainer::new(normal().standardize(false))
        .unwrap()
        .fit(&mut model, &repeated)
        .unwrap();
    let mut raw = LinearRegression::new();
    Trainer::new(normal().standardize(false))
        .unwrap()
        .fit_weighted(&mut raw, &data, Some(&weights))
        .unwrap();
    for (a, b) in params(&raw).iter().zip(params(&model)) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    // Standardised, the scaler sees the weights the same way: the same model.
    let x = [0.3f32, -1.0, 2.0];
    let (a, b) = (
        weighted.predict(&x).unwrap()[0],
        model.predict(&x).unwrap()[0],
    );
    assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
}

#[test]
fn l_bfgs_at_its_tightest_reaches_the_closed_form() {
    let data = Synthetic::linear(2000, 6)
        .seed(4)
        .noise(0.5)
        .dataset()
        .unwrap();
    let mut closed = LinearRegression::new();
    Trainer::new(normal().penalty(Penalty::L2(1e-3)))
        .unwrap()
        .fit(&mut closed, &data)
        .unwrap();
    let mut lbfgs = LinearRegression::new();
    let tight = Solver::Lbfgs {
        memory: 10,
        max_iter: 10_000,
        tol: 1e-9,
    };
    Trainer::new(
        TrainConfig::default()
            .solver(tight)
            .penalty(Penalty::L2(1e-3)),
    )
    .unwrap()
    .fit(&mut lbfgs, &data)
    .unwrap();
    for (a, b) in params(&lbfgs).iter().zip(params(&closed)) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "L-BFGS {a} vs closed form {b}"
        );
    }
}

#[test]
fn singular_data_get_the_minimum_norm_solution_with_a_note() {
    // Column 1 is twice column 0.
    let x: Vec<f32> = (0..50).flat_map(|i| [i as f32, 2.0 * i as f32]).collect();
    let y: Vec<f32> = (0..50).map(|i| 3.0 * i as f32 + 1.0).collect();
    let data = Dataset::new(x, 2, Targets::Real(y)).unwrap();
    let (model, report) = solve_raw(&data);
    assert!(
        matches!(report.stop, StopReason::Solved { rank: 2, .. }),
        "{}",
        report.stop
    );
    assert!(
        report.notes.iter().any(|n| n.contains("minimum-norm")),
        "{:?}",
        report.notes
    );
    let p = params(&model);
    for (a, b) in p.iter().zip([0.6, 1.2, 1.0]) {
        assert!((a - b).abs() < 1e-4, "{p:?}");
    }
}

#[test]
fn it_is_refused_where_it_does_not_apply() {
    let labels = Synthetic::logistic(100, 2).seed(1).dataset().unwrap();
    let err = Trainer::new(normal())
        .unwrap()
        .fit(&mut LogisticRegression::new(), &labels)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidParameter {
                name: "solver normal",
                ..
            }
        ),
        "{err}"
    );
    let data = Synthetic::linear(100, 2).seed(1).dataset().unwrap();
    let err = Trainer::new(normal().penalty(Penalty::L1(0.1)))
        .unwrap()
        .fit(&mut LinearRegression::new(), &data)
        .unwrap_err();
    assert!(err.to_string().contains("no closed form"), "{err}");
    assert!(
        err.to_string().contains("l1 (α = 0.1) with solver normal"),
        "{err}"
    );
    // A setting of the loop would be ignored: refused instead.
    let err = Trainer::new(normal().learning_rate(0.1))
        .unwrap()
        .fit(&mut LinearRegression::new(), &data)
        .unwrap_err();
    assert!(
        err.to_string().contains("has no steps to apply it to"),
        "{err}"
    );
    // A generator streams its rows: the sums would need them all.
    let stream = Synthetic::linear(100, 2).seed(1);
    assert!(stream.in_memory().is_none());
    let err = Trainer::new(normal())
        .unwrap()
        .fit(&mut LinearRegression::new(), &stream)
        .unwrap_err();
    assert!(err.to_string().contains("on a streamed source"), "{err}");
}

#[test]
fn asked_for_the_gpu_it_solves_on_the_cpu_and_says_so() {
    let data = Synthetic::linear(200, 3).seed(5).dataset().unwrap();
    let mut model = LinearRegression::new();
    let report = Trainer::new(normal().backend(Backend::Gpu))
        .unwrap()
        .fit(&mut model, &data)
        .unwrap();
    assert_eq!(report.backend, "cpu");
    assert!(
        report.notes.iter().any(|n| n.contains("on the CPU in f64")),
        "{:?}",
        report.notes
    );
}
