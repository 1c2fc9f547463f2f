//! The fast CPU kernels (`gradflow::cpu::fast`, what CPU training runs by default) against
//! the reference kernels (the `f64`-summing oracle) on awkward shapes: the fused GLM pass
//! (every loss, one and several outputs, gathered and in-place rows, weights, batches
//! that cross the chunk size and the thread split), every op of the MLP, and whole fits.
//! Then what speed must not change: the thread count, streaming against in-memory.

mod common;

use std::borrow::Cow;

use common::{Rng, assert_close};
use gradflow::cpu::activation::Activation;
use gradflow::cpu::fast;
use gradflow::cpu::loss::LossKind;
use gradflow::cpu::matmul::{Layout, matmul};
use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::engine::{CpuEngine, CpuKernels, Rows};
use gradflow::model::{
    Arch, LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression, Spec,
};
use gradflow::{CpuKernels as Kernels, Optimizer, TrainConfig, Trainer};

/// A dataset of `n` rows for `loss`: real targets with `k` columns' worth of rows for MSE
/// (the engine reads k values per row), labels in 0..k (0..2 for BCE) otherwise.
fn data(rng: &mut Rng, n: usize, p: usize, loss: LossKind, k: usize) -> Dataset {
    let x = rng.vec(n * p, -2.0, 2.0);
    let targets = match loss {
        LossKind::Mse if k == 1 => Targets::Real(rng.vec(n, -3.0, 3.0)),
        LossKind::Mse => unreachable!("MSE models have one output"),
        LossKind::SigmoidBce => Targets::Classes {
            labels: (0..n).map(|_| rng.below(2)).collect(),
            classes: 2,
        },
        LossKind::SoftmaxCce => Targets::Classes {
            labels: (0..n).map(|_| rng.below(k as u32)).collect(),
            classes: k,
        },
    };
    Dataset::new(x, p, targets).unwrap()
}

/// Loss and gradients of one batch on both kernel sets, from the same random parameters.
fn both(
    spec: Spec,
    d: &Dataset,
    rows: Rows<'_>,
    weights: Option<&[f32]>,
    rng: &mut Rng,
) -> [(f64, Vec<Vec<f32>>); 2] {
    let program = spec.program();
    let params: Vec<Vec<f32>> = program
        .params
        .iter()
        .map(|p| rng.vec(p.rows * p.cols, -0.7, 0.7))
        .collect();
    [CpuKernels::Fast, CpuKernels::Reference].map(|kernels| {
        let mut engine = CpuEngine::<f32>::new(
            program.clone(),
            d.features(),
            d.p(),
            Some(d.targets()),
            rows.len().max(1),
        )
        .with_kernels(kernels);
        if let Some(w) = weights {
            engine = engine.with_weights(Cow::Borrowed(w));
        }
        engine.set_params(&params).unwrap();
        let loss = engine.loss_and_grads(rows).unwrap();
        (loss, engine.grads().iter().map(|g| g.to_vec()).collect())
    })
}

fn compare(what: &str, fast: &(f64, Vec<Vec<f32>>), reference: &(f64, Vec<Vec<f32>>)) {
    let (lf, lr) = (fast.0, reference.0);
    assert!(
        (lf - lr).abs() <= 2e-6 * lr.abs().max(1.0),
        "{what}: loss fast {lf} vs reference {lr}"
    );
    for (i, (f, r)) in fast.1.iter().zip(&reference.1).enumerate() {
        // A gradient is a mean of many rows' terms and may cancel to far below them (a
        // bias gradient of a softmax): f32's error is relative to the terms, which are
        // O(1) here, so the absolute floor is 1e-5 of the tensor's largest entry or 1.
        let scale = r.iter().fold(1f32, |m, v| m.max(v.abs()));
        assert_close(&format!("{what}: grad {i}"), f, r, 1e-4, 1e-5 * scale);
    }
}

#[test]
fn fused_glm_pass_equals_the_reference_kernels() {
    let mut rng = Rng::new(7);
    let cases = [
        (LossKind::Mse, 1),
        (LossKind::SigmoidBce, 1),
        (LossKind::SoftmaxCce, 2),
        (LossKind::SoftmaxCce, 7),
    ];
    let n = 40_000;
    let mut checked = 0;
    for (loss, k) in cases {
        for p in [1, 3, 17, 64, 65] {
            let d = data(&mut rng, n, p, loss, k);
            let weights = rng.vec(n, 0.0, 3.0);
            let order: Vec<u32> = (0..n as u32).rev().map(|i| (i * 7919) % n as u32).collect();
            // 1 row, a chunk ± 1, the two-thread split ± 1, and past the block split.
            for m in [1, 63, 64, 65, 255, 256, 257, 1000, 2 * 16_384 + 5] {
                for gathered in [false, true] {
                    let rows = if gathered {
                        Rows::Gather(&order[..m])
                    } else {
                        Rows::Range {
                            start: n - m,
                            len: m,
                        }
                    };
                    for w in [None, Some(&weights[..])] {
                        let spec = Spec {
                            arch: Arch::Glm { loss, outputs: k },
                            p,
                        };
                        let [f, r] = both(spec, &d, rows, w, &mut rng);
                        let what = format!(
                            "{loss:?} k={k} p={p} m={m} gathered={gathered} weighted={}",
                            w.is_some()
                        );
                        compare(&what, &f, &r);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 4 * 5 * 9 * 2 * 2);
}

/// A GLM past `FUSED_MAX_WEIGHTS` (a softmax over many classes on long rows) runs the
/// three parts on sgemm instead of the fused pass: the same loss and gradients as the
/// reference, on either side of the threshold.
#[test]
fn wide_glms_equal_the_reference_kernels() {
    let mut rng = Rng::new(8);
    let n = 3000;
    for (p, k) in [(130, 94), (129, 95), (1, 2), (513, 100)] {
        let d = data(&mut rng, n, p, LossKind::SoftmaxCce, k);
        let fused = p * k <= fast::glm::FUSED_MAX_WEIGHTS;
        let weights = rng.vec(n, 0.0, 3.0);
        let order: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % n as u32).collect();
        for m in [1, 257, n] {
            for rows in [
                Rows::Range {
                    start: n - m,
                    len: m,
                },
                Rows::Gather(&order[..m]),
            ] {
                for w in [None, Some(&weights[..])] {
                    let spec = Spec {
                        arch: Arch::Glm {
                            loss: LossKind::SoftmaxCce,
                            outputs: k,
                        },
                        p,
                    };
                    let [f, r] = both(spec, &d, rows, w, &mut rng);
                    let what =
                        format!("p={p} k={k} fused={fused} m={m} {rows:?} w={}", w.is_some());
                    compare(&what, &f, &r);
                }
            }
        }
    }
}

#[test]
fn fast_mlp_step_equals_the_reference_kernels() {
    let mut rng = Rng::new(8);
    let n = 700;
    for activation in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        for (p, hidden, k) in [(1, 1, 2), (5, 33, 3), (64, 256, 10), (13, 7, 11)] {
            let d = data(&mut rng, n, p, LossKind::SoftmaxCce, k);
            let order: Vec<u32> = (0..n as u32).map(|i| (i * 331) % n as u32).collect();
            let weights = rng.vec(n, 0.5, 2.0);
            let spec = Spec {
                arch: Arch::Mlp {
                    hidden,
                    activation,
                    classes: k,
                },
                p,
            };
            for m in [1, 17, 256, 700] {
                for rows in [Rows::Gather(&order[..m]), Rows::Range { start: 0, len: m }] {
                    for w in [None, Some(&weights[..])] {
                        let [f, r] = both(spec, &d, rows, w, &mut rng);
                        let what = format!("{activation:?} {p}-{hidden}-{k} m={m} {rows:?}");
                        compare(&what, &f, &r);
                    }
                }
            }
        }
    }
}

fn two_threads() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

#[test]
fn fast_matmul_equals_the_reference_in_every_layout() {
    let mut rng = Rng::new(9);
    for layout in [Layout::NN, Layout::TN, Layout::NT] {
        for (m, k, n) in [
            (1, 1, 1),
            (7, 13, 5),
            (64, 256, 10),
            (33, 1, 65),
            (1, 300, 2),
            (256, 64, 256),
            (250, 257, 11),
            (64, 256, 256),
            (17, 300, 129),
        ] {
            let a = rng.vec(m * k, -1.0, 1.0);
            let b = rng.vec(k * n, -1.0, 1.0);
            let (mut cf, mut cr) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            fast::ops::matmul(layout, m, k, n, &a, &b, &mut cf);
            matmul(layout, m, k, n, &a, None, &b, &mut cr);
            assert_close(&format!("{layout:?} {m}×{k}×{n}"), &cf, &cr, 1e-5, 1e-5);
            // Any split by rows (as the team splits a product) gives the whole's bits.
            for mid in [0, 1, m / 2, m.saturating_sub(1), m] {
                let mut cs = vec![f32::NAN; m * n];
                let (top, bottom) = cs.split_at_mut(mid * n);
                fast::ops::matmul_rows(layout, m, k, n, &a, &b, 0..mid, top);
                fast::ops::matmul_rows(layout, m, k, n, &a, &b, mid..m, bottom);
                assert_eq!(cs, cf, "{layout:?} {m}×{k}×{n} split at row {mid}");
            }
            // The team's split (by rows or by columns, on two threads) likewise.
            let mut ct = vec![f32::NAN; m * n];
            two_threads().install(|| fast::ops::matmul_split(layout, m, k, n, &a, &b, &mut ct));
            assert_eq!(ct, cf, "{layout:?} {m}×{k}×{n} split over the team");
        }
    }
}

#[test]
fn fast_activations_and_sums_equal_the_reference() {
    let mut rng = Rng::new(10);
    let z = rng.vec(1037, -30.0, 30.0);
    for f in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        let (mut af, mut ar) = (vec![0f32; z.len()], vec![0f32; z.len()]);
        fast::ops::activate(f, &z, &mut af);
        gradflow::cpu::activation::activate(f, &z, &mut ar);
        assert_close(&format!("{f:?}"), &af, &ar, 1e-6, 1e-37);
        let g = rng.vec(z.len(), -1.0, 1.0);
        let (mut gf, mut gr) = (g.clone(), g);
        fast::ops::activate_backward(f, &ar, &mut gf);
        gradflow::cpu::activation::activate_backward(f, &ar, &mut gr);
        assert_close(&format!("{f:?}′"), &gf, &gr, 0.0, 0.0);
    }
    let x = rng.vec(61 * 9, -1.0, 1.0);
    let (mut sf, mut sr) = (vec![0f32; 9], vec![0f32; 9]);
    fast::ops::col_sums(&x, 61, 9, &mut sf);
    gradflow::cpu::reduce::col_sums(&x, 61, 9, &mut sr);
    assert_close("col sums", &sf, &sr, 1e-5, 1e-6);
    let mut split = vec![0f32; 9];
    let (left, right) = split.split_at_mut(4);
    fast::ops::col_sums_of(&x, 61, 9, 0..4, left);
    fast::ops::col_sums_of(&x, 61, 9, 4..9, right);
    assert_eq!(split, sf, "col sums split by columns");
}

/// Whole fits: the fast kernels reach the reference's parameters and losses within f32
/// rounding, step after step, for every model (SGD and Adam).
#[test]
fn fast_fits_track_the_reference_fits() {
    let fit = |model: &mut dyn Model, data: &Dataset, kernels: Kernels, adam: bool| {
        let mut cfg = TrainConfig::sgd()
            .batch_size(50)
            .epochs(3)
            .learning_rate(if adam { 0.01 } else { 0.1 })
            .seed(3)
            .record_steps(true)
            .cpu_kernels(kernels);
        if adam {
            cfg = cfg.optimizer(gradflow::Optimizer::adam());
        }
        let report = Trainer::new(cfg).unwrap().fit(model, data).unwrap();
        (report.step_losses, model.fitted().unwrap().params.clone())
    };
    let linear = Synthetic::linear(1000, 9).seed(1).dataset().unwrap();
    let logistic = Synthetic::logistic(1000, 9).seed(2).dataset().unwrap();
    let blobs = Synthetic::blobs(1000, 9, 4).seed(3).dataset().unwrap();
    type Make = Box<dyn Fn() -> Box<dyn Model>>;
    let cases: Vec<(&str, Make, &Dataset)> = vec![
        (
            "linear",
            Box::new(|| Box::new(LinearRegression::new())),
            &linear,
        ),
        (
            "logistic",
            Box::new(|| Box::new(LogisticRegression::new())),
            &logistic,
        ),
        (
            "softmax",
            Box::new(|| Box::new(SoftmaxRegression::new())),
            &blobs,
        ),
        ("mlp", Box::new(|| Box::new(Mlp::new(16))), &blobs),
    ];
    for (name, make, data) in cases {
        for adam in [false, true] {
            let (lf, pf) = fit(make().as_mut(), data, Kernels::Fast, adam);
            let (lr, pr) = fit(make().as_mut(), data, Kernels::Reference, adam);
            assert_eq!(lf.len(), lr.len());
            for (s, (a, b)) in lf.iter().zip(&lr).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                    "{name} adam={adam} step {s}: fast {a} vs reference {b}"
                );
            }
            for (a, b) in pf.iter().zip(&pr) {
                assert_close(&format!("{name} adam={adam} params"), a, b, 1e-3, 1e-4);
            }
        }
    }
}

/// The thread count does not change a result: a full-batch step (split into blocks) and a
/// mini-batch step (split into halves) on one thread and on two are bit for bit the same, and streaming a generator equals
/// training on its rows in memory.
#[test]
fn speed_does_not_change_results() {
    let data = Synthetic::linear(3 * 16_384 + 11, 20)
        .seed(4)
        .dataset()
        .unwrap();
    // Full batch (blocks on rayon) and mini-batches (halves on the team), shuffled or not.
    let run = |threads: usize, batch: usize, shuffle: bool| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut model = LinearRegression::new();
                let cfg = TrainConfig::sgd()
                    .batch_size(batch)
                    .epochs(3)
                    .learning_rate(0.05)
                    .shuffle(shuffle);
                Trainer::new(cfg).unwrap().fit(&mut model, &data).unwrap();
                model.fitted().unwrap().params.clone()
            })
    };
    for (batch, shuffle) in [(usize::MAX, false), (256, true), (257, false), (129, true)] {
        assert_eq!(
            run(1, batch, shuffle),
            run(2, batch, shuffle),
            "one thread and two differ at batch {batch}, shuffle {shuffle}"
        );
    }

    // The MLP's products, activations and column sums split by rows or columns over the
    // team (hidden 256 at batch 256 is past every op's threshold; the tail batch is not).
    let teacher = Synthetic::teacher(2000, 40, 5).seed(8).dataset().unwrap();
    // The update too, for SGD and for Adam's two state tensors (11,781 parameters).
    let mlp = |threads: usize, optimizer: Optimizer| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut model = Mlp::new(256);
                let cfg = TrainConfig::sgd()
                    .batch_size(256)
                    .epochs(2)
                    .optimizer(optimizer);
                Trainer::new(cfg)
                    .unwrap()
                    .fit(&mut model, &teacher)
                    .unwrap();
                model.fitted().unwrap().params.clone()
            })
    };
    for optimizer in [Optimizer::Sgd, Optimizer::adam()] {
        assert_eq!(
            mlp(1, optimizer),
            mlp(2, optimizer),
            "the MLP on one thread and two differ ({optimizer:?})"
        );
    }

    let source = Synthetic::teacher(3000, 12, 5).seed(6);
    let fit = |from_memory: bool| {
        let mut model = Mlp::new(24);
        let trainer = Trainer::new(TrainConfig::sgd().batch_size(64).epochs(2)).unwrap();
        if from_memory {
            trainer.fit(&mut model, &source.dataset().unwrap()).unwrap();
        } else {
            trainer.fit(&mut model, &source).unwrap();
        }
        model.fitted().unwrap().params.clone()
    };
    assert_eq!(fit(true), fit(false), "streamed and in-memory fits differ");
}
