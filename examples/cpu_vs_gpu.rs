//! The same fits on the CPU reference kernels and on the GPU, side by side.
//!
//! Run with `cargo run --release --example cpu_vs_gpu [rows]` (default 100,000 rows; the
//! MLP uses a fifth). On a software adapter (lavapipe) this measures runtime overhead, not
//! a GPU.

use gradflow::data::Synthetic;
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model};
use gradflow::{Backend, Report, TrainConfig, Trainer};

fn run<M: Model + Clone>(
    name: &str,
    model: &M,
    data: &gradflow::data::Dataset,
    cfg: &TrainConfig,
) -> gradflow::Result<()> {
    let mut reports: Vec<Report> = Vec::new();
    for backend in [Backend::Cpu, Backend::Gpu] {
        let mut m = model.clone();
        reports.push(Trainer::new(cfg.clone().backend(backend))?.fit(&mut m, data)?);
    }
    for r in &reports {
        println!(
            "| {name:<24} | {:<44} | {:>6} | {:>11.6} | {:>7.2} | {:>11.0} |",
            r.backend,
            r.steps,
            r.final_loss(),
            r.wall.as_secs_f64(),
            r.samples_per_sec()
        );
    }
    let (c, g) = (&reports[0], &reports[1]);
    println!(
        "| {name:<24} | GPU / CPU throughput {:>5.2}×; |loss difference| / loss {:.1e} | | | | |",
        g.samples_per_sec() / c.samples_per_sec(),
        (g.final_loss() - c.final_loss()).abs() / c.final_loss()
    );
    Ok(())
}

fn main() -> gradflow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let cfg = TrainConfig::sgd()
        .batch_size(256)
        .learning_rate(0.05)
        .epochs(2)
        .seed(11);
    println!("| workload | backend | steps | final loss | wall s | samples/s |");
    println!("|---|---|---:|---:|---:|---:|");
    let lin = Synthetic::linear(n, 64).seed(1).dataset()?;
    run("linear, p=64, B=256", &LinearRegression::new(), &lin, &cfg)?;
    let logit = Synthetic::logistic(n, 64).seed(2).dataset()?;
    run(
        "logistic, p=64, B=256",
        &LogisticRegression::new(),
        &logit,
        &cfg.clone().learning_rate(0.1),
    )?;
    let teacher = Synthetic::teacher(n / 5, 64, 10).seed(3).dataset()?;
    run(
        "MLP 64-256-10, B=256",
        &Mlp::new(256),
        &teacher,
        &cfg.clone().learning_rate(0.1),
    )?;
    Ok(())
}
