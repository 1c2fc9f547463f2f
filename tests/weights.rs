//! Sample and class weights inside the losses and gradients, on both backends.

mod common;

use common::{assert_close, gpu};
use gradflow::data::{ClassWeight, Dataset, Synthetic, Targets};
use gradflow::metrics::ClassReport;
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model};
use gradflow::{Backend, Error, Mode, Report, TrainConfig, Trainer};

fn fit_w<M: Model + Clone>(
    model: &M,
    data: &Dataset,
    w: Option<&[f32]>,
    cfg: TrainConfig,
) -> (Vec<Vec<f32>>, Report) {
    let mut m = model.clone();
    let report = Trainer::new(cfg)
        .unwrap()
        .fit_weighted(&mut m, data, w)
        .unwrap();
    (m.fitted().unwrap().params.clone(), report)
}

/// A weight of 2 is the row twice. Full-batch descent on n rows with weights w, whose
/// mean divides by n, equals descent on the dataset with every row repeated wᵢ times at a
/// learning rate scaled by (Σw)/n (the duplicated mean divides by Σw).
#[test]
fn integer_weights_equal_duplicated_rows() {
    let data = Synthetic::linear(60, 3).seed(4).dataset().unwrap();
    let w: Vec<f32> = (0..60).map(|i| (i % 3) as f32).collect(); // 0, 1, 2, …
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let Targets::Real(ys) = data.targets() else {
        unreachable!()
    };
    for (i, &wi) in w.iter().enumerate() {
        for _ in 0..wi as usize {
            x.extend_from_slice(data.row(i));
            y.push(ys[i]);
        }
    }
    let dup = Dataset::new(x, 3, Targets::Real(y)).unwrap();
    let cfg = |lr: f64| {
        TrainConfig::sgd()
            .batch_size(1000)
            .learning_rate(lr)
            .epochs(30)
            .shuffle(false)
    };
    let total: f32 = w.iter().sum();
    let (weighted, _) = fit_w(&LinearRegression::new(), &data, Some(&w), cfg(0.1));
    let lr = 0.1 * f64::from(total) / 60.0;
    let (repeated, _) = fit_w(&LinearRegression::new(), &dup, None, cfg(lr));
    for (a, b) in weighted.iter().zip(&repeated) {
        // 30 full-batch steps, sums of 60 vs 60 terms in another order: 1e-5.
        assert_close("weighted vs repeated", a, b, 1e-5, 1e-6);
    }
}

/// 95 % of one class: unweighted logistic regression finds few of the rare class;
/// `ClassWeight::Balanced` finds most of them.
#[test]
fn balanced_class_weights_recover_the_rare_class() {
    let base = Synthetic::logistic(4000, 4).seed(11).dataset().unwrap();
    let Targets::Classes { labels, .. } = base.targets() else {
        unreachable!()
    };
    // Keep every row of class 1 with index % 10 == 0, and all of class 0.
    let keep: Vec<usize> = (0..base.n())
        .filter(|&i| labels[i] == 0 || i % 10 == 0)
        .collect();
    let x: Vec<f32> = keep.iter().flat_map(|&i| base.row(i).to_vec()).collect();
    let l: Vec<u32> = keep.iter().map(|&i| labels[i]).collect();
    let data = Dataset::new(
        x,
        4,
        Targets::Classes {
            labels: l.clone(),
            classes: 2,
        },
    )
    .unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.1)
        .epochs(10)
        .seed(2);
    let recall = |cfg: TrainConfig| {
        let mut m = LogisticRegression::new();
        m.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
        ClassReport::new(&m.predict(data.features()).unwrap(), &l, 2)
            .unwrap()
            .recall[1]
    };
    let plain = recall(cfg.clone());
    let balanced = recall(cfg.class_weight(ClassWeight::Balanced));
    eprintln!("rare-class recall: unweighted {plain:.3}, balanced {balanced:.3}");
    assert!(balanced > plain + 0.2, "{plain} → {balanced}");
}

/// Sample × class weights: GPU resident and streaming = CPU (an MLP, 2 shuffled epochs).
#[test]
fn weighted_fits_agree_across_backends() {
    if gpu("weighted_fits_agree_across_backends").is_none() {
        return;
    }
    let data = Synthetic::teacher(900, 6, 3).seed(3).dataset().unwrap();
    let w: Vec<f32> = (0..900).map(|i| 0.25 + (i % 7) as f32 * 0.3).collect();
    let cfg = TrainConfig::sgd()
        .batch_size(50)
        .learning_rate(0.3)
        .epochs(2)
        .seed(5)
        .class_weight(ClassWeight::Given(vec![1.0, 2.5, 0.5]));
    let (cpu, rc) = fit_w(&Mlp::new(8), &data, Some(&w), cfg.clone());
    let g = cfg.backend(Backend::Gpu);
    let (res, rr) = fit_w(
        &Mlp::new(8),
        &data,
        Some(&w),
        g.clone().mode(Mode::Resident),
    );
    let (st, rs) = fit_w(&Mlp::new(8), &data, Some(&w), g.mode(Mode::Streaming));
    for (t, ((c, r), s)) in cpu.iter().zip(&res).zip(&st).enumerate() {
        assert_close(&format!("tensor {t}: resident"), r, c, 1e-5, 1e-6);
        assert_close(&format!("tensor {t}: streaming"), s, c, 1e-5, 1e-6);
    }
    let (e, er, es) = (rc.final_loss(), rr.final_loss(), rs.final_loss());
    assert!(
        (e - er).abs() < 1e-5 * e && (e - es).abs() < 1e-5 * e,
        "{e} {er} {es}"
    );
    // Weights reach the device: features + targets + weights (+ orders) resident.
    assert_eq!(rr.bytes_to_device, 900 * (6 + 1 + 1) * 4 + 2 * 900 * 4);
}

#[test]
fn bad_weights_say_what_is_wrong() {
    let reg = Synthetic::linear(10, 2).dataset().unwrap();
    let cls = Synthetic::blobs(10, 2, 2).dataset().unwrap();
    let t = Trainer::new(TrainConfig::sgd().epochs(1)).unwrap();
    let fit = |data: &Dataset, w: &[f32]| {
        t.fit_weighted(&mut LinearRegression::new(), data, Some(w))
            .unwrap_err()
    };
    assert!(matches!(fit(&reg, &[1.0; 9]), Error::ShapeMismatch { .. }));
    let e = fit(&reg, &[1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    assert!(
        e.to_string().contains("sample weight -1 (row 1, from 0)"),
        "{e}"
    );
    let e = fit(&reg, &[f32::NAN; 10]);
    assert!(e.to_string().contains("sample weight NaN"), "{e}");
    let e = fit(&reg, &[0.0; 10]);
    assert!(e.to_string().contains("all 0"), "{e}");
    let balanced = Trainer::new(TrainConfig::sgd().class_weight(ClassWeight::Balanced)).unwrap();
    let e = balanced
        .fit(&mut LinearRegression::new(), &reg)
        .unwrap_err();
    assert!(e.to_string().contains("classifiers only"), "{e}");
    let given =
        Trainer::new(TrainConfig::sgd().class_weight(ClassWeight::Given(vec![1.0]))).unwrap();
    let e = given.fit(&mut LogisticRegression::new(), &cls).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
}
