//! Column sums: the bias gradients `∂L/∂b = 1ᵀ δ`.

use super::Real;

/// `out[j] = Σᵢ x[i, j]` over the `rows × cols` matrix `x`, summed in `f64`.
///
/// # Example
/// ```
/// let mut s = [0f32; 2];
/// gradflow::cpu::reduce::col_sums(&[1.0, 2.0, 3.0, 4.0], 2, 2, &mut s);
/// assert_eq!(s, [4.0, 6.0]);
/// ```
pub fn col_sums<T: Real>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    debug_assert!(x.len() >= rows * cols && out.len() >= cols);
    for (j, o) in out.iter_mut().enumerate().take(cols) {
        let sum: f64 = (0..rows).map(|i| x[i * cols + j].f64()).sum();
        *o = T::of(sum);
    }
}
