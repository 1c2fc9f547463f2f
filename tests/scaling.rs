//! Standardisation: fitted on the training data, trained on, kept with the model, applied
//! again at predict time.

use gradflow::data::{Dataset, Standardizer, Synthetic, Targets};
use gradflow::model::{LogisticRegression, Model};
use gradflow::{Error, TrainConfig, Trainer};

/// Logistic data with column 0 in the thousands (offset 5000) and column 1 in
/// thousandths: plain gradient descent cannot train it; with `standardize` it reaches the
/// accuracy of the same data left on a unit scale, and predictions on the raw features
/// are standardised by the model itself.
#[test]
fn features_on_wild_scales_train_only_when_standardised() {
    let unit = Synthetic::logistic(3000, 3).seed(6).dataset().unwrap();
    let mut x = unit.features().to_vec();
    for row in x.chunks_mut(3) {
        row[0] = 5000.0 + 1000.0 * row[0];
        row[1] *= 0.001;
    }
    let wild = Dataset::new(x, 3, unit.targets().clone()).unwrap();
    let Targets::Classes { labels, .. } = unit.targets() else {
        unreachable!()
    };
    let cfg = TrainConfig::sgd()
        .batch_size(32)
        .learning_rate(0.1)
        .epochs(10)
        .seed(1);
    let accuracy = |data: &Dataset, cfg: TrainConfig| {
        let mut m = LogisticRegression::new();
        match m.fit(data, &Trainer::new(cfg).unwrap()) {
            Ok(_) | Err(Error::Diverged { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        gradflow::metrics::accuracy(&m.predict(data.features()).unwrap(), labels).unwrap()
    };
    let reference = accuracy(&unit, cfg.clone());
    let raw = accuracy(&wild, cfg.clone());
    let scaled = accuracy(&wild, cfg.standardize(true));
    eprintln!(
        "accuracy: unit scale {reference:.3}, wild raw {raw:.3}, wild standardised {scaled:.3}"
    );
    assert!(raw < reference - 0.1, "raw {raw} vs {reference}");
    assert!(
        (scaled - reference).abs() < 0.02,
        "standardised {scaled} vs {reference}"
    );
}

/// The scaler is fitted the same way on a generator (streamed) and on its dataset (in
/// memory), and the two fits are bit for bit the same; a partial_fit keeps the scaler.
#[test]
fn streamed_and_in_memory_standardisation_agree() {
    let trainer = Trainer::new(
        TrainConfig::sgd()
            .batch_size(64)
            .epochs(2)
            .standardize(true),
    )
    .unwrap();
    let (mut a, mut b) = (LogisticRegression::new(), LogisticRegression::new());
    let blobs2 = Synthetic::blobs(5000, 4, 2).seed(2);
    trainer.fit(&mut a, &blobs2).unwrap();
    trainer.fit(&mut b, &blobs2.dataset().unwrap()).unwrap();
    let (fa, fb) = (a.fitted().unwrap(), b.fitted().unwrap());
    assert_eq!(fa.scaler, fb.scaler);
    assert_eq!(fa.params, fb.params);
    let scaler = fa.scaler.clone().unwrap();
    assert!(
        scaler.scale.iter().all(|&s| s > 0.0 && s != 1.0),
        "{scaler:?}"
    );
    // Going on keeps the scaler the parameters were trained with, even on other rows
    // (whose own statistics differ).
    let other = Synthetic::blobs(3000, 4, 2).seed(9).dataset().unwrap();
    assert_ne!(Standardizer::fit(&other).unwrap(), scaler);
    trainer.partial_fit(&mut a, &other).unwrap();
    assert_eq!(a.fitted().unwrap().scaler.as_ref(), Some(&scaler));
}
