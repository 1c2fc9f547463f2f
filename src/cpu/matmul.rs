//! Matrix products in the three layouts training needs.
//!
//! `C (m × n) = op(A) · op(B)`, all row-major:
//!
//! | layout | A stored as | B stored as | used for |
//! |---|---|---|---|
//! | [`Layout::NN`] `A·B` | m × k | k × n | forward: `z = X W` |
//! | [`Layout::TN`] `Aᵀ·B` | k × m | k × n | gradient reduction: `∂L/∂W = Xᵀ (ŷ − y)` |
//! | [`Layout::NT`] `A·Bᵀ` | m × k | n × k | back-propagation: `∂L/∂a = δ W²ᵀ` |
//!
//! **Row gather.** With `a_rows = Some(idx)`, stored row `r` of A is read from row
//! `idx[r]` of the `a` buffer. For `NN` those are the m rows of the batch; for `TN` the
//! k rows. That is how a shuffled mini-batch `X[perm[s..s+N]]` is read in place, without
//! copying it out first.

use super::Real;

pub use crate::program::Layout;

/// `c = op(a) · op(b)` with `c` of shape m × n; overwrites `c`.
///
/// Sums run over `k` in increasing order in `f64` and are rounded once.
///
/// # Example
/// ```
/// use gradflow::cpu::matmul::{matmul, Layout};
/// // Seed 000's first batch: Xᵀ r with X = [[1,2],[3,1],[1,1]], r = ŷ − y = [-1.6,-2.1,-1.1].
/// let x = [1.0f32, 2.0, 3.0, 1.0, 1.0, 1.0];
/// let r = [-1.6f32, -2.1, -1.1];
/// let mut g = [0f32; 2];
/// matmul(Layout::TN, 2, 3, 1, &x, None, &r, &mut g);
/// assert!((g[0] - -9.0).abs() < 1e-5 && (g[1] - -6.4).abs() < 1e-5);
/// ```
#[allow(clippy::too_many_arguments)] // the BLAS shape: layout, m, k, n, operands
pub fn matmul<T: Real>(
    layout: Layout,
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_rows: Option<&[u32]>,
    b: &[T],
    c: &mut [T],
) {
    debug_assert!(c.len() >= m * n, "c holds {} < m·n = {}", c.len(), m * n);
    debug_assert!(b.len() >= k * n, "b holds {} < k·n = {}", b.len(), k * n);
    // Row `r` of A as stored (length m for TN, k otherwise), through the gather index.
    let a_row_len = if layout == Layout::TN { m } else { k };
    let a_row = |r: usize| {
        let src = a_rows.map_or(r, |idx| idx[r] as usize);
        &a[src * a_row_len..(src + 1) * a_row_len]
    };
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f64;
            for l in 0..k {
                let (x, y) = match layout {
                    Layout::NN => (a_row(i)[l], b[l * n + j]),
                    Layout::TN => (a_row(l)[i], b[l * n + j]),
                    Layout::NT => (a_row(i)[l], b[j * k + l]),
                };
                acc += x.f64() * y.f64();
            }
            c[i * n + j] = T::of(acc);
        }
    }
}
