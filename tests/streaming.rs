//! Streaming vs resident vs CPU: the same batches in the same order, whatever holds the
//! data; a dataset far beyond a small device budget; the ring-reuse hazard.

mod common;

use common::gpu;
use gradflow::data::{Dataset, Synthetic};
use gradflow::model::{LinearRegression, Mlp, Model};
use gradflow::{Backend, Error, Mode, Report, TrainConfig, Trainer};

fn fit<M: Model + Clone>(model: &M, data: &Dataset, cfg: TrainConfig) -> (Vec<Vec<f32>>, Report) {
    let mut m = model.clone();
    let report = Trainer::new(cfg).unwrap().fit(&mut m, data).unwrap();
    (m.fitted().unwrap().params.clone(), report)
}

/// `|a − b| ≤ max(rtol·max(|a|, |b|), atol)` for every value.
fn assert_params_close(what: &str, a: &[Vec<f32>], b: &[Vec<f32>], rtol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        common::assert_close(what, x, y, rtol, 1e-6);
    }
}

fn three_ways<M: Model + Clone>(name: &str, model: &M, data: &Dataset, cfg: TrainConfig) {
    let (cpu, rc) = fit(model, data, cfg.clone().backend(Backend::Cpu));
    let gpu_cfg = cfg.backend(Backend::Gpu);
    let (res, rr) = fit(model, data, gpu_cfg.clone().mode(Mode::Resident));
    let (st, rs) = fit(model, data, gpu_cfg.mode(Mode::Streaming));
    assert_eq!(
        (rc.mode.as_str(), rr.mode.as_str(), rs.mode.as_str()),
        ("in-memory", "resident", "streaming")
    );
    assert_eq!(rc.steps, rr.steps);
    assert_eq!(rc.steps, rs.steps);
    assert_params_close(&format!("{name}: resident vs cpu"), &res, &cpu, 1e-5);
    assert_params_close(&format!("{name}: streaming vs resident"), &st, &res, 1e-5);
    // Resident: the dataset once plus one order per epoch; streaming: every row per epoch.
    let (n, p) = (data.n() as u64, data.p() as u64);
    assert_eq!(rr.bytes_to_device, n * (p + 1) * 4 + 2 * n * 4);
    assert_eq!(rs.bytes_to_device, 2 * n * (p + 1) * 4);
    eprintln!(
        "{name}: streaming upload_wait {:?} gpu_wait {:?}",
        rs.upload_wait, rs.gpu_wait
    );
}

/// Same seed ⇒ the same batches in the same order on all three paths, so the parameters
/// agree to f32 rounding (a shuffled epoch with a partial last batch).
#[test]
fn streaming_equals_resident_equals_cpu() {
    if gpu("streaming_equals_resident_equals_cpu").is_none() {
        return;
    }
    let cfg = TrainConfig::default()
        .batch_size(64)
        .learning_rate(0.05)
        .epochs(2)
        .seed(11);
    let reg = Synthetic::linear(3000, 16).seed(1).dataset().unwrap(); // 3000 = 46·64 + 56
    three_ways("linear", &LinearRegression::new(), &reg, cfg.clone());
    let multi = Synthetic::teacher(2000, 12, 4).seed(2).dataset().unwrap();
    three_ways("mlp", &Mlp::new(16), &multi, cfg);
}

/// 64 MiB of features against an 8 MiB budget: Auto streams, the loss falls, and the
/// final loss equals the CPU fit's.
#[test]
fn dataset_far_beyond_the_budget_streams_and_converges() {
    if gpu("dataset_far_beyond_the_budget_streams_and_converges").is_none() {
        return;
    }
    let data = Synthetic::linear(262_144, 64).seed(5).dataset().unwrap();
    let cfg = TrainConfig::default()
        .batch_size(4096)
        .learning_rate(0.1)
        .epochs(1)
        .seed(2)
        .record_steps(true);
    let gpu_cfg = cfg
        .clone()
        .backend(Backend::Gpu)
        .mode(Mode::Auto)
        .device_budget(8 << 20);
    let (_, rs) = fit(&LinearRegression::new(), &data, gpu_cfg);
    assert_eq!(rs.mode, "streaming");
    assert_eq!(rs.steps, 64);
    let (first, last) = (rs.step_losses[0], *rs.step_losses.last().unwrap());
    assert!(last < 0.05 * first, "loss {first} → {last}");
    let (_, rc) = fit(&LinearRegression::new(), &data, cfg.backend(Backend::Cpu));
    let (c, g) = (rc.final_loss(), rs.final_loss());
    assert!((c - g).abs() <= 1e-4 * c.abs(), "cpu {c} vs streaming {g}");
    eprintln!(
        "budget: {} bytes sent, upload_wait {:?}, gpu_wait {:?}, wall {:?}",
        rs.bytes_to_device, rs.upload_wait, rs.gpu_wait, rs.wall
    );
}

/// Depth 2 and tiny batches: many slot reuses. A slot overwritten before the step that
/// reads it ran would feed it another batch's rows and change that step's loss.
#[test]
fn ring_reuse_hazard() {
    if gpu("ring_reuse_hazard").is_none() {
        return;
    }
    let data = Synthetic::linear(300, 4).seed(9).dataset().unwrap();
    for batch in 1..=3 {
        let cfg = TrainConfig::default()
            .batch_size(batch)
            .learning_rate(0.01)
            .epochs(2)
            .seed(4)
            .record_steps(true)
            .backend(Backend::Gpu)
            .ring_depth(2);
        let (_, rr) = fit(
            &LinearRegression::new(),
            &data,
            cfg.clone().mode(Mode::Resident),
        );
        let (_, rs) = fit(&LinearRegression::new(), &data, cfg.mode(Mode::Streaming));
        assert_eq!(rs.step_losses.len(), rr.step_losses.len());
        for (i, (s, r)) in rs.step_losses.iter().zip(&rr.step_losses).enumerate() {
            let tol = (1e-5 * s.abs().max(r.abs())).max(1e-6);
            assert!(
                (s - r).abs() <= tol,
                "batch {batch}, step {i}: streaming {s} vs resident {r}"
            );
        }
    }
}

#[test]
fn config_validation_names_the_value() {
    let err = Trainer::new(TrainConfig::default().ring_depth(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }));
    assert!(err.to_string().contains("ring_depth 1"), "{err}");
    let err = Trainer::new(TrainConfig::default().device_budget(0)).unwrap_err();
    assert!(err.to_string().contains("device_budget 0"), "{err}");
}

/// The progress callback sees every sync, and a ring beyond the budget is refused.
#[test]
fn progress_and_ring_budget() {
    if gpu("progress_and_ring_budget").is_none() {
        return;
    }
    use std::sync::{Arc, Mutex};
    let data = Synthetic::linear(1000, 8).seed(3).dataset().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let cfg = TrainConfig::default()
        .batch_size(100)
        .epochs(2)
        .loss_every(5)
        .backend(Backend::Gpu)
        .mode(Mode::Streaming);
    let trainer = Trainer::new(cfg.clone())
        .unwrap()
        .with_progress(move |p| log.lock().unwrap().push((p.epoch, p.steps)));
    trainer.fit(&mut LinearRegression::new(), &data).unwrap();
    assert_eq!(*seen.lock().unwrap(), [(0, 5), (0, 10), (1, 15), (1, 20)]);
    let err = Trainer::new(cfg.device_budget(1000))
        .unwrap()
        .fit(&mut LinearRegression::new(), &data)
        .unwrap_err();
    assert!(matches!(err, Error::DeviceLimit { .. }), "{err}");
}
