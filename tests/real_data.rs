//! Defaults on real data, as a new user meets them: `gradflow train --model M --data
//! TRAIN.csv` with no training flag, then `gradflow predict` on the held-out 25 %, on
//! scikit-learn's five bundled datasets (`tests/data/`). Each default fit must converge
//! (no divergence, no "did not converge" warning), reach at least scikit-learn's default
//! score, and come within 0.02 accuracy (0.03 R²) of the converged fit on standardized
//! features — on the CPU, and on the GPU (`--backend gpu`, whatever adapter there is).

mod cli_common;
mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use cli_common::{gradflow, json};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("reference.json")).unwrap()).unwrap()
}

/// The last column of each row of a CSV with a header: the held-out targets.
fn targets(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect()
}

/// Accuracy, or R² for real values, of the predictions against the truth.
fn score(predicted: &[String], truth: &[String], metric: &str) -> f64 {
    assert_eq!(predicted.len(), truth.len());
    if metric == "accuracy" {
        let right = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
        return right as f64 / truth.len() as f64;
    }
    let p: Vec<f64> = predicted.iter().map(|v| v.parse().unwrap()).collect();
    let y: Vec<f64> = truth.iter().map(|v| v.parse().unwrap()).collect();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let ss_res: f64 = p.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|b| (b - mean).powi(2)).sum();
    1.0 - ss_res / ss_tot
}

/// Trains `model` on NAME-train.csv with no training flag (plus `extra`), predicts
/// NAME-test.csv; returns the held-out score and the training summary.
fn default_fit(dir: &Path, name: &str, model: &str, extra: &[&str]) -> (f64, Value) {
    let train = data(&format!("{name}-train.csv"));
    let test = data(&format!("{name}-test.csv"));
    let saved = dir.join(format!("{name}-{model}.json"));
    let out = gradflow(dir)
        .args(["train", "--model", model, "--data"])
        .arg(&train)
        .arg("--save")
        .arg(&saved)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} {model} {extra:?}: {stderr}");
    assert!(
        !stderr.contains("warning"),
        "{name} {model} {extra:?}: {stderr}"
    );
    let summary = json(&out.stdout);
    assert_eq!(summary["converged"], true, "{name} {model}: {summary}");
    let predictions = dir.join(format!("{name}-{model}.csv"));
    let out = gradflow(dir)
        .args(["predict", "--model"])
        .arg(&saved)
        .arg("--data")
        .arg(&test)
        .arg("--out")
        .arg(&predictions)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let predicted: Vec<String> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let metric = reference()[name]["metric"].as_str().unwrap().to_string();
    (score(&predicted, &targets(&test), &metric), summary)
}

const DATASETS: [(&str, &str); 5] = [
    ("iris", "softmax"),
    ("wine", "softmax"),
    ("breast_cancer", "logistic"),
    ("digits", "softmax"),
    ("diabetes", "linear"),
];

fn linear_models_by_default(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let reference = reference();
    for (name, model) in DATASETS {
        let (got, summary) = default_fit(dir.path(), name, model, extra);
        let r = &reference[name];
        let (default, converged) = (
            r["sklearn_default"].as_f64().unwrap(),
            r["sklearn_converged"].as_f64().unwrap(),
        );
        let margin = if r["metric"] == "r2" { 0.03 } else { 0.02 };
        eprintln!(
            "{name:<14} {model:<8} {got:.4} (scikit-learn default {default:.4}, converged \
             {converged:.4}) · {} {}",
            summary["config"]["solver"], summary["stop"]["reason"]
        );
        // At least scikit-learn's default, to the precision of f32 parameters (diabetes:
        // both are the least-squares fit, 0.35940877 against 0.35940880 held out).
        assert!(
            got >= default - 1e-6,
            "{name}: {got} below scikit-learn's default {default}"
        );
        assert!(
            got >= converged - margin,
            "{name}: {got} vs converged {converged}"
        );
        // On data in memory linear regression defaults to its normal equations (but for
        // the device, where L-BFGS runs), the classifiers to L-BFGS; on standardized
        // features.
        let on_gpu = extra.contains(&"gpu");
        let solver = if model == "linear" && !on_gpu {
            "normal"
        } else {
            "lbfgs"
        };
        assert_eq!(summary["config"]["solver"], solver, "{summary}");
        assert_eq!(summary["config"]["standardized"], true);
    }
}

#[test]
fn linear_models_reach_the_converged_fit_by_default_on_the_cpu() {
    linear_models_by_default(&[]);
}

#[test]
fn linear_models_reach_the_converged_fit_by_default_on_the_gpu() {
    if common::gpu("linear_models_reach_the_converged_fit_by_default_on_the_gpu").is_none() {
        return;
    }
    linear_models_by_default(&["--backend", "gpu"]);
}

/// The MLP's defaults (seed 001's network: 32 sigmoid units; Adam at 10⁻³, the plateau
/// rule, enough epochs for small data) converge, and come within 0.02 of scikit-learn's
/// MLPClassifier (100 relu units) on standardized features.
#[test]
fn the_mlp_converges_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let reference = reference();
    for name in ["iris", "wine", "breast_cancer", "digits"] {
        let (got, summary) = default_fit(dir.path(), name, "mlp", &[]);
        let r = &reference[name];
        let (default, converged) = (
            r["mlp_default"].as_f64().unwrap(),
            r["mlp_converged"].as_f64().unwrap(),
        );
        eprintln!("{name:<14} mlp {got:.4} (MLPClassifier {default:.4} / {converged:.4})");
        assert_eq!(summary["config"]["optimizer"], "adam");
        assert!(got >= converged - 0.02, "{name}: {got} vs {converged}");
    }
}
