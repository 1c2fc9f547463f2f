//! Two fits on one device at the same time, from two threads, give exactly the results
//! they give one after the other: sessions share the device and its pipeline cache but
//! nothing else (their buffers, parameter rings and halt flags are their own).

mod common;

use common::gpu;
use gradflow::data::Synthetic;
use gradflow::model::{LinearRegression, Mlp, Model};
use gradflow::{Backend, Mode, Optimizer, TrainConfig, Trainer};

#[test]
fn concurrent_fits_equal_sequential_fits() {
    let Some(ctx) = gpu("concurrent_fits_equal_sequential_fits") else {
        return;
    };
    let blobs = Synthetic::teacher(2000, 8, 3).seed(1).dataset().unwrap();
    let lines = Synthetic::linear(3000, 6).seed(2).dataset().unwrap();
    let mlp_trainer = Trainer::new(
        TrainConfig::sgd()
            .batch_size(64)
            .epochs(3)
            .optimizer(Optimizer::adam())
            .learning_rate(0.01)
            .backend(Backend::Gpu),
    )
    .unwrap()
    .with_gpu(ctx.clone());
    // The second one streams, so a worker thread, a ring and slot waits are in play too.
    let lin_trainer = Trainer::new(
        TrainConfig::sgd()
            .batch_size(32)
            .epochs(3)
            .learning_rate(0.05)
            .backend(Backend::Gpu)
            .mode(Mode::Streaming),
    )
    .unwrap()
    .with_gpu(ctx);
    let fit_mlp = || {
        let mut m = Mlp::new(16);
        mlp_trainer.fit(&mut m, &blobs).unwrap();
        m.fitted().unwrap().params.clone()
    };
    let fit_lin = || {
        let mut m = LinearRegression::new();
        lin_trainer.fit(&mut m, &lines).unwrap();
        m.fitted().unwrap().params.clone()
    };
    let (mlp_alone, lin_alone) = (fit_mlp(), fit_lin());
    for round in 0..3 {
        let (mlp_together, lin_together) = std::thread::scope(|s| {
            let a = s.spawn(fit_mlp);
            let b = s.spawn(fit_lin);
            (a.join().unwrap(), b.join().unwrap())
        });
        // Fixed-order reductions: bit for bit, not merely close.
        assert_eq!(mlp_together, mlp_alone, "MLP, round {round}");
        assert_eq!(lin_together, lin_alone, "linear, round {round}");
    }
}
