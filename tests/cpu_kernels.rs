//! The reference kernels against each other and against closed forms, on awkward shapes.

use gradflow::cpu::activation::{Activation, activate, activate_backward, sigmoid};
use gradflow::cpu::matmul::{Layout, matmul};
use gradflow::cpu::{loss, reduce, softmax};

/// Deterministic pseudo-random values in [-1, 1) (a tiny LCG: no test dependency).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| a[i * cols + j]))
        .collect()
}

/// A·B computed three ways (NN; TN on Aᵀ; NT on Bᵀ) must agree exactly: the kernels sum
/// the same products in the same order in f64.
#[test]
fn the_three_layouts_agree_on_odd_shapes() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (7, 33, 5),
        (33, 7, 257),
        (257, 1, 7),
        (13, 129, 31),
    ] {
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut nn = vec![f32::NAN; m * n];
        matmul(Layout::NN, m, k, n, &a, None, &b, &mut nn);
        let mut tn = vec![f32::NAN; m * n];
        matmul(Layout::TN, m, k, n, &transpose(&a, m, k), None, &b, &mut tn);
        let mut nt = vec![f32::NAN; m * n];
        matmul(Layout::NT, m, k, n, &a, None, &transpose(&b, k, n), &mut nt);
        assert_eq!(nn, tn, "{m}×{k}×{n}");
        assert_eq!(nn, nt, "{m}×{k}×{n}");
        // Against an independent f64 sum.
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|l| f64::from(a[i * k + l]) * f64::from(b[l * n + j]))
                    .sum();
                assert_eq!(nn[i * n + j], exact as f32);
            }
        }
    }
}

/// Reading rows through an index equals copying those rows out first, for NN and TN.
#[test]
fn gather_equals_materialised_rows() {
    let (rows, k, n) = (50, 9, 4);
    let x = values(rows * k, 3);
    let idx: Vec<u32> = vec![49, 0, 17, 17, 3, 22, 8];
    let gathered: Vec<f32> = idx
        .iter()
        .flat_map(|&r| x[r as usize * k..(r as usize + 1) * k].to_vec())
        .collect();
    let m = idx.len();
    let w = values(k * n, 4);
    let (mut a, mut b) = (vec![0f32; m * n], vec![0f32; m * n]);
    matmul(Layout::NN, m, k, n, &x, Some(&idx), &w, &mut a);
    matmul(Layout::NN, m, k, n, &gathered, None, &w, &mut b);
    assert_eq!(a, b);
    let d = values(m * n, 5);
    let (mut ga, mut gb) = (vec![0f32; k * n], vec![0f32; k * n]);
    matmul(Layout::TN, k, m, n, &x, Some(&idx), &d, &mut ga);
    matmul(Layout::TN, k, m, n, &gathered, None, &d, &mut gb);
    assert_eq!(ga, gb);
}

#[test]
fn softmax_and_cce_stay_finite_at_extreme_logits() {
    let z = [1000.0f32, -1000.0, 0.0, 88.0, 89.0, -90.0];
    let mut p = [0f32; 6];
    softmax::softmax_rows(&z, 2, 3, &mut p);
    assert_eq!(&p[..3], &[1.0, 0.0, 0.0]);
    assert!(p.iter().all(|v| v.is_finite()));
    let mut dz = [0f32; 6];
    let l = loss::softmax_cce(&z, &[1, 0], None, 2, 3, &mut dz, None);
    // Row 0: lse = 1000, loss = 1000 − (−1000) = 2000; row 1: lse ≈ 89.3133, loss ≈ 1.3133.
    assert!(
        (l - (2000.0 + (89.0 + (1.0 + (-1f64).exp()).ln() - 88.0)) / 2.0).abs() < 1e-4,
        "{l}"
    );
    assert!(dz.iter().all(|v| v.is_finite()));
}

#[test]
fn bce_is_exact_for_large_logits() {
    let mut dz = [0f32; 4];
    let l = loss::sigmoid_bce(
        &[100.0f32, -100.0, 100.0, -100.0],
        &[1, 0, 0, 1],
        None,
        4,
        &mut dz,
        None,
    );
    // Right answers cost e^-100 ≈ 0; wrong ones cost 100 each.
    assert!((l - 50.0).abs() < 1e-9, "{l}");
    // σ(−100)/4 ≈ 9e-45 survives as an f32 subnormal; compare within 1e-30.
    for (a, b) in dz.iter().zip([0.0, 0.0, 0.25, -0.25]) {
        assert!((a - b).abs() < 1e-30, "{dz:?}");
    }
    assert_eq!(sigmoid(-200.0f32), 0.0);
    assert_eq!(sigmoid(200.0f32), 1.0);
}

/// Activation derivatives from the output equal finite differences of the forward.
#[test]
fn activation_derivatives_match_differences() {
    let z: Vec<f64> = (-20..=20).map(|i| f64::from(i) * 0.37 + 0.011).collect();
    for f in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        let mut a = vec![0f64; z.len()];
        activate(f, &z, &mut a);
        let mut d = vec![1f64; z.len()];
        activate_backward(f, &a, &mut d);
        for (i, &zi) in z.iter().enumerate() {
            let h = 1e-6;
            let (mut up, mut down) = ([0f64], [0f64]);
            activate(f, &[zi + h], &mut up);
            activate(f, &[zi - h], &mut down);
            let numeric = (up[0] - down[0]) / (2.0 * h);
            assert!(
                (d[i] - numeric).abs() < 1e-8,
                "{f:?} at {zi}: {} vs {numeric}",
                d[i]
            );
        }
    }
}

#[test]
fn column_sums_and_mse_gradient() {
    let x = values(7 * 3, 6);
    let mut s = [0f32; 3];
    reduce::col_sums(&x, 7, 3, &mut s);
    for (j, &v) in s.iter().enumerate() {
        let exact: f64 = (0..7).map(|i| f64::from(x[i * 3 + j])).sum();
        assert_eq!(v, exact as f32);
    }
    // Gathered targets: row r reads y[idx[r]].
    let mut dz = [0f32; 2];
    let l = loss::mse(
        &[1.0f32, 2.0],
        &[10.0, 0.0, 3.0],
        Some(&[2, 1]),
        2,
        1,
        &mut dz,
        None,
    );
    assert_eq!(l, (4.0 + 4.0) / 2.0);
    assert_eq!(dz, [-2.0, 2.0]);
    // Weights read through the same index: row 0 (target 2) weighs 3, row 1 weighs 0.5.
    let l = loss::mse(
        &[1.0f32, 2.0],
        &[10.0, 0.0, 3.0],
        Some(&[2, 1]),
        2,
        1,
        &mut dz,
        Some(&[9.0, 0.5, 3.0]),
    );
    assert_eq!(l, (3.0 * 4.0 + 0.5 * 4.0) / 2.0);
    assert_eq!(dz, [-6.0, 1.0]);
}
