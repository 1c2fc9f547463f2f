//! `gradflow train`'s training knobs and checkpoints, and `gradflow bench`, through the
//! binary: the end-to-end fits of real-looking data that need them.

use std::path::{Path, PathBuf};

mod cli_common;

use serde_json::Value;

use cli_common::{gradflow, json, succeeds};

/// Houses: floor area in square feet (500–4000), rooms (1–6), age in years (0–100) and a
/// price band named `cheap`, `mid` or `dear` — features three orders of magnitude apart,
/// string labels, 1 in 10 labels flipped. The band follows a linear score of the
/// standardised features.
fn houses_csv(dir: &Path, rows: usize) -> PathBuf {
    let mut state = 11u64;
    let mut u = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = String::from("area_sqft,rooms,age_years,band\n");
    for _ in 0..rows {
        let (area, rooms, age) = (500.0 + 3500.0 * u(), (1.0 + 5.0 * u()).floor(), 100.0 * u());
        let score = (area - 2250.0) / 1000.0 + 0.5 * (rooms - 3.5) - (age - 50.0) / 30.0;
        let mut band = if score < -0.7 {
            0
        } else if score < 0.7 {
            1
        } else {
            2
        };
        if u() < 0.1 {
            band = (band + 1) % 3;
        }
        let name = ["cheap", "mid", "dear"][band];
        text.push_str(&format!("{area:.1},{rooms},{age:.1},{name}\n"));
    }
    let path = dir.join("houses.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn accuracy(dir: &Path, lr: &str, extra: &[&str]) -> f64 {
    let mut args = vec![
        "train",
        "--model",
        "softmax",
        "--data",
        "houses.csv",
        "--target",
        "band",
        "--epochs",
        "30",
        "--batch-size",
        "32",
        "--lr",
        lr,
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = gradflow(dir).args(&args).output().unwrap();
    // Plain SGD on raw features may diverge: that is an accuracy of nothing.
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("diverged"), "{err}");
        return 0.0;
    }
    let metrics = &json(&out.stdout)["metrics"];
    // A classifier's summary carries scikit-learn's classification scores.
    for key in ["log_loss", "precision_macro", "recall_macro", "f1_macro"] {
        assert!(metrics[key].is_number(), "{key} missing: {metrics}");
    }
    metrics["accuracy"].as_f64().unwrap()
}

/// Raw features defeat plain gradient descent; standardising (saved with the model) with
/// Adam, a cosine schedule, L2 and early stopping gets near the ceiling that the flipped
/// labels and the whole-number room counts leave (0.866 after 30 epochs of plain SGD on
/// standardised features, measured).
#[test]
fn real_looking_csv_needs_the_knobs() {
    let dir = tempfile::tempdir().unwrap();
    houses_csv(dir.path(), 1500);
    // Raw features, plain SGD: what the defaults used to be.
    let raw = accuracy(
        dir.path(),
        "0.05",
        &["--no-standardize", "--penalty", "none"],
    );
    let tuned = accuracy(
        dir.path(),
        "0.01",
        &[
            "--standardize",
            "--optimizer",
            "adam",
            "--schedule",
            "cosine",
            "--min-lr",
            "0.001",
            "--penalty",
            "l2",
            "--alpha",
            "1e-4",
            "--early-stopping",
            "--patience",
            "5",
            "--save",
            "houses.json",
        ],
    );
    eprintln!("accuracy: raw {raw:.3}, standardised + knobs {tuned:.3}");
    assert!(raw < 0.7, "raw features trained too well: {raw}");
    assert!(tuned > 0.84, "{tuned}");
    // The saved model carries its scaler, so it predicts from raw features.
    let model: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("houses.json")).unwrap()).unwrap();
    assert_eq!(model["scaler"]["mean"].as_array().unwrap().len(), 3);
    let out = succeeds(
        dir.path(),
        &["predict", "--model", "houses.json", "--data", "houses.csv"],
    );
    let text = String::from_utf8_lossy(&out);
    let truth: Vec<String> = std::fs::read_to_string(dir.path().join("houses.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect();
    let predicted: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(predicted.len(), truth.len());
    let right = predicted.iter().zip(&truth).filter(|(p, t)| p == t).count();
    assert!(right as f64 / truth.len() as f64 > 0.84);
}

fn params(path: &Path) -> Value {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["params"].clone()
}

/// A checkpoint: 2 epochs, saved; 2 more from the file with --resume = 4 epochs in one
/// run, bit for bit (CPU), Nesterov's velocities and the step schedule included.
#[test]
fn resume_from_a_saved_model_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "train",
        "--model",
        "mlp",
        "--hidden",
        "8",
        "--data",
        "synthetic:teacher?n=600&p=5&k=3",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--optimizer",
        "nesterov",
        "--schedule",
        "step",
        "--step-every",
        "1",
        "--gamma",
        "0.7",
    ];
    let run = |extra: &[&str]| succeeds(dir.path(), &[&base[..], extra].concat());
    run(&["--epochs", "4", "--save", "once.json"]);
    run(&["--epochs", "2", "--save", "half.json"]);
    run(&[
        "--epochs",
        "2",
        "--resume",
        "half.json",
        "--save",
        "twice.json",
    ]);
    let d = dir.path();
    assert_eq!(params(&d.join("once.json")), params(&d.join("twice.json")));
    assert_ne!(params(&d.join("once.json")), params(&d.join("half.json")));
    let state: Value =
        serde_json::from_slice(&std::fs::read(d.join("twice.json")).unwrap()).unwrap();
    assert_eq!(state["state"]["epochs_done"], 4);
    // Another kind of model cannot resume it.
    let out = gradflow(d)
        .args([
            "train",
            "--model",
            "softmax",
            "--data",
            "synthetic:blobs?n=100&p=5&k=3",
        ])
        .args(["--resume", "half.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a mlp model, but --model is softmax"));
}

#[test]
fn bad_knobs_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, needle) in [
        (vec!["--class-weight", "heavy"], "--class-weight heavy"),
        (
            vec!["--optimizer", "momentum", "--momentum", "1.5"],
            "momentum 1.5",
        ),
        (
            vec!["--penalty", "elasticnet", "--l1-ratio", "2"],
            "l1_ratio 2",
        ),
        (
            vec!["--early-stopping", "--validation-fraction", "1"],
            "validation_fraction 1",
        ),
    ] {
        let out = gradflow(dir.path())
            .args([
                "train",
                "--model",
                "logistic",
                "--data",
                "synthetic:logistic?n=50&p=2",
            ])
            .args(&flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(
            err.lines().next().unwrap().contains(needle),
            "{flags:?}: {err}"
        );
    }
}

/// `gradflow bench`: the table on stdout, the JSON report and the plot on disk.
#[test]
fn bench_writes_its_table_report_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--quick",
        "--backend",
        "cpu",
        "--workloads",
        "W1,W5",
        "--json",
        "b.json",
        "--plot",
        "b.png",
    ];
    let out = succeeds(dir.path(), &args);
    let table = String::from_utf8_lossy(&out);
    assert!(
        table.contains("| W1 |") && table.contains("| W5 |"),
        "{table}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("b.json")).unwrap()).unwrap();
    assert!(report.to_string().contains("W5"));
    let png = std::fs::read(dir.path().join("b.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// `--sample-weight`: a weight column is read, not trained on as a feature, kept out of
/// predictions, and works: 40 % of the rows carry flipped labels with weight 0, and the
/// weighted fit predicts the true labels where the unweighted one is pulled off.
#[test]
fn sample_weight_column_silences_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 5u64;
    let mut u = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    // The same rows twice: with the trust column, and without it (for the unweighted fit).
    let (mut weighted_csv, mut plain_csv) = (
        String::from("x,y,trust,label\n"),
        String::from("x,y,label\n"),
    );
    let mut truth = Vec::new();
    for i in 0..1000 {
        let (x, y) = (4.0 * u() - 2.0, 4.0 * u() - 2.0);
        let clean = if x + y > 0.0 { "up" } else { "down" };
        let noisy = i % 5 < 2;
        let (label, trust) = match (noisy, clean) {
            (true, "up") => ("down", 0),
            (true, _) => ("up", 0),
            (false, _) => (clean, 1),
        };
        truth.push(clean);
        weighted_csv.push_str(&format!("{x:.4},{y:.4},{trust},{label}\n"));
        plain_csv.push_str(&format!("{x:.4},{y:.4},{label}\n"));
    }
    std::fs::write(dir.path().join("noisy.csv"), weighted_csv).unwrap();
    std::fs::write(dir.path().join("plain.csv"), plain_csv).unwrap();
    let train = |data: &str, extra: &[&str], save: &str| {
        let args = [
            "train", "--model", "logistic", "--data", data, "--target", "label", "--epochs", "20",
            "--json", "--save", save,
        ];
        json(&succeeds(dir.path(), &[&args[..], extra].concat()))
    };
    let weighted = train("noisy.csv", &["--sample-weight", "trust"], "w.json");
    assert_eq!(weighted["features"], 2, "the weight column is no feature");
    train("plain.csv", &[], "p.json");
    // Predicting on the training file skips both the target and the weight column.
    let true_accuracy = |model: &str, data: &str| {
        let out = succeeds(dir.path(), &["predict", "--model", model, "--data", data]);
        let text = String::from_utf8_lossy(&out).to_string();
        let right = text
            .lines()
            .skip(1)
            .zip(&truth)
            .filter(|(p, t)| p == *t)
            .count();
        right as f64 / truth.len() as f64
    };
    let with = true_accuracy("w.json", "noisy.csv");
    let without = true_accuracy("p.json", "plain.csv");
    eprintln!("accuracy on the true labels: weighted {with:.3}, unweighted {without:.3}");
    assert!(with > 0.95, "{with}");
    assert!(with > without + 0.05, "{with} vs {without}");
    // Synthetic data have no columns to weigh.
    let out = gradflow(dir.path())
        .args([
            "train",
            "--model",
            "linear",
            "--data",
            "synthetic:linear?n=10&p=2",
        ])
        .args(["--sample-weight", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The course notes' loop from the command line (seed 000): w = 1, b = 0 (`--init ones`),
/// raw features, batches of 5 of the 12 rows with the last 2 left out (`--drop-last`), in
/// stored order, η = 0.1: two epochs equal the notes' arithmetic in f64; and the notes'
/// `tol` rule (`--batch-tol`) ends a longer fit at the step where |Δloss| fell below it.
#[test]
fn the_course_notes_loop_from_the_command_line() {
    let rows = [
        [1.0, 2.0],
        [3.0, 1.0],
        [1.0, 1.0],
        [0.0, 1.0],
        [2.0, 2.0],
        [-2.0, 3.0],
        [1.0, 2.0],
        [-1.0, -0.5],
        [0.5, 1.2],
        [2.0, 1.0],
        [-2.0, 3.0],
        [-1.0, 1.0],
    ];
    let y: Vec<f64> = rows.iter().map(|r| 1.5 * r[0] + 1.5 * r[1] + 0.1).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x1,x2,y\n");
    for (r, t) in rows.iter().zip(&y) {
        text.push_str(&format!("{},{},{}\n", r[0], r[1], *t as f32));
    }
    std::fs::write(dir.path().join("seed.csv"), text).unwrap();
    // The notes' loop, in f64.
    let (mut w, mut b) = ([1.0f64, 1.0], 0.0f64);
    for _epoch in 0..2 {
        for batch in 0..12 / 5 {
            let idx = batch * 5..batch * 5 + 5;
            let (mut dw, mut db) = ([0.0f64; 2], 0.0);
            for i in idx {
                let r = rows[i][0] * w[0] + rows[i][1] * w[1] + b - f64::from(y[i] as f32);
                dw[0] += 2.0 / 5.0 * rows[i][0] * r;
                dw[1] += 2.0 / 5.0 * rows[i][1] * r;
                db += 2.0 / 5.0 * r;
            }
            w = [w[0] - 0.1 * dw[0], w[1] - 0.1 * dw[1]];
            b -= 0.1 * db;
        }
    }
    let base = [
        "train",
        "--model",
        "linear",
        "--data",
        "seed.csv",
        "--init",
        "ones",
        "--no-standardize",
        "--batch-size",
        "5",
        "--drop-last",
        "--shuffle",
        "off",
        "--lr",
        "0.1",
    ];
    let args = [
        &base[..],
        &["--epochs", "2", "--no-stop", "--save", "m.json"],
    ]
    .concat();
    let out = json(&succeeds(dir.path(), &[&args[..], &["--json"]].concat()));
    assert_eq!(out["steps"], 4);
    let model: Value = json(&std::fs::read(dir.path().join("m.json")).unwrap());
    let got: Vec<f64> = model["params"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["values"].as_array().unwrap().clone())
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (g, want) in got.iter().zip([w[0], w[1], b]) {
        assert!(
            (g - want).abs() < 1e-5,
            "{got:?} against the notes' {w:?}, {b}"
        );
    }
    let ruled = [
        &base[..],
        // The notes' rule alone: no --no-stop needed.
        &["--epochs", "1000", "--batch-tol", "1e-8", "--json"],
    ]
    .concat();
    let out = json(&succeeds(dir.path(), &ruled));
    assert_eq!(out["stop"]["reason"], "tolerance", "{out}");
    assert!(out["stop"]["delta"].as_f64().unwrap() < 1e-8);
}
