//! Files larger than the memory the process may use: `gradflow convert` streams a CSV
//! into a `.npy` file, and `gradflow train` reads the `.npy` file in place (windowed
//! order), on the CPU and on the GPU — each run inside a memory cgroup whose limit is
//! below the file's size, so a run that loaded the file whole would be killed.
//!
//! The cgroup needs root and a writable memory controller (cgroup v1's
//! `/sys/fs/cgroup/memory` or v2's `memory.max`); elsewhere each test prints one loud
//! SKIPPED line, and fails instead with `GRADFLOW_REQUIRE_CGROUP=1` (CI sets it where it
//! can make one).

mod common;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gradflow");

/// A memory cgroup of `limit` bytes, removed when dropped.
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn new(test: &str, limit: u64) -> Option<Cgroup> {
        let name = format!("gradflow-{test}-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, file) = if v1.is_dir() {
            (v1.join(&name), "memory.limit_in_bytes")
        } else {
            (Path::new("/sys/fs/cgroup").join(&name), "memory.max")
        };
        let made = std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(dir.join(file), limit.to_string()))
            // No swap to spill into (v1: memory + swap limited alike).
            .map(|()| {
                let swap = dir.join("memory.memsw.limit_in_bytes");
                if swap.exists() {
                    let _ = std::fs::write(swap, limit.to_string());
                }
            });
        match made {
            Ok(()) => Some(Cgroup { dir }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                if std::env::var("GRADFLOW_REQUIRE_CGROUP").as_deref() == Ok("1") {
                    panic!(
                        "{test}: cannot make a memory cgroup at {}: {e}",
                        dir.display()
                    );
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: no writable memory cgroup ({}: {e}); set \
                     GRADFLOW_REQUIRE_CGROUP=1 to fail instead",
                    dir.display()
                );
                None
            }
        }
    }

    /// Runs `gradflow ARGS` inside the group: a shell joins it, then becomes the binary.
    fn run(&self, args: &[&str]) -> Output {
        let procs = self.dir.join("cgroup.procs");
        let script = format!("echo $$ > '{}' && exec \"$0\" \"$@\"", procs.display());
        Command::new("sh")
            .args(["-c", &script, BIN])
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .expect("sh runs")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn tempdir() -> tempfile::TempDir {
    // On disk, not in a tmpfs whose pages would count against the limit.
    tempfile::Builder::new()
        .prefix("gradflow-out-of-core")
        .tempdir_in(std::env::current_dir().unwrap().join("target"))
        .unwrap()
}

/// A linear-regression CSV of `rows` rows: 10 features and y, as text.
fn write_csv(path: &Path, rows: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "x0,x1,x2,x3,x4,x5,x6,x7,x8,x9,y").unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..rows {
        let mut y = 0.5f64;
        for j in 0..10 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            y += x * (j as f64 + 1.0) / 10.0;
            write!(out, "{x:.7},").unwrap();
        }
        writeln!(out, "{y:.7}").unwrap();
    }
    out.flush().unwrap();
}

fn ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what}: {} (137: killed for memory)\nstderr: {err}",
        out.status
    );
    err
}

#[test]
fn a_csv_larger_than_memory_converts_and_trains_in_place() {
    let dir = tempdir();
    let (csv, npy) = (dir.path().join("big.csv"), dir.path().join("big.npy"));
    // ~92 MB of text, 1,000,000 rows; the .npy file is 44 MB.
    write_csv(&csv, 1_000_000);
    let csv_bytes = std::fs::metadata(&csv).unwrap().len();
    let Some(group) = Cgroup::new("convert", 48 << 20) else {
        return;
    };
    assert!(
        csv_bytes > 48 << 20,
        "the CSV ({csv_bytes} bytes) must exceed the limit"
    );
    let out = group.run(&[
        "convert",
        "--data",
        csv.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    ok(&out, "convert under 48 MiB");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1000000 rows × 10 features"));
    // The converted file equals what the in-memory reader makes of the CSV (rows 0..3).
    let read = gradflow::io::npy::read(&npy, None, gradflow::io::TargetKind::Real).unwrap();
    let csv_data = gradflow::io::csv::read(&csv, &Default::default()).unwrap();
    assert_eq!(
        read.dataset.features()[..30],
        csv_data.dataset.features()[..30]
    );
    assert_eq!(read.dataset.n(), 1_000_000);

    // Trained in place under a limit below the .npy file's 44 MB.
    let Some(small) = Cgroup::new("train", 40 << 20) else {
        return;
    };
    let train = [
        "train",
        "--model",
        "linear",
        "--data",
        npy.to_str().unwrap(),
        "--solver",
        "sgd",
        "--epochs",
        "2",
        "--batch-size",
        "512",
        "--lr",
        "0.05",
        "--no-stop",
        "--json",
    ];
    let err = ok(&small.run(&train), "train on the cpu under 40 MiB");
    assert!(err.contains("windowed order"), "stderr: {err}");
}

#[test]
fn a_npy_file_larger_than_memory_trains_on_the_gpu() {
    if common::gpu("a_npy_file_larger_than_memory_trains_on_the_gpu").is_none() {
        return;
    }
    let dir = tempdir();
    let npy = dir.path().join("big.npy");
    // 1,000,000 × 33 f32: 132 MB.
    let (rows, cols) = (1_000_000usize, 33usize);
    let mut values = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        let mut y = 0f32;
        for j in 0..cols - 1 {
            let x = ((i * 31 + j * 17) % 101) as f32 / 101.0 - 0.5;
            y += x * (j % 5) as f32;
            values.push(x);
        }
        values.push(y);
    }
    common::write_npy_f32(&npy, rows, cols, &values);
    drop(values);
    // A software adapter's shader compiler needs some tens of MB itself: 112 MiB, below
    // the file's 132 MB.
    let Some(group) = Cgroup::new("gpu", 112 << 20) else {
        return;
    };
    let train = [
        "train",
        "--model",
        "linear",
        "--data",
        npy.to_str().unwrap(),
        "--solver",
        "sgd",
        "--epochs",
        "1",
        "--batch-size",
        "1024",
        "--lr",
        "0.01",
        "--no-stop",
        "--backend",
        "gpu",
        "--json",
    ];
    let out = group.run(&train);
    let err = ok(&out, "train on the gpu under 112 MiB");
    assert!(err.contains("windowed order"), "stderr: {err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["mode"], "streaming", "{summary}");
    assert_eq!(summary["backend"], "gpu");
    assert!(summary["losses"][0].as_f64().unwrap().is_finite());
}
