//! Seed 000's worked example: mini-batch gradient descent on 12 observations, then the
//! normal equations of seed 001 on the same data.
//!
//! Run with `cargo run --release --example linear_regression`.

use gradflow::data::{Dataset, Targets};
use gradflow::model::normal_eq::Solve;
use gradflow::model::{Init, LinearRegression};
use gradflow::{TrainConfig, Trainer};

fn main() -> gradflow::Result<()> {
    #[rustfmt::skip]
    let x = vec![
        1.0, 2.0,  3.0, 1.0,  1.0, 1.0,  0.0, 1.0,  2.0, 2.0,  -2.0, 3.0,
        1.0, 2.0,  -1.0, -0.5,  0.5, 1.2,  2.0, 1.0,  -2.0, 3.0,  -1.0, 1.0,
    ];
    let y = x
        .chunks(2)
        .map(|r: &[f32]| 1.5 * r[0] + 1.5 * r[1] + 0.1)
        .collect();
    let data = Dataset::new(x, 2, Targets::Real(y))?;

    // lr_gradient_descent(X, y, batch_size=3, max_iter=1000): w = 1, b = 0, η = 0.1, tol = 1e-8.
    let cfg = TrainConfig::default()
        .batch_size(3)
        .learning_rate(0.1)
        .epochs(1000)
        .drop_last(true)
        .tol(1e-8);
    let mut model = LinearRegression::new().with_init(Init::Ones);
    let report = model.fit(&data, &Trainer::new(cfg)?)?;
    println!(
        "gradient descent: w = {:?}, b = {:.5}",
        model.weights().unwrap_or_default(),
        model.bias().unwrap_or(0.0)
    );
    println!(
        "  stopped by {:?} after {} steps",
        report.stop, report.steps
    );

    let sol = model.fit_normal(&data, Solve::Strict)?;
    println!(
        "normal equations: w = {:?}, b = {:.5} ({:?})",
        sol.weights, sol.bias, sol.method
    );
    Ok(())
}
