//! Full-batch L-BFGS against scikit-learn: the coefficients of
//! `LogisticRegression(C=1, tol=1e-10)` and `LinearRegression()` on the standardized
//! training sets of `tests/data/` (computed once by `scripts/real_datasets.py`, kept in
//! `tests/data/reference.json`), on the CPU and the GPU; and convergence where gradient
//! descent crawls.

mod common;

use common::{gpu, rescaled};

use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::io::{CsvOptions, csv::read};
use gradflow::model::{LinearRegression, LogisticRegression, Model, SoftmaxRegression, normal_eq};
use gradflow::{Backend, Penalty, Solver, TrainConfig, Trainer};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn train_set(name: &str, classes: bool) -> (Dataset, Option<Vec<String>>) {
    let path = format!("{}/tests/data/{name}-train.csv", env!("CARGO_MANIFEST_DIR"));
    let mut opts = CsvOptions::default();
    if classes {
        opts = opts.classes();
    }
    let csv = read(path, &opts).unwrap();
    (csv.dataset, csv.labels)
}

/// scikit-learn's `LogisticRegression(tol=1e-10)`: as tight as the `f32` objective allows.
fn exact() -> TrainConfig {
    TrainConfig::default().solver(Solver::Lbfgs {
        memory: 10,
        max_iter: 10_000,
        tol: 1e-10,
    })
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    d.sqrt() / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

/// scikit-learn's coef_ (k × p) and intercept_ as gradflow's W (p × k) and b, with the
/// classes in gradflow's order (sorted names), one output for a binary model.
fn sklearn_params(entry: &Value, sk_labels: &[String], ours: &[String]) -> (Vec<f64>, Vec<f64>) {
    let coef: Vec<Vec<f64>> = entry["coef"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let intercept: Vec<f64> = entry["intercept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    if coef.len() == 1 {
        // Binary: scikit-learn's coefficients are for its class 1; ours for our class 1.
        let flip = if sk_labels[1] == ours[1] { 1.0 } else { -1.0 };
        let w = coef[0].iter().map(|v| v * flip).collect();
        return (w, vec![intercept[0] * flip]);
    }
    let p = coef[0].len();
    let k = coef.len();
    let order: Vec<usize> = ours
        .iter()
        .map(|name| sk_labels.iter().position(|s| s == name).unwrap())
        .collect();
    let mut w = vec![0.0; p * k];
    for (j, &c) in order.iter().enumerate() {
        for l in 0..p {
            w[l * k + j] = coef[c][l];
        }
    }
    (w, order.iter().map(|&c| intercept[c]).collect())
}

fn params_of(model: &dyn Model) -> (Vec<f64>, Vec<f64>) {
    let f = model.fitted().unwrap();
    let w = f.params[0].iter().map(|&v| f64::from(v)).collect();
    let b = f.params[1].iter().map(|&v| f64::from(v)).collect();
    (w, b)
}

/// `(‖ours − sklearn‖ / ‖sklearn‖, our flat parameters)` for the classifier on `name`, on
/// the CPU or (with a context) the GPU.
fn check_classifier(
    name: &str,
    sk_labels: &[&str],
    gpu: Option<gradflow::gpu::GpuContext>,
) -> (f64, Vec<f64>) {
    let reference = reference();
    let entry = &reference[name]["lbfgs"];
    let (data, labels) = train_set(name, true);
    let labels = labels.unwrap();
    let sk: Vec<String> = sk_labels.iter().map(|s| s.to_string()).collect();
    let (w_sk, b_sk) = sklearn_params(entry, &sk, &labels);
    let trainer = match gpu {
        Some(ctx) => Trainer::new(exact().backend(Backend::Gpu))
            .unwrap()
            .with_gpu(ctx),
        None => Trainer::new(exact()).unwrap(),
    };
    let (mut binary, mut multi) = (LogisticRegression::new(), SoftmaxRegression::new());
    let model: &mut dyn Model = if labels.len() == 2 {
        &mut binary
    } else {
        &mut multi
    };
    let report = trainer.fit(model, &data).unwrap();
    assert!(report.converged, "{name}: {}", report.stop);
    // The default penalty is scikit-learn's C = 1: α = 1 / n.
    assert_eq!(report.choices.penalty, Penalty::L2(1.0 / data.n() as f64));
    let (w, b) = params_of(model);
    let all: Vec<f64> = w.iter().chain(&b).copied().collect();
    let all_sk: Vec<f64> = w_sk.iter().chain(&b_sk).copied().collect();
    (rel(&all, &all_sk), all)
}

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

#[test]
fn logistic_regression_matches_scikit_learn_on_breast_cancer() {
    let (err, _) = check_classifier("breast_cancer", &["malignant", "benign"], None);
    eprintln!("breast_cancer: ‖w − w_sklearn‖ / ‖w_sklearn‖ = {err:.2e}");
    assert!(err < 1e-4, "{err:e}");
}

#[test]
fn softmax_regression_matches_scikit_learn_on_digits() {
    let (err, _) = check_classifier("digits", &DIGITS, None);
    eprintln!("digits: ‖w − w_sklearn‖ / ‖w_sklearn‖ = {err:.2e}");
    assert!(err < 1e-4, "{err:e}");
}

#[test]
fn softmax_regression_matches_scikit_learn_on_iris_and_wine() {
    for (name, labels) in [
        ("iris", ["setosa", "versicolor", "virginica"]),
        ("wine", ["class_0", "class_1", "class_2"]),
    ] {
        let (err, _) = check_classifier(name, &labels, None);
        eprintln!("{name}: ‖w − w_sklearn‖ / ‖w_sklearn‖ = {err:.2e}");
        assert!(err < 1e-4, "{name}: {err:e}");
    }
}

#[test]
fn linear_regression_matches_the_least_squares_solution_on_raw_targets() {
    let reference = reference();
    let entry = &reference["diabetes"]["lbfgs"];
    let (data, _) = train_set("diabetes", false);
    let mut model = LinearRegression::new();
    let report = Trainer::new(exact())
        .unwrap()
        .fit(&mut model, &data)
        .unwrap();
    assert!(report.converged, "{}", report.stop);
    let (w, b) = params_of(&model);
    let w_sk: Vec<f64> = entry["coef"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let b_sk = entry["intercept"][0].as_f64().unwrap();
    let all: Vec<f64> = w.iter().chain(&b).copied().collect();
    let all_sk: Vec<f64> = w_sk.iter().chain(std::iter::once(&b_sk)).copied().collect();
    let err = rel(&all, &all_sk);
    eprintln!("diabetes: ‖w − w_ols‖ / ‖w_ols‖ = {err:.2e}");
    assert!(err < 1e-4, "{err:e}");
}

/// The GPU evaluates the same objective (forward, fused loss and backward over all rows,
/// the gradient reduction split over row blocks), so it reaches the same optimum: within
/// the target of scikit-learn's coefficients, and close to the CPU's.
#[test]
fn the_gpu_reaches_the_same_coefficients() {
    let Some(ctx) = gpu("the_gpu_reaches_the_same_coefficients") else {
        return;
    };
    for (name, labels) in [
        ("breast_cancer", &["malignant", "benign"][..]),
        ("digits", &DIGITS[..]),
    ] {
        let (cpu_err, cpu) = check_classifier(name, labels, None);
        let (gpu_err, on_gpu) = check_classifier(name, labels, Some(ctx.clone()));
        let apart = rel(&on_gpu, &cpu);
        eprintln!(
            "{name}: GPU {gpu_err:.2e}, CPU {cpu_err:.2e} from scikit-learn; GPU − CPU {apart:.2e}"
        );
        assert!(gpu_err < 1e-4, "{name}: GPU {gpu_err:e}");
        assert!(apart < 1e-4, "{name}: GPU − CPU {apart:e}");
    }
}

/// Features on scales 10⁻² … 10³ (condition number of X̃ᵀX̃ ~10¹⁰), unstandardised: plain
/// gradient descent would need billions of steps, L-BFGS reaches the least-squares
/// solution of the normal equations.
#[test]
fn lbfgs_converges_on_ill_conditioned_data() {
    let (n, p) = (2000, 6);
    let scales = [1e-2f32, 1e-1, 1.0, 10.0, 100.0, 1000.0];
    let base = Synthetic::linear(n, p)
        .seed(5)
        .noise(0.1)
        .dataset()
        .unwrap();
    let data = rescaled(&base, &scales, None);
    let ols = normal_eq::solve(&data, normal_eq::Solve::Auto).unwrap();
    let cfg = exact().standardize(false);
    let mut model = LinearRegression::new();
    let report = Trainer::new(cfg).unwrap().fit(&mut model, &data).unwrap();
    assert!(report.converged, "{}", report.stop);
    let (w, b) = params_of(&model);
    // Each weight against the exact solution, relative to its own feature's scale.
    for j in 0..p {
        let err = (w[j] - ols.weights[j]).abs() * f64::from(scales[j]);
        assert!(
            err < 1e-3,
            "w[{j}] = {} vs {} (scaled error {err:e})",
            w[j],
            ols.weights[j]
        );
    }
    assert!(
        (b[0] - ols.bias).abs() < 1e-3,
        "b = {} vs {}",
        b[0],
        ols.bias
    );
    assert!(report.steps < 1000, "{} iterations", report.steps);
}

/// The default fit of linear regression on raw, badly scaled data converges (on
/// standardised features: its normal equations; L-BFGS when asked) where the old default
/// (SGD at 0.1, raw features) diverged.
#[test]
fn defaults_converge_where_plain_sgd_diverged() {
    let (n, p) = (1000, 4);
    let scales = [1.0f32, 50.0, 2000.0, 0.01];
    let base = Synthetic::linear(n, p)
        .seed(9)
        .noise(0.5)
        .dataset()
        .unwrap();
    let data = rescaled(&base, &scales, Some((300.0, 5000.0)));
    let old = Trainer::new(TrainConfig::sgd().epochs(10)).unwrap();
    assert!(matches!(
        old.fit(&mut LinearRegression::new(), &data),
        Err(gradflow::Error::Diverged { .. })
    ));
    for (config, solver) in [
        (TrainConfig::default(), "normal"),
        (TrainConfig::default().solver(Solver::lbfgs()), "lbfgs"),
    ] {
        let mut model = LinearRegression::new();
        let report = Trainer::new(config)
            .unwrap()
            .fit(&mut model, &data)
            .unwrap();
        assert!(report.converged, "{}", report.stop);
        let chosen = match report.choices.solver {
            Solver::Normal => "normal",
            Solver::Lbfgs { .. } => "lbfgs",
            other => panic!("{other:?}"),
        };
        assert_eq!(chosen, solver);
        let r2 = gradflow::metrics::r2(
            &model.predict(data.features()).unwrap(),
            match data.targets() {
                Targets::Real(y) => y,
                _ => unreachable!(),
            },
        )
        .unwrap();
        assert!(r2 > 0.9, "{solver}: R² {r2}");
    }
}

/// The reference kernels (sums in f64) evaluate the same objective: the same optimum,
/// and scikit-learn's coefficients at least as closely.
#[test]
fn the_reference_kernels_reach_the_same_optimum() {
    let reference = reference();
    let entry = &reference["breast_cancer"]["lbfgs"];
    let (data, labels) = train_set("breast_cancer", true);
    let sk: Vec<String> = ["malignant", "benign"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (w_sk, b_sk) = sklearn_params(entry, &sk, &labels.unwrap());
    let all_sk: Vec<f64> = w_sk.iter().chain(&b_sk).copied().collect();
    let mut errs = Vec::new();
    for kernels in [gradflow::CpuKernels::Fast, gradflow::CpuKernels::Reference] {
        let mut model = LogisticRegression::new();
        let cfg = exact().cpu_kernels(kernels);
        let report = Trainer::new(cfg).unwrap().fit(&mut model, &data).unwrap();
        assert!(report.converged, "{kernels:?}: {}", report.stop);
        let (w, b) = params_of(&model);
        let all: Vec<f64> = w.iter().chain(&b).copied().collect();
        errs.push(rel(&all, &all_sk));
    }
    eprintln!("fast {:.2e}, reference {:.2e}", errs[0], errs[1]);
    assert!(errs.iter().all(|&e| e < 1e-5), "{errs:?}");
}
