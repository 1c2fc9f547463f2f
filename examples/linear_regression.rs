//! Seed 000's worked example: the first mini-batch step by step (predictions, loss,
//! gradients, update: the numbers of the notes), then the whole loop to convergence, then
//! the normal equations of seed 001 on the same data.
//!
//! Run with `cargo run --release --example linear_regression`.

use gradflow::data::{Dataset, Targets};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::model::normal_eq::Solve;
use gradflow::model::{Init, LinearRegression, Model};
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

    // Step 4 of the notes: w⁽⁰⁾ = (1, 1), b⁽⁰⁾ = 0, the first batch X₁:₃ (N = 3).
    println!("first batch, step by step (seed 000, steps 1–5):");
    let program = LinearRegression::new().spec_for(&data)?.program();
    let (output, delta) = (program.output, program.delta);
    let mut engine = CpuEngine::<f32>::new(program, data.features(), 2, Some(data.targets()), 3);
    engine.set_params(&[vec![1.0, 1.0], vec![0.0]])?;
    let batch = Rows::Range { start: 0, len: 3 };
    engine.forward(batch)?;
    println!("  ŷ = X w + b 1            = {:?}", engine.buf(output));
    let loss = engine.loss(batch)?;
    println!("  L = (1/N) |ŷ − y|²        = {loss:.5}");
    println!("  ∂L/∂ŷ = (2/N)(ŷ − y)      = {:?}", engine.buf(delta));
    engine.backward(batch)?;
    let grads = engine.grads();
    println!(
        "  ∂L/∂w = (2/N) Xᵀ(ŷ − y)   = {:?}   (notes: −6.000, −4.267)",
        grads[0]
    );
    println!(
        "  ∂L/∂b = (2/N) 1ᵀ(ŷ − y)   = {:?}   (notes: −3.200)",
        grads[1]
    );
    engine.sgd(0.1);
    let params = engine.params();
    println!(
        "  η = 0.1: w⁽¹⁾ = {:?}, b⁽¹⁾ = {:?}   (notes: 1.600, 1.427; 0.320)\n",
        params[0], params[1]
    );

    // lr_gradient_descent(X, y, batch_size=3, max_iter=1000): w = 1, b = 0, η = 0.1, tol = 1e-8.
    let cfg = TrainConfig::sgd()
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
