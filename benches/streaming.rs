//! Resident against streaming: samples per second at several batch sizes, with the
//! overlap figure, on the GPU (whatever adapter wgpu picks) and on the CPU.
//!
//! Not a criterion bench: one fit is the unit of work, and what matters beside its speed
//! is where its time went (waiting for rows, waiting for the device), which criterion does
//! not report. Each configuration runs `REPEATS` times; the table gives the median fit.
//! `cargo bench --bench streaming` (set `GRADFLOW_BENCH_QUICK=1` for a smaller, faster run).

use std::time::Duration;

use gradflow::data::{RowSource, Synthetic};
use gradflow::gpu;
use gradflow::model::LinearRegression;
use gradflow::{Backend, Mode, Report, TrainConfig, Trainer};

const REPEATS: usize = 3;

fn main() -> gradflow::Result<()> {
    let quick = std::env::var_os("GRADFLOW_BENCH_QUICK").is_some();
    let (n, p) = if quick { (1 << 15, 64) } else { (1 << 18, 64) };
    let batches: &[usize] = if quick {
        &[256, 4096]
    } else {
        &[256, 1024, 4096, 16384]
    };
    let generator = Synthetic::linear(n, p).seed(1);
    let data = generator.dataset()?;
    let adapter = gpu::shared().map(|ctx| ctx.info().name.clone());
    println!(
        "# resident vs streaming: linear regression, {n} × {p}, 1 epoch, median of {REPEATS}\n"
    );
    match &adapter {
        Ok(name) => println!("GPU adapter: {name}\n"),
        Err(e) => println!("GPU: none ({e})\n"),
    }
    println!(
        "| backend | source | mode | batch | rows/s | wall | waited for rows | waited for device | overlap | MB to device |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let sources: [(&str, &dyn RowSource); 2] = [("dataset", &data), ("generator", &generator)];
    for &batch in batches {
        let cfg = TrainConfig::sgd()
            .batch_size(batch)
            .learning_rate(0.05)
            .epochs(1)
            .seed(3);
        let mut runs: Vec<(&str, &str, TrainConfig)> = vec![
            ("cpu", "dataset", cfg.clone()),
            ("cpu", "generator", cfg.clone()),
        ];
        if adapter.is_ok() {
            let g = cfg.clone().backend(Backend::Gpu);
            runs.push(("gpu", "dataset", g.clone().mode(Mode::Resident)));
            runs.push(("gpu", "dataset", g.clone().mode(Mode::Streaming)));
            runs.push(("gpu", "generator", g.mode(Mode::Streaming)));
        }
        for (backend, source, cfg) in runs {
            let rows = sources
                .iter()
                .find(|(name, _)| *name == source)
                .map(|(_, s)| *s)
                .expect("a listed source");
            let report = median_fit(cfg, rows)?;
            print_row(backend, source, batch, &report);
        }
    }
    Ok(())
}

/// The median-wall fit of `REPEATS`.
fn median_fit(cfg: TrainConfig, rows: &dyn RowSource) -> gradflow::Result<Report> {
    let trainer = Trainer::new(cfg)?;
    let mut reports = (0..REPEATS)
        .map(|_| trainer.fit(&mut LinearRegression::new(), rows))
        .collect::<gradflow::Result<Vec<_>>>()?;
    reports.sort_by_key(|r| r.wall);
    Ok(reports.swap_remove(REPEATS / 2))
}

fn print_row(backend: &str, source: &str, batch: usize, r: &Report) {
    let share = |d: Duration| format!("{:.0} %", 100.0 * d.as_secs_f64() / r.wall.as_secs_f64());
    println!(
        "| {backend} | {source} | {} | {batch} | {:.0} k | {:.0} ms | {} | {} | {} | {:.1} |",
        r.mode,
        r.samples_per_sec() / 1e3,
        r.wall.as_secs_f64() * 1e3,
        share(r.upload_wait),
        share(r.gpu_wait),
        r.overlap()
            .map_or("–".into(), |o| format!("{:.0} %", 100.0 * o)),
        r.bytes_to_device as f64 / 1e6
    );
}
