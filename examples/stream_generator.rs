//! Trains linear regression on rows made on the fly: 10⁸ × 64 by default (25.6 GB of
//! f32 were they stored), in one pass, without ever materialising the dataset. Prints
//! progress, the fit, and the process's peak memory to show that nothing was stored.
//!
//! Run with `cargo run --release --example stream_generator [rows] [cpu|gpu] [batch]`.

use gradflow::data::{Synthetic, Truth};
use gradflow::model::LinearRegression;
use gradflow::{Backend, Mode, TrainConfig, Trainer};

fn main() -> gradflow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000_000);
    let backend: Backend = args.next().as_deref().unwrap_or("cpu").parse()?;
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let p = 64;
    let generator = Synthetic::linear(rows, p).seed(1);
    let cfg = TrainConfig::sgd()
        .batch_size(batch)
        .learning_rate(0.1)
        .epochs(1)
        .backend(backend)
        .mode(Mode::Streaming)
        .loss_every((rows / batch / 10).max(1));
    println!(
        "{rows} × {p} rows from a generator ({:.1} GB of f32 if stored), batch {batch}, {backend:?}",
        (rows * (p + 1) * 4) as f64 / 1e9
    );
    let trainer = Trainer::new(cfg)?.with_progress(|p| {
        println!(
            "  step {:>9}: batch loss {:.3e}, {:.2} M rows/s",
            p.steps,
            p.loss,
            p.samples_per_sec / 1e6
        );
    });
    let mut model = LinearRegression::new();
    let report = trainer.fit(&mut model, &generator)?;
    let Truth::Linear { weights, bias } = generator.truth()? else {
        unreachable!("linear data")
    };
    let w = model.weights().unwrap_or_default();
    let worst = w
        .iter()
        .zip(&weights)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "{}: {} rows in {:.1} s ({:.2} M rows/s), mode {}, {:.2} GB to the device",
        report.backend,
        report.samples,
        report.wall.as_secs_f64(),
        report.samples_per_sec() / 1e6,
        report.mode,
        report.bytes_to_device as f64 / 1e9
    );
    println!(
        "waits: for rows {:.1} s, for the GPU {:.1} s; max |w − w*| = {worst:.2e}, |b − b*| = {:.2e}",
        report.upload_wait.as_secs_f64(),
        report.gpu_wait.as_secs_f64(),
        (model.bias().unwrap_or_default() - bias).abs()
    );
    if let Some(peak) = peak_memory() {
        println!("peak resident memory: {peak}");
    }
    Ok(())
}

/// The process's peak resident set (Linux: `VmHWM` in /proc/self/status).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}
