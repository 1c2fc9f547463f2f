//! Soak: trains for many epochs with streaming and prints the resident memory after each
//! block of epochs, to show that nothing leaks (device buffers, staging space, host
//! buffers of the prefetcher): the numbers must stay flat after the first epochs.
//!
//! `cargo run --release --example soak -- [epochs] [cpu|gpu] [rows]` (defaults: 300 epochs,
//! gpu, 20,000 rows of 32 features, batch 64, streamed through a ring of depth 2 with
//! groups of 3 batches — many slot reuses per epoch). `scripts/soak.sh` runs it.

use std::sync::Mutex;

use gradflow::data::Synthetic;
use gradflow::model::LinearRegression;
use gradflow::{Backend, Mode, TrainConfig, Trainer};

/// The process's resident set in kB (Linux: `VmRSS` in /proc/self/status).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> gradflow::Result<()> {
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let backend: Backend = args.next().as_deref().unwrap_or("gpu").parse()?;
    let rows: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let generator = Synthetic::linear(rows, 32).seed(3);
    let cfg = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.01)
        .epochs(epochs)
        .backend(backend)
        .mode(Mode::Streaming)
        .ring_depth(2)
        .upload_batches(3);
    let every = (epochs / 10).max(1);
    let samples = Mutex::new(Vec::new());
    let trainer = Trainer::new(cfg)?.with_progress(move |p| {
        if p.epoch % every == 0 || p.epoch + 1 == epochs {
            let mut seen = samples.lock().unwrap_or_else(|e| e.into_inner());
            if seen.last() != Some(&p.epoch) {
                seen.push(p.epoch);
                println!(
                    "epoch {:>5}: RSS {:>8} kB, loss {:.3e}",
                    p.epoch,
                    rss_kb(),
                    p.loss
                );
            }
        }
    });
    let before = rss_kb();
    let report = trainer.fit(&mut LinearRegression::new(), &generator)?;
    println!(
        "{}: {epochs} epochs × {rows} rows streamed ({} steps, {:.1} GB to the device) in {:.1} s; RSS before {before} kB, after {} kB",
        report.backend,
        report.steps,
        report.bytes_to_device as f64 / 1e9,
        report.wall.as_secs_f64(),
        rss_kb()
    );
    Ok(())
}
