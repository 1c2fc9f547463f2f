//! Row-wise, numerically stable softmax.

use super::Real;

/// `out[i, :] = softmax(z[i, :])` for a `rows × cols` matrix.
///
/// The row maximum is subtracted before exponentiating, so logits of ±1000 give exact
/// probabilities instead of `NaN`.
///
/// # Example
/// ```
/// let mut p = [0f32; 2];
/// gradflow::cpu::softmax::softmax_rows(&[1000.0, 1000.0], 1, 2, &mut p);
/// assert_eq!(p, [0.5, 0.5]);
/// ```
pub fn softmax_rows<T: Real>(z: &[T], rows: usize, cols: usize, out: &mut [T]) {
    debug_assert!(z.len() >= rows * cols && out.len() >= rows * cols);
    for (zr, or) in z
        .chunks_exact(cols)
        .zip(out.chunks_exact_mut(cols))
        .take(rows)
    {
        let max = zr.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let mut sum = 0f64;
        for (o, &v) in or.iter_mut().zip(zr) {
            let e = (v - max).exp();
            *o = e;
            sum += e.f64();
        }
        let inv = T::of(1.0 / sum);
        for o in or.iter_mut() {
            *o = *o * inv;
        }
    }
}
