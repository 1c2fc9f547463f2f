//! `ndarray` in and out (feature `ndarray`).
#![cfg(feature = "ndarray")]

use gradflow::Error;
use gradflow::array::{PredictArray, PredictProbaArray, dataset_labels, dataset_real};
use gradflow::data::{Synthetic, Targets};
use gradflow::model::Mlp;
use gradflow::{TrainConfig, Trainer};
use ndarray::{Array1, Array2, ShapeBuilder};

/// A transposed (column-major) view is read by its logical rows, and predictions come
/// back as arrays of the right shape, equal to the slice API's.
#[test]
fn arrays_in_and_out() {
    let data = Synthetic::blobs(200, 3, 4).seed(3).dataset().unwrap();
    let Targets::Classes { labels, .. } = data.targets() else {
        unreachable!()
    };
    // The same matrix stored column-major.
    let x = Array2::from_shape_vec((200, 3), data.features().to_vec()).unwrap();
    let mut fortran = Array2::<f32>::zeros((200, 3).f());
    fortran.assign(&x);
    let from_array =
        dataset_labels(fortran.view(), Array1::from(labels.clone()).view(), 4).unwrap();
    assert_eq!(from_array, data);
    let mut mlp = Mlp::new(6);
    mlp.fit(&data, &Trainer::new(TrainConfig::sgd().epochs(3)).unwrap())
        .unwrap();
    let classes = mlp.predict_array(fortran.view()).unwrap();
    assert_eq!(classes.to_vec(), mlp.predict(data.features()).unwrap());
    let proba = mlp.predict_proba_array(x.view()).unwrap();
    assert_eq!(proba.dim(), (200, 4));
    assert!(
        proba
            .rows()
            .into_iter()
            .all(|r| (r.sum() - 1.0).abs() < 1e-5)
    );
}

#[test]
fn mismatched_arrays_are_refused() {
    let x = Array2::<f32>::zeros((5, 2));
    let err = dataset_real(x.view(), Array1::<f32>::zeros(4).view()).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = dataset_labels(x.view(), Array1::from(vec![0u32, 1, 2, 0, 1]).view(), 2).unwrap_err();
    assert!(
        matches!(err, Error::LabelOutOfRange { label: 2, .. }),
        "{err}"
    );
}
