//! Epochs queued ahead of the host's reads (`TrainConfig::epochs_ahead`): a GPU fit that
//! queues the next epochs before it has read the one before them must take the same
//! steps and end with the same bits as one that reads each epoch first — when it runs to
//! its last epoch, stops on a plateau, early-stops, halts on the device by tol or on a
//! non-finite loss, or divides an adaptive rate (the rates queued ahead then differ from
//! the decision's, and the device goes back); with plain SGD, momentum, Adam and
//! AdaGrad, whose state the device puts back too; full batch and mini-batch; on the
//! many-step GLM kernel, the fused gradient and the MLP's passes.

mod common;

use common::gpu;
use gradflow::data::{Dataset, Synthetic};
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model};
use gradflow::{
    Backend, EarlyStopping, Error, NoImprovement, Optimizer, Report, Schedule, StopReason,
    TrainConfig, Trainer,
};

/// A fit's outcome: the report (or the error's text), the parameters kept and the
/// training state (the optimizer's tensors, the adaptive rate: what `partial_fit` goes
/// on from), printed exactly.
struct Outcome {
    report: Result<Report, String>,
    params: Option<Vec<Vec<f32>>>,
    state: String,
}

fn fit(model: &mut dyn Model, data: &Dataset, cfg: TrainConfig) -> Outcome {
    let cfg = cfg.backend(Backend::Gpu).record_steps(true);
    let report = Trainer::new(cfg)
        .unwrap()
        .fit(model, data)
        .map_err(|e| e.to_string());
    Outcome {
        report,
        params: model.fitted().map(|f| f.params.clone()),
        state: format!("{:?}", model.fitted().map(|f| &f.state)),
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Fits `model()` with nothing queued ahead and with `ahead` epochs ahead, asserts the
/// same bits, and returns both reports' dispatch counts (plain, ahead).
fn same_fit(
    what: &str,
    model: impl Fn() -> Box<dyn Model>,
    data: &Dataset,
    cfg: &TrainConfig,
    ahead: usize,
) -> (Outcome, Outcome) {
    let plain = fit(model().as_mut(), data, cfg.clone().epochs_ahead(0));
    let queued = fit(model().as_mut(), data, cfg.clone().epochs_ahead(ahead));
    match (&plain.report, &queued.report) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                bits(&a.epoch_losses),
                bits(&b.epoch_losses),
                "{what}: epoch losses"
            );
            assert_eq!(
                bits(&a.step_losses),
                bits(&b.step_losses),
                "{what}: step losses"
            );
            assert_eq!(bits(&a.epoch_lrs), bits(&b.epoch_lrs), "{what}: rates");
            let (va, vb) = (&a.validation_losses, &b.validation_losses);
            assert_eq!(bits(va), bits(vb), "{what}: validation losses");
            assert_eq!(a.steps, b.steps, "{what}: steps");
            assert_eq!(a.stop, b.stop, "{what}: stop");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{what}: errors"),
        (a, b) => panic!("{what}: {a:?} against {b:?}"),
    }
    let (pa, pb) = (plain.params.as_ref(), queued.params.as_ref());
    let to_bits = |p: Option<&Vec<Vec<f32>>>| {
        p.map(|p| {
            p.iter()
                .map(|t| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(to_bits(pa), to_bits(pb), "{what}: parameters");
    assert_eq!(plain.state, queued.state, "{what}: training state");
    (plain, queued)
}

fn dispatches(o: &Outcome) -> u64 {
    o.report.as_ref().map_or(0, |r| r.dispatches)
}

fn linear() -> Box<dyn Model> {
    Box::new(LinearRegression::new())
}

#[test]
fn a_fit_to_its_last_epoch_queues_nothing_it_undoes() {
    let Some(_) = gpu("a_fit_to_its_last_epoch_queues_nothing_it_undoes") else {
        return;
    };
    let data = Synthetic::linear(3_000, 7).seed(1).dataset().unwrap();
    let full = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.05)
        .epochs(12);
    for ahead in [1, 2, 5, 64] {
        let (plain, queued) = same_fit("full batch", linear, &data, &full, ahead);
        assert_eq!(plain.report.as_ref().unwrap().epoch_losses.len(), 12);
        // Nothing is queued past the last epoch, and nothing is undone.
        assert_eq!(dispatches(&plain), dispatches(&queued), "{ahead} ahead");
    }
    // Mini-batch, shuffled: the many-step GLM kernel, several steps an epoch.
    let mini = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.02)
        .epochs(5)
        .shuffle(true);
    same_fit("mini-batch", linear, &data, &mini, 2);
    // The automatic choice is the same bits as well.
    let auto = full.clone().epochs_ahead(0);
    let a = fit(linear().as_mut(), &data, auto);
    let mut b = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.05)
        .epochs(12);
    b.epochs_ahead = None;
    let b = fit(linear().as_mut(), &data, b);
    assert_eq!(a.params, b.params, "automatic");
}

#[test]
fn stopping_early_undoes_the_epochs_queued_ahead() {
    let Some(_) = gpu("stopping_early_undoes_the_epochs_queued_ahead") else {
        return;
    };
    let data = Synthetic::linear(2_000, 5).seed(2).dataset().unwrap();
    // The plateau rule: one epoch without a 10 % gain stops the fit.
    let plateau = NoImprovement {
        epochs: 1,
        tol: 0.1,
    };
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.05)
        .epochs(200)
        .no_improvement(plateau);
    for ahead in [1, 3] {
        let (plain, queued) = same_fit("plateau", linear, &data, &cfg, ahead);
        let report = plain.report.as_ref().unwrap();
        assert!(
            matches!(report.stop, StopReason::NoImprovement { .. }),
            "{:?}",
            report.stop
        );
        assert!(report.epoch_losses.len() < 200);
        // The device ran the epochs queued ahead of the stop, then went back.
        assert!(dispatches(&queued) > dispatches(&plain), "{ahead} ahead");
    }
    // Early stopping on held-out rows keeps its best epoch's parameters either way.
    let early = EarlyStopping {
        validation_fraction: 0.2,
        patience: 1,
        tol: 0.5,
    };
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.05)
        .epochs(200)
        .early_stopping(early);
    let (plain, queued) = same_fit("early stopping", linear, &data, &cfg, 2);
    let report = plain.report.as_ref().unwrap();
    assert!(
        matches!(report.stop, StopReason::EarlyStopping { .. }),
        "{:?}",
        report.stop
    );
    assert!(dispatches(&queued) > dispatches(&plain));
}

#[test]
fn a_halt_on_the_device_is_read_in_its_epoch() {
    let Some(_) = gpu("a_halt_on_the_device_is_read_in_its_epoch") else {
        return;
    };
    let data = Synthetic::linear(1_500, 4).seed(3).dataset().unwrap();
    // Seed 000's tol rule, decided on the device: the halting step's epoch is read after
    // the epochs queued behind it have run (their updates skipped).
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.1)
        .epochs(500)
        .tol(1e-3);
    let (plain, queued) = same_fit("tol", linear, &data, &cfg, 2);
    let report = plain.report.as_ref().unwrap();
    assert!(
        matches!(report.stop, StopReason::Tolerance { .. }),
        "{:?}",
        report.stop
    );
    assert!(dispatches(&queued) > dispatches(&plain));
    // Mini-batch, the halt inside an epoch.
    let cfg = TrainConfig::sgd()
        .batch_size(100)
        .learning_rate(0.05)
        .epochs(100)
        .tol(1e-2);
    same_fit("tol, mini-batch", linear, &data, &cfg, 2);
    // A rate that diverges: the error and the last finite parameters are the same.
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(1e4)
        .epochs(60);
    let (plain, _) = same_fit("diverged", linear, &data, &cfg, 2);
    let err = plain.report.unwrap_err();
    assert!(err.contains("diverged"), "{err}");
    assert!(
        plain
            .params
            .unwrap()
            .iter()
            .flatten()
            .all(|v| v.is_finite())
    );
}

#[test]
fn an_adaptive_rate_divided_sends_the_device_back() {
    let Some(_) = gpu("an_adaptive_rate_divided_sends_the_device_back") else {
        return;
    };
    let data = Synthetic::logistic(2_000, 6).seed(4).dataset().unwrap();
    // Every epoch short of a 5 % gain divides the rate: the epochs queued ahead with the
    // old rate are undone and queued again with the new one.
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.5)
        .epochs(40)
        .schedule(Schedule::Adaptive {
            patience: 1,
            tol: 0.05,
        });
    // With momentum the device's velocities go back too, and the fit goes on from them.
    let momentum = cfg
        .clone()
        .optimizer(Optimizer::momentum(0.8))
        .learning_rate(0.2);
    for (what, cfg, ahead) in [("adaptive", cfg, 2), ("adaptive, momentum", momentum, 3)] {
        let logistic = || -> Box<dyn Model> { Box::new(LogisticRegression::new()) };
        let (plain, queued) = same_fit(what, logistic, &data, &cfg, ahead);
        let rates = &plain.report.as_ref().unwrap().epoch_lrs;
        assert!(
            rates.windows(2).any(|w| w[1] < w[0]),
            "{what}: the rate was never divided: {rates:?}"
        );
        assert!(dispatches(&queued) > dispatches(&plain), "{what}");
    }
}

#[test]
fn the_optimizers_state_goes_back_with_the_parameters() {
    let Some(_) = gpu("the_optimizers_state_goes_back_with_the_parameters") else {
        return;
    };
    let data = Synthetic::blobs(600, 5, 3).seed(5).dataset().unwrap();
    let plateau = NoImprovement {
        epochs: 2,
        tol: 0.05,
    };
    for optimizer in [
        Optimizer::momentum(0.9),
        Optimizer::nesterov(0.5),
        Optimizer::adam(),
        Optimizer::adagrad(),
    ] {
        let cfg = TrainConfig::sgd()
            .batch_size(usize::MAX)
            .learning_rate(0.05)
            .epochs(300)
            .optimizer(optimizer)
            .no_improvement(plateau);
        let what = format!("{optimizer:?}");
        let (plain, queued) = same_fit(&what, || Box::new(Mlp::new(6)), &data, &cfg, 2);
        let report = plain.report.as_ref().unwrap();
        assert!(
            matches!(report.stop, StopReason::NoImprovement { .. }),
            "{what}: {:?}",
            report.stop
        );
        assert!(dispatches(&queued) > dispatches(&plain), "{what}");
    }
    // Mini-batch MLP with a rate the trainer chooses (and may back off from).
    let mut cfg = TrainConfig::sgd().batch_size(128).epochs(8).shuffle(true);
    cfg.learning_rate = None;
    same_fit("MLP, chosen rate", || Box::new(Mlp::new(6)), &data, &cfg, 2);
}

#[test]
fn too_many_epochs_ahead_is_an_error() {
    let err = Trainer::new(TrainConfig::sgd().epochs_ahead(65)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParameter {
                name: "epochs_ahead",
                ..
            }
        ),
        "{err}"
    );
    assert!(Trainer::new(TrainConfig::sgd().epochs_ahead(64)).is_ok());
}
