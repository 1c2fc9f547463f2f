//! Streaming vs resident vs CPU: the same batches in the same order, whatever holds the
//! data; a dataset far beyond a small device budget; the ring-reuse hazard.

mod common;

use common::gpu;
use gradflow::data::{
    Dataset, FileTargets, MappedFile, RowSource, Shuffle, Synthetic, Targets, Truth,
};
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
    let cfg = TrainConfig::sgd()
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
    let cfg = TrainConfig::sgd()
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
/// reads it ran would feed it another batch's rows and change that step's loss. Groups of
/// 1, 4 and 7 batches per slot (7 divides no epoch here, so groups end mid-way), and a loss
/// readback every 5 steps that submits in the middle of a group.
#[test]
fn ring_reuse_hazard() {
    if gpu("ring_reuse_hazard").is_none() {
        return;
    }
    let data = Synthetic::linear(300, 4).seed(9).dataset().unwrap();
    for (batch, group) in [(1, 1), (2, 4), (3, 7), (1, 7)] {
        let mut cfg = TrainConfig::sgd()
            .batch_size(batch)
            .learning_rate(0.01)
            .epochs(2)
            .seed(4)
            .record_steps(true)
            .backend(Backend::Gpu)
            .ring_depth(2)
            .upload_batches(group);
        if group == 7 {
            cfg = cfg.loss_every(5);
        }
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
                "batch {batch}, group {group}, step {i}: streaming {s} vs resident {r}"
            );
        }
    }
}

#[test]
fn config_validation_names_the_value() {
    let err = Trainer::new(TrainConfig::sgd().ring_depth(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }));
    assert!(err.to_string().contains("ring_depth 1"), "{err}");
    let err = Trainer::new(TrainConfig::sgd().device_budget(0)).unwrap_err();
    assert!(err.to_string().contains("device_budget 0"), "{err}");
    let err = Trainer::new(TrainConfig::sgd().upload_batches(0)).unwrap_err();
    assert!(err.to_string().contains("upload_batches 0"), "{err}");
    let windowless = Shuffle::Windowed {
        chunk_rows: 64,
        window_chunks: 0,
    };
    let err = Trainer::new(TrainConfig::sgd().shuffle(windowless)).unwrap_err();
    assert!(err.to_string().contains("window_chunks 0"), "{err}");
}

/// A generator streams on both backends without being materialised, and its batches are
/// those of its materialised dataset: CPU streaming = CPU in memory = GPU streaming =
/// GPU resident (the generator gathered once and uploaded).
#[test]
fn generator_source_trains_like_its_dataset() {
    let generator = Synthetic::teacher(3000, 10, 3).seed(21);
    let data = generator.dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(50)
        .learning_rate(0.2)
        .epochs(2)
        .seed(6)
        .upload_batches(7);
    let fit_source = |source: &dyn RowSource, cfg: TrainConfig| {
        let mut m = Mlp::new(8);
        let report = Trainer::new(cfg).unwrap().fit(&mut m, source).unwrap();
        (m.fitted().unwrap().params.clone(), report)
    };
    let (in_memory, rm) = fit_source(&data, cfg.clone());
    let (streamed, rs) = fit_source(&generator, cfg.clone());
    assert_eq!(
        (rm.mode.as_str(), rs.mode.as_str()),
        ("in-memory", "streaming")
    );
    // Same kernels, same rows, same order: bit for bit.
    assert_eq!(streamed, in_memory);
    assert_eq!(rs.epoch_losses, rm.epoch_losses);
    if gpu("generator_source_trains_like_its_dataset").is_none() {
        return;
    }
    let gpu_cfg = cfg.backend(Backend::Gpu);
    let (gs, rgs) = fit_source(&generator, gpu_cfg.clone().mode(Mode::Streaming));
    let (gr, rgr) = fit_source(&generator, gpu_cfg.mode(Mode::Resident));
    assert_eq!(
        (rgs.mode.as_str(), rgr.mode.as_str()),
        ("streaming", "resident")
    );
    assert_params_close("generator: gpu streaming vs cpu", &gs, &in_memory, 1e-5);
    assert_params_close("generator: gpu resident vs cpu", &gr, &in_memory, 1e-5);
}

/// A `.npy` file trains through the trainer with the out-of-core order: the mapped file
/// streamed on the CPU and on the GPU equals the same rows in memory under the same
/// windowed shuffle.
#[test]
fn mapped_file_trains_with_the_windowed_order() {
    let data = Synthetic::linear(2000, 6).seed(13).dataset().unwrap();
    let Targets::Real(y) = data.targets() else {
        unreachable!("linear data have real targets")
    };
    // Rows x₀ … x₅, y as a 2000 × 7 <f4 array.
    let mut bytes = Vec::new();
    for (row, &t) in data.features().chunks(6).zip(y) {
        for v in row.iter().chain([&t]) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2000, 7), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let dict = format!("{header}{}\n", " ".repeat(pad));
    npy.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    npy.extend_from_slice(dict.as_bytes());
    npy.extend_from_slice(&bytes);
    let path = std::env::temp_dir().join(format!("gradflow-stream-{}.npy", std::process::id()));
    std::fs::write(&path, npy).unwrap();
    let file = MappedFile::npy(&path, FileTargets::Real { column: 6 }).unwrap();
    let window = Shuffle::Windowed {
        chunk_rows: 128,
        window_chunks: 4,
    };
    let cfg = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.05)
        .epochs(3)
        .seed(8)
        .shuffle(window);
    let fit_source = |source: &dyn RowSource, cfg: TrainConfig| {
        let mut m = LinearRegression::new();
        let report = Trainer::new(cfg).unwrap().fit(&mut m, source).unwrap();
        (m.fitted().unwrap().params.clone(), report)
    };
    let (in_memory, rm) = fit_source(&data, cfg.clone());
    let (from_file, rf) = fit_source(&file, cfg.clone());
    assert_eq!(rf.mode, "streaming");
    assert_eq!(from_file, in_memory);
    assert!(
        rm.final_loss() < 0.1 * rm.epoch_losses[0],
        "{:?}",
        rm.epoch_losses
    );
    if gpu("mapped_file_trains_with_the_windowed_order").is_some() {
        let (g, rg) = fit_source(&file, cfg.backend(Backend::Gpu).mode(Mode::Streaming));
        assert_eq!(rg.mode, "streaming");
        assert_params_close("file: gpu streaming vs cpu", &g, &in_memory, 1e-5);
    }
    std::fs::remove_file(&path).unwrap();
}

/// The generator source trains a 10⁷-row fit (2.56 GB of f32 were it materialised) on
/// the CPU in CI-friendly time: rows are made by the worker while the CPU trains.
#[test]
fn ten_million_rows_from_a_generator() {
    let generator = Synthetic::linear(10_000_000, 64).seed(17);
    let cfg = TrainConfig::sgd()
        .batch_size(1024)
        .learning_rate(0.1)
        .epochs(1)
        .seed(1)
        .record_steps(true);
    let mut model = LinearRegression::new();
    let report = Trainer::new(cfg)
        .unwrap()
        .fit(&mut model, &generator)
        .unwrap();
    assert_eq!(
        (report.mode.as_str(), report.samples),
        ("streaming", 10_000_000)
    );
    // The generator's noise is N(0, 0.01²): the MSE loss mean(r²) ends near 1e-4.
    let last = report.step_losses[report.step_losses.len() - 1];
    assert!(last < 1e-3, "last batch loss {last}");
    let Truth::Linear { weights, bias } = generator.truth().unwrap() else {
        unreachable!("linear data")
    };
    eprintln!(
        "10⁷ × 64 from a generator: {:.2?}, {:.2} M rows/s, waited for rows {:.2?}",
        report.wall,
        report.samples_per_sec() / 1e6,
        report.upload_wait
    );
    // One pass of 9766 steps recovers the generating model (w* ~ N(0, 1)).
    let w = model.weights().unwrap();
    for (j, (got, want)) in w.iter().zip(&weights).enumerate() {
        assert!((got - want).abs() < 1e-2, "w[{j}] = {got}, truth {want}");
    }
    assert!((model.bias().unwrap() - bias).abs() < 1e-2);
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
    let cfg = TrainConfig::sgd()
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

/// A streamed batch lives in one storage binding: a batch larger than the adapter's
/// binding is refused before anything is gathered, with the limit and a hint.
#[test]
fn a_batch_beyond_one_binding_is_refused() {
    let Some(ctx) = gpu("a_batch_beyond_one_binding_is_refused") else {
        return;
    };
    let binding = ctx.limits().max_storage_buffer_binding_size;
    let rows = (binding / (64 * 4) + 1) as usize; // one row past the binding
    let generator = Synthetic::linear(rows, 64); // never gathered: the check comes first
    let cfg = TrainConfig::sgd()
        .batch_size(rows)
        .epochs(1)
        .backend(Backend::Gpu)
        .mode(Mode::Streaming);
    let err = Trainer::new(cfg)
        .unwrap()
        .with_gpu(ctx)
        .fit(&mut LinearRegression::new(), &generator)
        .unwrap_err();
    match &err {
        Error::DeviceLimit { limit, .. } => assert_eq!(*limit, binding),
        other => panic!("expected DeviceLimit, got {other}"),
    }
    assert!(err.to_string().contains("smaller batch_size"), "{err}");
}
