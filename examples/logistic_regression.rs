//! Seed 000's second exercise: batch gradient descent for logistic regression. Trains on
//! seeded synthetic data whose generating model is known, compares the accuracy with the
//! generating model's own (the best any linear classifier can do on these data), and runs
//! the same fit on the GPU when an adapter exists.
//!
//! Run with `cargo run --release --example logistic_regression`.

use gradflow::data::{Synthetic, Targets, Truth};
use gradflow::metrics::accuracy;
use gradflow::model::LogisticRegression;
use gradflow::{Backend, TrainConfig, Trainer};

fn main() -> gradflow::Result<()> {
    let generator = Synthetic::logistic(20_000, 8).seed(4);
    let data = generator.dataset()?;
    let Targets::Classes { labels, .. } = data.targets() else {
        unreachable!("logistic data are labelled")
    };
    // Batch gradient descent: one update per epoch on all rows (batch_size ≥ n).
    let cfg = TrainConfig::sgd()
        .batch_size(data.n())
        .learning_rate(2.0)
        .epochs(100);
    let mut model = LogisticRegression::new();
    let report = model.fit(&data, &Trainer::new(cfg.clone())?)?;
    let acc = accuracy(&model.predict(data.features())?, labels)?;

    // The generating model's accuracy: sign(x·w* + b*).
    let Truth::Linear { weights, bias } = generator.truth()? else {
        unreachable!("logistic data come from a linear model")
    };
    let truth: Vec<u32> = data
        .features()
        .chunks(data.p())
        .map(|x| {
            let z: f32 = x.iter().zip(&weights).map(|(a, b)| a * b).sum::<f32>() + bias;
            u32::from(z > 0.0)
        })
        .collect();
    println!(
        "batch GD, {} epochs on {} × {}: loss {:.4} → {:.4}, accuracy {acc:.4} (generating model: {:.4})",
        report.steps,
        data.n(),
        data.p(),
        report.epoch_losses[0],
        report.final_loss(),
        accuracy(&truth, labels)?
    );
    let proba = model.predict_proba(&data.features()[..3 * data.p()])?;
    println!("P(y = 0), P(y = 1) of the first three rows: {proba:?}");

    // The same fit on the GPU, when wgpu finds an adapter.
    let mut on_gpu = LogisticRegression::new();
    match on_gpu.fit(&data, &Trainer::new(cfg.backend(Backend::Gpu))?) {
        Ok(gpu) => println!(
            "{}: loss {:.6} (CPU {:.6}), {:.1} s",
            gpu.backend,
            gpu.final_loss(),
            report.final_loss(),
            gpu.wall.as_secs_f64()
        ),
        Err(e) => println!("GPU: not run ({e})"),
    }
    Ok(())
}
