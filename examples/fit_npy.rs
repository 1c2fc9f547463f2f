//! The Rust side of the Python package's benchmark (`python/benchmarks/compare.py`):
//! reads a `.npy` file (features, then the class label in the last column), fits it with
//! one of the presets below `repeats` times through the Rust API, and prints one JSON line
//! with each fit's seconds (`Trainer::fit` alone: the data are loaded first) and the
//! final loss. Each preset is the configuration the Python estimator of the same name
//! builds, so the two fits are the same fit and end at the same loss.
//!
//! ```text
//! cargo run --release --example fit_npy -- data.npy logistic-lbfgs 3
//! ```
//!
//! Presets: `logistic-lbfgs` (`LogisticRegression(random_state=0)`), `logistic-sgd`
//! (`LogisticRegression(solver="sgd", batch_size=256, max_iter=5, n_iter_no_change=None,
//! random_state=0)`), `mlp` (`MLPClassifier(64, batch_size=256, max_iter=3,
//! n_iter_no_change=None, random_state=0)`: Adam, relu, scikit-learn's alpha 1e-4 / 256).

use std::time::Instant;

use gradflow::io::{TargetKind, npy};
use gradflow::model::{Kind, Model};
use gradflow::program::Activation;
use gradflow::{Optimizer, Penalty, Solver, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, preset, repeats] = &args[..] else {
        return Err("usage: fit_npy DATA.npy PRESET REPEATS".into());
    };
    let repeats: usize = repeats.parse()?;
    let data = npy::read(path, None, TargetKind::Classes)?.dataset;
    let classes = data.classes().unwrap_or(2);
    let base = TrainConfig::default().seed(0);
    let (kind, hidden, cfg) = match preset.as_str() {
        "logistic-lbfgs" => (Kind::Logistic, 0, base),
        "logistic-sgd" => (
            Kind::Logistic,
            0,
            base.solver(Solver::Sgd)
                .optimizer(Optimizer::Sgd)
                .batch_size(256)
                .epochs(5)
                .no_stop(),
        ),
        "mlp" => (
            Kind::Mlp,
            64,
            base.solver(Solver::Sgd)
                .optimizer(Optimizer::adam())
                .penalty(Penalty::L2(1e-4 / 256.0))
                .batch_size(256)
                .epochs(3)
                .no_stop(),
        ),
        other => return Err(format!("unknown preset {other}").into()),
    };
    let kind = if kind == Kind::Logistic && classes > 2 {
        Kind::Softmax
    } else {
        kind
    };
    let trainer = Trainer::new(cfg)?;
    let (mut seconds, mut loss) = (Vec::new(), f64::NAN);
    for _ in 0..repeats {
        let mut model: Box<dyn Model> = kind.model(hidden, Activation::Relu);
        let start = Instant::now();
        let report = trainer.fit(model.as_mut(), &data)?;
        seconds.push(start.elapsed().as_secs_f64());
        loss = report.final_loss();
    }
    println!(
        "{}",
        serde_json::json!({ "seconds": seconds, "final_loss": loss })
    );
    Ok(())
}
