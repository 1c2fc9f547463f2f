//! Seed 001's 2-layer MLP on data no linear model separates (concentric rings), against
//! softmax regression, with a finite-difference check of its gradients first.
//!
//! Run with `cargo run --release --example mlp`.

use gradflow::data::{Synthetic, Targets};
use gradflow::gradcheck::gradcheck;
use gradflow::metrics::accuracy;
use gradflow::model::{Mlp, SoftmaxRegression};
use gradflow::{TrainConfig, Trainer};

fn main() -> gradflow::Result<()> {
    let data = Synthetic::rings(5000, 2, 3).seed(1).dataset()?;
    let Targets::Classes { labels, .. } = data.targets() else {
        unreachable!("rings are labelled")
    };

    for t in gradcheck(&Mlp::new(16), &data, 32, 0)?.tensors {
        println!(
            "gradcheck {:>2}: max relative error {:.2e} over {} elements",
            t.name, t.max_rel_error, t.checked
        );
    }

    let trainer = Trainer::new(
        TrainConfig::sgd()
            .batch_size(16)
            .learning_rate(1.0)
            .epochs(80)
            .seed(1),
    )?;
    let mut mlp = Mlp::new(32);
    let report = mlp.fit(&data, &trainer)?;
    let mut linear = SoftmaxRegression::new();
    linear.fit(&data, &trainer)?;
    println!(
        "MLP 2-32-3: accuracy {:.4} (loss {:.4}, {:.2} s); softmax regression: accuracy {:.4}",
        accuracy(&mlp.predict(data.features())?, labels)?,
        report.final_loss(),
        report.wall.as_secs_f64(),
        accuracy(&linear.predict(data.features())?, labels)?
    );
    Ok(())
}
