//! Bias broadcast: add a row vector to every row.

use super::Real;

/// `z[i, j] += bias[j]` for the `rows × cols` matrix `z` (row-major).
///
/// # Example
/// ```
/// let mut z = [1.0f32, 2.0, 3.0, 4.0];
/// gradflow::cpu::bias::bias_add(&mut z, 2, 2, &[10.0, 20.0]);
/// assert_eq!(z, [11.0, 22.0, 13.0, 24.0]);
/// ```
pub fn bias_add<T: Real>(z: &mut [T], rows: usize, cols: usize, bias: &[T]) {
    debug_assert!(z.len() >= rows * cols && bias.len() >= cols);
    for row in z[..rows * cols].chunks_exact_mut(cols) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = *v + b;
        }
    }
}
