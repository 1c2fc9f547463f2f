//! The `gradflow` binary, run as a user runs it: every subcommand on small data, a CSV
//! round trip (train → save → predict), and bad input that must give one error line, a
//! hint at most, and a non-zero exit code — never a panic.

mod cli_common;
mod common;

use std::path::{Path, PathBuf};

use predicates::prelude::*;
use serde_json::Value;

use cli_common::{fails_with, gradflow, json, succeeds, write};

/// A seeded generator (SplitMix64-style LCG is enough: the data only need to be fixed).
fn noise(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
}

/// Three well-separated 2-D clusters named cat, dog and fox, with a header: any sensible
/// linear classifier gets above 95 % of them right.
fn animals_csv(dir: &Path, rows: usize) -> (PathBuf, Vec<String>) {
    let mut s = 7u64;
    let mut text = String::from("height,weight,kind\n");
    let mut truth = Vec::new();
    let centres = [("cat", 0.0, 0.0), ("dog", 4.0, 4.0), ("fox", 0.0, 5.0)];
    for i in 0..rows {
        let (name, cx, cy) = centres[i % 3];
        let (x, y) = (cx + noise(&mut s), cy + noise(&mut s));
        text.push_str(&format!("{x:.4},{y:.4},{name}\n"));
        truth.push(name.to_string());
    }
    (write(dir, "animals.csv", &text), truth)
}

#[test]
fn train_on_synthetic_data_prints_one_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = gradflow(dir.path())
        .args([
            "train",
            "--model",
            "linear",
            "--data",
            "synthetic:linear?n=2000&p=4&seed=3",
        ])
        .args([
            "--epochs",
            "5",
            "--lr",
            "0.1",
            "--batch-size",
            "32",
            "--no-stop",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let s = json(&out.stdout);
    assert_eq!(s["model"], "linear");
    assert_eq!(
        (s["rows"].as_u64(), s["features"].as_u64()),
        (Some(2000), Some(4))
    );
    assert_eq!(s["classes"], Value::Null);
    assert_eq!(
        (s["backend"].as_str(), s["mode"].as_str()),
        (Some("cpu"), Some("in-memory"))
    );
    assert_eq!(s["adapter"], Value::Null);
    assert_eq!(s["bytes_to_device"], 0);
    assert_eq!(s["stop"]["reason"], "max_epochs");
    // ⌈2000 / 32⌉ = 63 batches per epoch (the last partial batch is trained on).
    assert_eq!(s["steps"], 5 * 63);
    assert_eq!(s["samples"], 5 * 2000);
    let losses: Vec<f64> = s["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 5);
    assert!(
        losses[4] < losses[0] / 10.0,
        "loss did not fall: {losses:?}"
    );
    // Noise σ = 0.01 on targets of variance ≈ p = 4: R² near 1 once converged.
    assert!(s["metrics"]["r2"].as_f64().unwrap() > 0.99, "{s}");
    assert!(s["metrics"]["mse"].as_f64().unwrap() < 0.01, "{s}");
    assert!(s["timings"]["samples_per_sec"].as_f64().unwrap() > 0.0);
    assert!(s["timings"]["train_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn train_prints_metrics_for_people() {
    let dir = tempfile::tempdir().unwrap();
    gradflow(dir.path())
        .args([
            "train",
            "--model",
            "softmax",
            "--data",
            "synthetic:blobs?n=600&p=3&k=4",
        ])
        .args(["--epochs", "3"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("softmax regression on synthetic:blobs?n=600&p=3&k=4")
                .and(predicate::str::contains(
                    "(600 rows × 3 features, 4 classes)",
                ))
                .and(predicate::str::contains("accuracy"))
                .and(predicate::str::contains("samples/s"))
                .and(predicate::str::contains("mode in-memory")),
        );
}

#[test]
fn csv_round_trip_with_string_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, truth) = animals_csv(dir.path(), 300);
    for model in ["softmax", "mlp"] {
        let saved = format!("{model}.json");
        gradflow(dir.path())
            .args(["train", "--model", model, "--data"])
            .arg(&csv)
            .args([
                "--target", "kind", "--epochs", "30", "--lr", "0.5", "--save", &saved,
            ])
            .assert()
            .success();
        let file: Value = json(&std::fs::read(dir.path().join(&saved)).unwrap());
        assert_eq!(file["format"], "gradflow-model");
        assert_eq!(file["version"], 1);
        assert_eq!(file["labels"], serde_json::json!(["cat", "dog", "fox"]));
        assert_eq!(file["data"]["target"], "kind");

        // Predict on the training file itself: the target column is skipped by name.
        let preds = format!("{model}-preds.csv");
        gradflow(dir.path())
            .args(["predict", "--model", &saved, "--data"])
            .arg(&csv)
            .args(["--out", &preds, "--proba"])
            .assert()
            .success();
        let text = std::fs::read_to_string(dir.path().join(&preds)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("prediction,p_cat,p_dog,p_fox"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), truth.len());
        let mut right = 0;
        for (row, want) in rows.iter().zip(&truth) {
            let cells: Vec<&str> = row.split(',').collect();
            let p: f64 = cells[1..].iter().map(|c| c.parse::<f64>().unwrap()).sum();
            assert!((p - 1.0).abs() < 1e-5, "probabilities sum to {p}: {row}");
            right += usize::from(cells[0] == want);
        }
        let acc = right as f64 / truth.len() as f64;
        assert!(acc > 0.95, "{model}: accuracy {acc} on separable clusters");
    }
}

/// A model trained on a file with a header reads its features by name: a file with the
/// columns reordered and an id added predicts what the training file does, and one whose
/// columns merely number the same is refused, naming the missing feature.
#[test]
fn predict_reads_features_by_header_name() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = animals_csv(dir.path(), 60);
    let args = ["--target", "kind", "--epochs", "20", "--lr", "0.5"];
    let train = ["train", "--model", "softmax", "--data", "animals.csv"];
    succeeds(
        dir.path(),
        &[&train[..], &args, &["--save", "m.json"]].concat(),
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let moved: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let c: Vec<&str> = line.split(',').collect();
            let id = if i == 0 {
                "id".to_string()
            } else {
                i.to_string()
            };
            format!("{id},{},{}\n", c[1], c[0])
        })
        .collect();
    write(dir.path(), "moved.csv", moved);
    let predict = |data: &str| {
        succeeds(
            dir.path(),
            &["predict", "--model", "m.json", "--data", data],
        )
    };
    assert_eq!(predict("moved.csv"), predict("animals.csv"));
    // Without its header the training layout is read by position, the target skipped.
    let bare: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    write(dir.path(), "bare.csv", bare);
    assert_eq!(predict("bare.csv"), predict("animals.csv"));
    let renamed = text.replacen("height,weight", "h,w", 1);
    write(dir.path(), "renamed.csv", renamed);
    fails_with(
        gradflow(dir.path())
            .args(["predict", "--model", "m.json", "--data", "renamed.csv"])
            .assert(),
        1,
        "no column \"height\", a feature of the model",
    );
}

#[test]
fn logistic_round_trip_without_header_and_target_by_index() {
    let dir = tempfile::tempdir().unwrap();
    // Label in column 0 ("no"/"yes"), then two features, both near +1 for yes and −1 for no.
    let mut s = 11u64;
    let mut text = String::new();
    let mut truth = Vec::new();
    for i in 0..200 {
        let side = if i % 2 == 0 { 1.0 } else { -1.0 };
        let (a, b) = (side + noise(&mut s), side + noise(&mut s));
        let label = if side > 0.0 { "yes" } else { "no" };
        text.push_str(&format!("{label},{a:.4},{b:.4}\n"));
        truth.push(label);
    }
    let csv = write(dir.path(), "yesno.csv", &text);
    gradflow(dir.path())
        .args(["train", "--model", "logistic", "--data"])
        .arg(&csv)
        .args([
            "--target", "0", "--epochs", "20", "--lr", "0.5", "--save", "yn.json",
        ])
        .assert()
        .success();
    // Same layout (p + 1 columns): the target column 0 is skipped by position.
    let out = gradflow(dir.path())
        .args(["predict", "--model", "yn.json", "--data"])
        .arg(&csv)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("prediction"));
    let got: Vec<&str> = lines.collect();
    // Noise is uniform in ±0.5 around ±1: every feature keeps its side, so a correct fit is exact.
    assert_eq!(got, truth);
}

#[test]
fn plot_writes_a_png() {
    let dir = tempfile::tempdir().unwrap();
    gradflow(dir.path())
        .args([
            "train",
            "--model",
            "logistic",
            "--data",
            "synthetic:logistic?n=500&p=3",
        ])
        .args(["--epochs", "4", "--plot", "loss.png", "--json"])
        .assert()
        .success();
    let png = std::fs::read(dir.path().join("loss.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 1000,
        "suspiciously small PNG: {} bytes",
        png.len()
    );
}

#[test]
fn gradcheck_reports_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    gradflow(dir.path())
        .args([
            "gradcheck",
            "--model",
            "mlp",
            "--hidden",
            "5",
            "--activation",
            "tanh",
        ])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("| W1 ")
                .and(predicate::str::contains("| b1 "))
                .and(predicate::str::contains("| W2 "))
                .and(predicate::str::contains("| b2 "))
                .and(predicate::str::contains("4 × 5"))
                .and(predicate::str::contains("FAIL").not()),
        );
    gradflow(dir.path())
        .args([
            "gradcheck",
            "--model",
            "linear",
            "--data",
            "synthetic:linear?n=40&p=3",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("| W ").and(predicate::str::contains("| b ")));
}

#[test]
fn info_lists_adapters_and_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let out = gradflow(dir.path())
        .arg("info")
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GRADFLOW_ADAPTER"), "{text}");
    match common::gpu("info_lists_adapters_and_the_choice") {
        Some(ctx) => {
            let name = &ctx.info().name;
            assert!(text.contains(&format!("chosen: {name}")), "{text}");
            assert!(text.contains("max storage binding"), "{text}");
            assert!(text.contains("workgroups per dimension"), "{text}");
            // The tuner's choices, as the context the tests run on has them.
            let t = ctx.pipelines().tuning();
            assert!(text.contains("kernel tuning"), "{text}");
            assert!(
                text.contains(&format!("GLM gradient: {:?}", t.glm_grad)),
                "{text}"
            );
            assert!(
                text.contains(&format!("products: {:?}", t.matmul)),
                "{text}"
            );
        }
        None => assert!(text.contains("chosen: none"), "{text}"),
    }
}

#[test]
fn train_on_the_gpu_with_verify() {
    let Some(_) = common::gpu("train_on_the_gpu_with_verify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = gradflow(dir.path())
        .args([
            "train",
            "--model",
            "mlp",
            "--hidden",
            "8",
            "--data",
            "synthetic:blobs?n=300&p=4",
        ])
        .args([
            "--epochs",
            "2",
            "--backend",
            "gpu",
            "--verify",
            "3",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let s = json(&out.stdout);
    assert_eq!(s["backend"], "gpu");
    assert!(s["adapter"].is_string(), "{s}");
    assert_eq!(s["mode"], "resident");
    assert!(s["bytes_to_device"].as_u64().unwrap() > 0);
    let verify = s["verify"].as_array().unwrap();
    assert!(!verify.is_empty());
    for d in verify {
        // Verify mode's own tolerance is rtol 1e-4 relative to magnitude; the run would
        // have failed past it, so each tensor's checks must have happened.
        assert!(d["checks"].as_u64().unwrap() > 0, "{d}");
    }
}

/// A `.npy` file holding a C-ordered `<f8` array of `rows × cols`.
fn npy_f64(dir: &Path, name: &str, cols: usize, values: &[f64]) -> PathBuf {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = [values.len() / cols, cols];
    common::write_npy(&dir.join(name), "<f8", false, &shape, &bytes)
}

#[test]
fn train_on_an_npy_file() {
    let dir = tempfile::tempdir().unwrap();
    // Label (7 or 9: mapped to classes 0 and 1) first, then two features on its side.
    let mut s = 5u64;
    let mut values = Vec::new();
    for i in 0..100 {
        let (label, side) = if i % 2 == 0 { (9.0, 1.0) } else { (7.0, -1.0) };
        values.extend([label, side + noise(&mut s), side + noise(&mut s)]);
    }
    npy_f64(dir.path(), "xy.npy", 3, &values);
    let out = gradflow(dir.path())
        .args([
            "train", "--model", "logistic", "--data", "xy.npy", "--target", "0",
        ])
        .args(["--epochs", "10", "--lr", "0.5", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s = json(&out);
    assert_eq!(
        (s["rows"].as_u64(), s["features"].as_u64()),
        (Some(100), Some(2))
    );
    assert_eq!(s["classes"], 2);
    // Features within ±0.5 of ±1: linearly separable, so every row is right.
    assert_eq!(s["metrics"]["accuracy"], 1.0);
    values[0] = 0.5;
    npy_f64(dir.path(), "frac.npy", 3, &values);
    fails_with(
        gradflow(dir.path())
            .args([
                "train", "--model", "logistic", "--data", "frac.npy", "--target", "0",
            ])
            .assert(),
        1,
        "frac.npy: row 0, column 0: 0.5 is not a whole number",
    );
}

/// A fit that ends at its cap with its stopping rule unmet says so on one warning line,
/// with the command that goes further, and carries `converged: false` in the JSON
/// summary and the saved model; `--no-stop` (exactly N epochs, asked for) does not warn.
#[test]
fn a_fit_that_did_not_converge_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = animals_csv(dir.path(), 300);
    let out = gradflow(dir.path())
        .args(["train", "--model", "mlp", "--data"])
        .arg(&csv)
        .args(["--epochs", "2", "--save", "m.json", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("gradflow: warning: did not converge in 2 epochs"),
        "{stderr}"
    );
    assert!(
        lines[0].contains("hint: gradflow train --model mlp --data"),
        "{stderr}"
    );
    assert!(lines[0].ends_with("--json --epochs 4"), "{stderr}");
    assert_eq!(json(&out.stdout)["converged"], false);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m.json")).unwrap()).unwrap();
    assert_eq!(saved["trained"]["converged"], false);
    assert_eq!(saved["trained"]["solver"], "sgd");

    let quiet = gradflow(dir.path())
        .args(["train", "--model", "mlp", "--data"])
        .arg(&csv)
        .args(["--epochs", "2", "--no-stop", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let s = json(&quiet.stdout);
    assert_eq!(
        (s["epochs_run"].as_u64(), s["converged"].as_bool()),
        (Some(2), Some(false))
    );
}

/// The defaults on raw data print what they chose: the solver, and for the loop the
/// rate and where it came from.
#[test]
fn the_command_prints_what_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = animals_csv(dir.path(), 300);
    let run = |extra: &[&str]| {
        let out = gradflow(dir.path())
            .args(["train", "--model", "softmax", "--data"])
            .arg(&csv)
            .args(extra)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lbfgs = run(&[]);
    assert!(
        lbfgs.contains("solver    lbfgs (memory 10, tol 1e-4) · converged"),
        "{lbfgs}"
    );
    assert!(lbfgs.contains("(1/n: scikit-learn's C = 1)"), "{lbfgs}");
    let sgd = run(&["--solver", "sgd"]);
    assert!(sgd.contains("solver    sgd ·"), "{sgd}");
    assert!(sgd.contains("from the data's curvature"), "{sgd}");
    let given = run(&["--lr", "0.05", "--penalty", "none", "--no-standardize"]);
    assert!(given.contains("lr        5.0000e-2 (given)"), "{given}");
    assert!(given.contains("penalty   none · features raw"), "{given}");
}

/// Writes `rows` as a little-endian f32 `.npy` array in `dir`, laid out in C or Fortran
/// order.
fn npy_of(dir: &Path, name: &str, rows: &[Vec<f32>], fortran: bool) -> PathBuf {
    let (n, cols) = (rows.len(), rows[0].len());
    let values: Vec<f32> = match fortran {
        false => rows.iter().flatten().copied().collect(),
        true => (0..cols)
            .flat_map(|c| rows.iter().map(move |r| r[c]))
            .collect(),
    };
    let bytes = common::f32_bytes(&values);
    common::write_npy(&dir.join(name), "<f4", fortran, &[n, cols], &bytes)
}

/// The same rows as CSV, as a C-ordered and a Fortran-ordered `.npy` (with and without
/// the target column) give the same predictions, written as CSV or as `.npy`.
#[test]
fn predict_reads_csv_and_npy_in_either_order_and_writes_either() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = 5u64;
    let rows: Vec<Vec<f32>> = (0..400)
        .map(|i| {
            let side = if i % 3 == 0 { 1.0 } else { -1.0 };
            vec![
                side + noise(&mut s) as f32,
                noise(&mut s) as f32,
                (i % 3 == 0) as u8 as f32,
            ]
        })
        .collect();
    let text: String = rows
        .iter()
        .map(|r| format!("{},{},{}\n", r[0], r[1], r[2]))
        .collect();
    let csv = write(dir.path(), "d.csv", format!("a,b,y\n{text}"));
    succeeds(
        dir.path(),
        &[
            "train",
            "--model",
            "logistic",
            "--data",
            csv.to_str().unwrap(),
            "--epochs",
            "5",
            "--save",
            "m.json",
        ],
    );
    let features: Vec<Vec<f32>> = rows.iter().map(|r| r[..2].to_vec()).collect();
    let inputs = [
        csv,
        npy_of(dir.path(), "c.npy", &rows, false),
        npy_of(dir.path(), "f.npy", &rows, true),
        npy_of(dir.path(), "features-f.npy", &features, true),
    ];
    let mut outputs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let out = format!("p{i}.csv");
        succeeds(
            dir.path(),
            &[
                "predict",
                "--model",
                "m.json",
                "--data",
                input.to_str().unwrap(),
                "--proba",
                "--out",
                &out,
            ],
        );
        outputs.push(std::fs::read_to_string(dir.path().join(&out)).unwrap());
    }
    assert!(outputs.iter().all(|o| o == &outputs[0]), "{outputs:?}");
    assert_eq!(outputs[0].lines().count(), 401);
    // The .npy output: the class (its number: labels read as numbers) and the two
    // probabilities, the same values as the CSV's.
    succeeds(
        dir.path(),
        &[
            "predict",
            "--model",
            "m.json",
            "--data",
            inputs[2].to_str().unwrap(),
            "--proba",
            "--out",
            "p.npy",
        ],
    );
    let bytes = std::fs::read(dir.path().join("p.npy")).unwrap();
    let header_len = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[..header_len]).contains("'shape': (400, 3)"));
    let values: Vec<f32> = bytes[header_len..]
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let from_csv: Vec<f32> = outputs[0]
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split(',')
                .map(|c| c.parse::<f32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(values, from_csv);
    // An array of neither p nor p + 1 columns: both numbers named.
    let wide = npy_of(dir.path(), "wide.npy", &[vec![0.0; 5]], false);
    fails_with(
        gradflow(dir.path())
            .args([
                "predict",
                "--model",
                "m.json",
                "--data",
                wide.to_str().unwrap(),
            ])
            .assert(),
        1,
        "the array has 5 columns, but the model was trained on 2 feature columns",
    );
}

/// `convert IN OUT` both ways: a CSV with string labels to `.npy` (labels as sorted
/// ids) and back to CSV, the values unchanged; a pair it does not convert is a usage
/// error naming both files.
#[test]
fn convert_goes_from_csv_to_npy_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "d.csv",
        "x,kind,z\n1.5,dog,-2\n0.25,cat,3e2\n7,dog,0.1\n",
    );
    let out = succeeds(
        dir.path(),
        &[
            "convert",
            csv.to_str().unwrap(),
            "d.npy",
            "--target",
            "kind",
        ],
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("3 rows × 2 features and the target (column 1)"),
        "{text}"
    );
    assert!(
        text.contains("classes written as numbers: 0 = cat, 1 = dog"),
        "{text}"
    );
    let out = succeeds(dir.path(), &["convert", "d.npy", "back.csv"]);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("d.npy: 3 rows × 3 columns → back.csv ("),
        "{text}"
    );
    let back = std::fs::read_to_string(dir.path().join("back.csv")).unwrap();
    assert_eq!(
        back,
        "c0,c1,c2\n1.5,-2.0,1.0\n0.25,300.0,0.0\n7.0,0.1,1.0\n"
    );
    fails_with(
        gradflow(dir.path())
            .args(["convert", "d.npy", "again.npy"])
            .assert(),
        2,
        "converts a .csv file to .npy, a .npy file to .csv, or a .parquet file",
    );
    assert!(!dir.path().join("again.npy").exists());
    fails_with(
        gradflow(dir.path())
            .args(["convert", "d.npy", "again.csv", "--target", "0"])
            .assert(),
        2,
        "--target 0: a .npy file is written to CSV column by column",
    );
    assert!(!dir.path().join("again.csv").exists());
}

/// A header of numbers (years) is data to the detection; `--header yes` names the columns
/// with it, in `train`, `predict` and `convert`, and `--header no` reads a text first row
/// as data (here an error naming the cell).
#[test]
fn header_yes_and_no_override_the_detection() {
    let dir = tempfile::tempdir().unwrap();
    let text = "2019,2020,2021\n1,2,3.5\n2,1,3\n3,4,8.5\n4,3,8\n5,5,11\n";
    write(dir.path(), "years.csv", text);
    let rows = |extra: &[&str]| {
        let args = [
            &[
                "train",
                "--model",
                "linear",
                "--data",
                "years.csv",
                "--json",
            ][..],
            extra,
        ]
        .concat();
        json(&succeeds(dir.path(), &args))["rows"].as_u64().unwrap()
    };
    assert_eq!(rows(&[]), 6);
    assert_eq!(rows(&["--header", "yes"]), 5);
    succeeds(
        dir.path(),
        &[
            "train",
            "--model",
            "linear",
            "--data",
            "years.csv",
            "--header",
            "yes",
            "--save",
            "m.json",
        ],
    );
    let model: Value = json(&std::fs::read(dir.path().join("m.json")).unwrap());
    assert_eq!(
        model["data"]["features"],
        serde_json::json!(["2019", "2020"])
    );
    let out = succeeds(
        dir.path(),
        &[
            "predict",
            "--model",
            "m.json",
            "--data",
            "years.csv",
            "--header",
            "yes",
        ],
    );
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 6); // header + 5 rows
    // Without --header: the first row holds the model's feature names, so it is a header.
    let auto = succeeds(
        dir.path(),
        &["predict", "--model", "m.json", "--data", "years.csv"],
    );
    assert_eq!(String::from_utf8(auto).unwrap().lines().count(), 6);
    succeeds(
        dir.path(),
        &["convert", "years.csv", "years.npy", "--header", "yes"],
    );
    write(dir.path(), "named.csv", "a,b,y\n1,2,3\n");
    fails_with(
        gradflow(dir.path())
            .args([
                "train",
                "--model",
                "linear",
                "--data",
                "named.csv",
                "--header",
                "no",
            ])
            .assert(),
        1,
        "\"a\" is not a number",
    );
}

/// A CSV's target in the middle: `convert` moves it last, an array saved from the table
/// keeps it in place, so predict refuses an array of p + 1 columns for such a model
/// rather than guess; the p features alone predict as the CSV does.
#[test]
fn predict_refuses_an_array_whose_target_column_is_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a,y,b,c\n");
    for i in 0..40 {
        let (a, b, c) = (i as f32 * 0.1, (i % 7) as f32, (i % 3) as f32 - 1.0);
        text.push_str(&format!("{a},{},{b},{c}\n", 2.0 * a - b + 0.5 * c));
    }
    write(dir.path(), "mid.csv", text);
    let train = [
        "train", "--model", "linear", "--data", "mid.csv", "--target", "y",
    ];
    succeeds(dir.path(), &[&train[..], &["--save", "m.json"]].concat());
    succeeds(
        dir.path(),
        &["convert", "mid.csv", "mid.npy", "--target", "y"],
    );
    fails_with(
        gradflow(dir.path())
            .args(["predict", "--model", "m.json", "--data", "mid.npy"])
            .assert(),
        1,
        "whose target was column 1, which `gradflow convert` moves last",
    );
    let from_csv = succeeds(
        dir.path(),
        &["predict", "--model", "m.json", "--data", "mid.csv"],
    );
    assert_eq!(String::from_utf8(from_csv).unwrap().lines().count(), 41);
}
