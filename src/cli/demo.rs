//! The demo, what `gradflow` runs with no subcommand: trains the four models on seeded
//! synthetic data with the CPU reference kernels and prints a table of loss, quality and
//! speed, then checks gradient descent against the normal equations.

use std::time::Instant;

use gradflow::cpu::activation::Activation;
use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::metrics::{accuracy, r2};
use gradflow::model::normal_eq::{self, Solve};
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};
use gradflow::{Report, Result, TrainConfig, Trainer};

/// One row of the table.
struct Row {
    model: String,
    data: String,
    report: Report,
    quality: String,
}

fn labels(data: &Dataset) -> &[u32] {
    match data.targets() {
        Targets::Classes { labels, .. } => labels,
        Targets::Real(_) => &[],
    }
}

/// Runs the demo.
///
/// # Errors
/// The first error of data generation or training.
pub fn demo() -> Result<()> {
    let started = Instant::now();
    println!("gradflow demo: four models on seeded synthetic data, CPU reference kernels\n");
    let mut rows = Vec::new();

    // W1 and W2 of the benchmark suite: 10⁶ × 64, batch 256, 5 epochs.
    let config = |lr: f64, batch: usize, epochs: usize| {
        TrainConfig::default()
            .batch_size(batch)
            .learning_rate(lr)
            .epochs(epochs)
    };
    let lin = Synthetic::linear(1_000_000, 64).seed(1).dataset()?;
    let mut linear = LinearRegression::new();
    let Targets::Real(y) = lin.targets() else {
        unreachable!("linear data has real targets")
    };
    rows.push(fit_row(
        "linear regression",
        "1000000 × 64",
        &mut linear,
        &lin,
        config(0.05, 256, 5),
        |m| Ok(format!("R² {:.5}", r2(&m.predict(lin.features())?, y)?)),
    )?);

    let logit = Synthetic::logistic(1_000_000, 64).seed(2).dataset()?;
    rows.push(fit_row(
        "logistic regression",
        "1000000 × 64",
        &mut LogisticRegression::new(),
        &logit,
        config(0.1, 256, 5),
        |m| {
            Ok(format!(
                "accuracy {:.4}",
                accuracy(&m.predict(logit.features())?, labels(&logit))?
            ))
        },
    )?);

    let blobs = Synthetic::blobs(200_000, 64, 10).seed(3).dataset()?;
    rows.push(fit_row(
        "softmax regression",
        "200000 × 64, 10 blobs",
        &mut SoftmaxRegression::new(),
        &blobs,
        config(0.1, 256, 5),
        |m| {
            Ok(format!(
                "accuracy {:.4}",
                accuracy(&m.predict(blobs.features())?, labels(&blobs))?
            ))
        },
    )?);

    let teacher = Synthetic::teacher(100_000, 64, 10)
        .seed(4)
        .deterministic()
        .dataset()?;
    let mut mlp = Mlp::new(128).with_activation(Activation::Sigmoid);
    rows.push(fit_row(
        "MLP 64-128-10 sigmoid",
        "100000 × 64, teacher",
        &mut mlp,
        &teacher,
        config(0.5, 128, 3),
        |m| {
            Ok(format!(
                "accuracy {:.4}",
                accuracy(&m.predict(teacher.features())?, labels(&teacher))?
            ))
        },
    )?);

    println!(
        "| {:<22} | {:<21} | {:>6} | {:>6} | {:>10} | {:<16} | {:>7} | {:>12} |",
        "model", "data", "epochs", "steps", "final loss", "quality", "time s", "samples/s"
    );
    println!(
        "|{:-<24}|{:-<23}|{:->8}|{:->8}|{:->12}|{:-<18}|{:->9}|{:->14}|",
        "", "", "", "", "", "", "", ""
    );
    for r in &rows {
        println!(
            "| {:<22} | {:<21} | {:>6} | {:>6} | {:>10.4e} | {:<16} | {:>7.2} | {:>12.0} |",
            r.model,
            r.data,
            r.report.epoch_losses.len(),
            r.report.steps,
            r.report.final_loss(),
            r.quality,
            r.report.wall.as_secs_f64(),
            r.report.samples_per_sec()
        );
    }

    // The closed form on the same linear data: gradient descent should have found it.
    let t = Instant::now();
    let sol = normal_eq::solve(&lin, Solve::Auto)?;
    let gap = linear
        .weights()
        .unwrap_or_default()
        .iter()
        .zip(&sol.weights)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    println!(
        "\nnormal equations on the linear data: {:?}, cond(XᵀX) = {:.2e}, {:.2} s; \
         max |w_GD − w_normal| = {gap:.2e}",
        sol.method,
        sol.condition,
        t.elapsed().as_secs_f64()
    );
    println!(
        "total time {:.1} s (data generation included)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fits `model` and describes the result as a table row.
fn fit_row<M: Model>(
    name: &str,
    data_desc: &str,
    model: &mut M,
    data: &Dataset,
    config: TrainConfig,
    quality: impl Fn(&M) -> Result<String>,
) -> Result<Row> {
    let report = Trainer::new(config)?.fit(model, data)?;
    Ok(Row {
        model: name.into(),
        data: data_desc.into(),
        report,
        quality: quality(model)?,
    })
}
