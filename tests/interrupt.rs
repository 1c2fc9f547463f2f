//! `Trainer::with_interrupt`: a flag set during a fit stops it at the next step (or
//! L-BFGS evaluation) and leaves the model as it was before the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gradflow::data::Synthetic;
use gradflow::model::{LinearRegression, Mlp, Model};
use gradflow::{Error, Solver, TrainConfig, Trainer};

/// A trainer whose progress callback raises the flag once `after` epochs have synced.
fn stopping_after(cfg: TrainConfig, after: usize) -> (Trainer, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    let raise = flag.clone();
    let trainer = Trainer::new(cfg)
        .unwrap()
        .with_progress(move |p| {
            if p.epoch + 1 >= after {
                raise.store(true, Ordering::Relaxed);
            }
        })
        .with_interrupt(flag.clone());
    (trainer, flag)
}

#[test]
fn mini_batch_fit_stops_at_the_next_step_and_keeps_the_model_unfitted() {
    let data = Synthetic::blobs(400, 3, 3).seed(2).dataset().unwrap();
    let (trainer, _) = stopping_after(TrainConfig::sgd().epochs(50).batch_size(40), 2);
    let mut model = Mlp::new(6);
    let err = trainer.fit(&mut model, &data).unwrap_err();
    // Two epochs of 10 steps ran; the flag was seen before the third epoch's first step.
    assert_eq!(err, Error::Interrupted { step: 20, epoch: 2 });
    assert!(model.fitted().is_none());
}

#[test]
fn interrupted_partial_fit_keeps_the_previous_parameters_and_state() {
    let data = Synthetic::blobs(400, 3, 3).seed(2).dataset().unwrap();
    let cfg = TrainConfig::sgd().epochs(3).batch_size(40);
    let mut model = Mlp::new(6);
    Trainer::new(cfg.clone())
        .unwrap()
        .fit(&mut model, &data)
        .unwrap();
    let before = model.fitted().unwrap().clone();
    let (trainer, flag) = stopping_after(cfg.clone(), 1);
    let err = trainer.partial_fit(&mut model, &data).unwrap_err();
    assert!(
        matches!(err, Error::Interrupted { step: 10, epoch: 4 }),
        "{err}"
    );
    assert_eq!(model.fitted().unwrap(), &before);
    // Cleared, the flag lets the next call go on from the same state.
    flag.store(false, Ordering::Relaxed);
    let fresh = Trainer::new(cfg).unwrap();
    let mut twin = Mlp::new(6);
    twin.set_fitted(before);
    fresh.partial_fit(&mut twin, &data).unwrap();
    Trainer::new(TrainConfig::sgd().epochs(3).batch_size(40))
        .unwrap()
        .partial_fit(&mut model, &data)
        .unwrap();
    assert_eq!(model.fitted(), twin.fitted());
}

#[test]
fn lbfgs_fit_stops_at_the_next_evaluation() {
    let data = Synthetic::linear(500, 6).seed(4).dataset().unwrap();
    let cfg = TrainConfig::default().solver(Solver::lbfgs());
    let (trainer, _) = stopping_after(cfg, 3);
    let mut model = LinearRegression::new();
    match trainer.fit(&mut model, &data).unwrap_err() {
        Error::Interrupted { epoch, .. } => assert_eq!(epoch, 3),
        e => panic!("expected Interrupted, got {e}"),
    }
    assert!(model.fitted().is_none());
}
