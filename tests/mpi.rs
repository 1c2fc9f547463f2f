//! `mpiexec -n 2` and `-n 3` runs of `gradflow train` (feature `mpi`; MPICH from
//! Debian's `mpich` package): each model and optimizer equals the single-process fit,
//! stopping rules stop every rank at the same step, a fault on one rank ends the job
//! with its message on rank 0's standard error (never a hang: every run has a deadline),
//! a checkpoint written before a fault is intact, and a resumed distributed fit equals an
//! uninterrupted one. The ranks' parameters are checked equal by the library itself
//! after every epoch and at the end (a difference is an error, so a run that succeeds
//! had them equal).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_gradflow");

/// No run here takes more than a few seconds; a hang is a failure, not a stuck CI.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `command` to its end or the deadline (then kills it and fails).
fn run(mut command: Command) -> Output {
    // One thread per rank: 3 ranks share this machine's cores with their kernels.
    command.env("RAYON_NUM_THREADS", "1");
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpiexec and the binary start");
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "hung past {DEADLINE:?}: {command:?}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `gradflow train ARGS` on `ranks` processes (1: alone, without mpiexec).
fn train(ranks: usize, args: &[&str]) -> Output {
    let mut command = if ranks == 1 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpiexec");
        c.args(["-n", &ranks.to_string(), BIN]);
        c
    };
    command.arg("train").args(args);
    run(command)
}

/// The `--json` summary of a successful run.
fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("one JSON document ({e}): {text}"))
}

fn losses(s: &Value) -> Vec<f64> {
    s["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The single-process run and the 2- and 3-rank runs agree: steps, stop, epoch losses
/// within `rtol`, and training scores.
fn same_as_alone(what: &str, args: &[&str], rtol: f64) {
    let mut args = args.to_vec();
    args.push("--json");
    let alone = summary(&train(1, &args));
    for ranks in [2, 3] {
        let out = train(ranks, &args);
        let ranked = summary(&out);
        // One summary: rank 0's (the others print nothing).
        assert_eq!(
            ranked["steps"], alone["steps"],
            "{what}, {ranks} ranks: steps"
        );
        for key in ["reason", "epoch", "step"] {
            let (r, a) = (&ranked["stop"][key], &alone["stop"][key]);
            assert_eq!(r, a, "{what}, {ranks} ranks: stop {key}");
        }
        let (a, b) = (losses(&ranked), losses(&alone));
        assert_eq!(a.len(), b.len(), "{what}: epochs");
        for (e, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= rtol * y.abs(),
                "{what}, {ranks} ranks, epoch {e}: {x} vs {y} alone"
            );
        }
        for (name, v) in ranked["metrics"].as_object().unwrap() {
            let w = alone["metrics"][name].as_f64().unwrap();
            let v = v.as_f64().unwrap();
            assert!(
                (v - w).abs() <= 1e-3 * w.abs().max(1.0),
                "{what}: {name} {v} vs {w}"
            );
        }
    }
}

#[test]
fn every_model_and_optimizer_equals_the_single_process_fit() {
    let sgd = [
        "--batch-size",
        "40",
        "--epochs",
        "3",
        "--no-stop",
        "--seed",
        "3",
    ];
    let cases: &[(&str, &str, &[&str], f64)] = &[
        (
            "linear",
            "synthetic:linear?n=1003&p=5",
            &["--lr", "0.05"],
            1e-5,
        ),
        (
            "logistic",
            "synthetic:logistic?n=1003&p=4",
            &["--lr", "0.1"],
            1e-5,
        ),
        (
            "softmax",
            "synthetic:blobs?n=1003&p=4&k=3",
            &["--lr", "0.1"],
            1e-5,
        ),
        (
            "mlp",
            "synthetic:blobs?n=1003&p=4&k=3",
            &["--hidden", "8", "--lr", "0.1"],
            1e-5,
        ),
        (
            "mlp",
            "synthetic:blobs?n=1003&p=4&k=3",
            &["--hidden", "8", "--optimizer", "adam", "--lr", "0.01"],
            1e-4,
        ),
        (
            "softmax",
            "synthetic:blobs?n=1003&p=4&k=3",
            &[
                "--optimizer",
                "momentum",
                "--lr",
                "0.05",
                "--penalty",
                "l2",
                "--alpha",
                "0.001",
            ],
            1e-5,
        ),
    ];
    for (model, data, extra, rtol) in cases {
        let mut args = vec!["--model", model, "--data", data];
        args.extend_from_slice(&sgd);
        args.extend_from_slice(extra);
        same_as_alone(&format!("{model} {extra:?}"), &args, *rtol);
    }
}

#[test]
fn the_defaults_and_stopping_rules_stop_every_rank_together() {
    // The trainer's choices: standardisation, a chosen rate, the plateau rule.
    let defaults = [
        "--model",
        "logistic",
        "--data",
        "synthetic:logistic?n=3000&p=6",
        "--solver",
        "sgd",
        "--batch-size",
        "64",
    ];
    same_as_alone("defaults", &defaults, 1e-4);
    // Early stopping on a held-out share scored in parts.
    let early = [
        "--model",
        "mlp",
        "--hidden",
        "6",
        "--data",
        "synthetic:blobs?n=1200&p=3&k=3",
        "--early-stopping",
        "--batch-size",
        "32",
        "--lr",
        "0.1",
        "--epochs",
        "40",
    ];
    same_as_alone("early stopping", &early, 1e-4);
    // Full-batch L-BFGS on data every rank holds, evaluated in parts.
    let lbfgs = [
        "--model",
        "logistic",
        "--data",
        "synthetic:logistic?n=2000&p=5",
    ];
    same_as_alone("lbfgs", &lbfgs, 1e-4);
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradflow-mpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A 2-D `<f4` `.npy` file of `rows`.
fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    let values: Vec<f32> = rows.iter().flatten().copied().collect();
    common::write_npy_f32(path, rows.len(), rows[0].len(), &values);
}

#[test]
fn bad_data_on_one_rank_ends_the_job_with_its_message_on_rank_0() {
    // Row 133 holds a NaN; unshuffled batches of 60 put it in batch 2 (rows 120..180),
    // in rank 0's part on 3 ranks (120..140) — so rank 0 reports its own error — and in
    // rank 0's part on 2 ranks too; a NaN at row 175 is rank 2's (160..180).
    for (bad_row, owner) in [(133, 0), (175, 2)] {
        let rows: Vec<Vec<f32>> = (0..400)
            .map(|i| {
                let x = (i % 17) as f32 / 17.0;
                let v = if i == bad_row { f32::NAN } else { x };
                vec![v, 1.0 - x, 2.0 * x - 1.0]
            })
            .collect();
        let path = temp(&format!("bad{bad_row}.npy"));
        write_npy(&path, &rows);
        let out = train(
            3,
            &[
                "--model",
                "linear",
                "--data",
                path.to_str().unwrap(),
                "--solver",
                "sgd",
                "--batch-size",
                "60",
                "--lr",
                "0.1",
                "--shuffle",
                "off",
                "--epochs",
                "3",
                "--no-standardize",
            ],
        );
        assert!(!out.status.success(), "a NaN row trained");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("row {bad_row}")), "stderr: {err}");
        if owner != 0 {
            assert!(
                err.contains(&format!("rank {owner} of 3 failed")),
                "stderr: {err}"
            );
        }
        // Told once: by rank 0.
        assert_eq!(err.matches("gradflow: error").count(), 1, "stderr: {err}");
    }
}

#[test]
fn a_missing_file_on_every_rank_and_a_killed_rank_end_the_job() {
    let out = train(3, &["--model", "linear", "--data", "absent.npy"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("gradflow: error").count(), 1, "stderr: {err}");
    // A bad flag, which every rank meets before MPI starts: also told once.
    let out = train(3, &["--model", "bogus", "--data", "absent.npy"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("gradflow: error").count(), 1, "stderr: {err}");

    // A long fit; one rank is killed once it has started: mpiexec ends the job.
    let token = temp("killed.json");
    let mut command = Command::new("mpiexec");
    command.args([
        "-n",
        "3",
        BIN,
        "train",
        "--model",
        "mlp",
        "--hidden",
        "64",
        "--data",
        "synthetic:blobs?n=200000&p=32&k=4",
        "--solver",
        "sgd",
        "--epochs",
        "1000",
        "--no-stop",
        "--lr",
        "0.01",
        "--save",
    ]);
    command.arg(&token);
    command
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let ranks = Command::new("pgrep")
        .args(["-f", token.to_str().unwrap()])
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&ranks.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p| p != child.id())
        .collect();
    assert!(!pids.is_empty(), "no rank found running");
    let victim = pids[pids.len() - 1];
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the job survived a killed rank");
            break;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the job hung after rank pid {victim} was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!token.exists(), "a killed job wrote its model");
}

#[test]
fn a_checkpoint_survives_a_failed_resume_and_a_resumed_fit_equals_an_uninterrupted_one() {
    let (full, half, resumed) = (temp("full.json"), temp("half.json"), temp("resumed.json"));
    let base = [
        "--model",
        "mlp",
        "--hidden",
        "6",
        "--data",
        "synthetic:blobs?n=900&p=3&k=3",
        "--solver",
        "sgd",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "32",
        "--no-stop",
        "--seed",
        "2",
    ];
    let run3 = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert!(train(3, &args).status.success(), "{args:?}");
    };
    run3(&["--epochs", "4", "--save", full.to_str().unwrap()]);
    run3(&["--epochs", "2", "--save", half.to_str().unwrap()]);
    let (h, r) = (half.to_str().unwrap(), resumed.to_str().unwrap());
    run3(&["--epochs", "2", "--resume", h, "--save", r]);
    let params = |p: &Path| {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["params"].clone()
    };
    assert_eq!(params(&full), params(&resumed), "resumed ≠ uninterrupted");

    // A resumed run that fails mid-fit (a row that cannot be read, on one rank) leaves
    // the checkpoint as it was.
    let rows: Vec<Vec<f32>> = (0..900)
        .map(|i| {
            let x = (i % 11) as f32 / 11.0;
            let bad = if i == 500 { f32::NAN } else { x };
            vec![bad, 1.0 - x, x * x, (i % 3) as f32]
        })
        .collect();
    let bad = temp("bad-classes.npy");
    write_npy(&bad, &rows);
    let before = std::fs::read(&half).unwrap();
    let failing = [
        "--model",
        "mlp",
        "--hidden",
        "6",
        "--data",
        bad.to_str().unwrap(),
        "--solver",
        "sgd",
        "--lr",
        "0.01",
        "--epochs",
        "2",
        "--no-standardize",
        "--resume",
        h,
        "--save",
        h,
    ];
    let out = train(3, &failing);
    assert!(!out.status.success(), "a fit over a NaN row succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 500"), "stderr: {err}");
    assert_eq!(
        std::fs::read(&half).unwrap(),
        before,
        "the checkpoint changed"
    );
}

#[test]
fn a_csv_file_is_parsed_once_and_read_in_place_by_every_rank() {
    // Rank 0 converts it into a scratch .npy file beside it; the fit is the single
    // process's on the CSV itself (L-BFGS, standardised), and the model keeps the class
    // names and the CSV's layout.
    let dir = temp("csv");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("iris.csv");
    std::fs::copy("tests/data/iris-train.csv", &csv).unwrap();
    let model = dir.join("iris.json");
    let args = [
        "--model",
        "softmax",
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ];
    let alone = summary(&train(1, &args));
    let mut with_save = args.to_vec();
    with_save.extend(["--save", model.to_str().unwrap()]);
    let ranked = summary(&train(3, &with_save));
    assert_eq!(ranked["config"]["solver"], "lbfgs");
    assert_eq!(ranked["steps"], alone["steps"]);
    let (a, b) = (losses(&ranked), losses(&alone));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * y.abs(), "{x} vs {y}");
    }
    let saved = std::fs::read_to_string(&model).unwrap();
    assert!(saved.contains("setosa"), "class names lost: {saved}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npy"))
        .collect();
    assert!(left.is_empty(), "scratch files left: {left:?}");
}
