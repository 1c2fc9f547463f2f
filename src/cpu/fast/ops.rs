//! Fast `f32` versions of the program's ops (the twins of [`crate::cpu`]'s matmul, bias,
//! activation and column-sum kernels), for models that do not take the fused GLM pass.

use super::{math, multiversion};
use crate::program::Activation;
use crate::program::Layout;

/// `c = op(a) · op(b)` (m × n, overwritten) by `matrixmultiply`'s sgemm; layouts and
/// storage as [`crate::cpu::matmul::matmul`], with `a` contiguous (a shuffled batch is
/// gathered first).
///
/// # Example
/// ```
/// use gradflow::cpu::fast::ops::matmul;
/// use gradflow::cpu::matmul::Layout;
/// let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [5.0f32, 6.0, 7.0, 8.0]);
/// let mut c = [0f32; 4];
/// matmul(Layout::NN, 2, 2, 2, &a, &b, &mut c);
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// matmul(Layout::TN, 2, 2, 2, &a, &b, &mut c); // aᵀ b
/// assert_eq!(c, [26.0, 30.0, 38.0, 44.0]);
/// matmul(Layout::NT, 2, 2, 2, &a, &b, &mut c); // a bᵀ
/// assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
/// ```
///
/// # Panics
/// When a slice is shorter than its shape says (a bug in the caller, which sizes every
/// buffer from the program).
pub fn matmul(layout: Layout, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(c.len() >= m * n);
    matmul_rows(layout, m, k, n, a, b, 0..m, &mut c[..m * n]);
}

/// Rows `rows` of [`matmul`]'s product, written to `c` (`rows.len() × n`). Each element is
/// the same sum as in the whole product (sgemm's order over `k` does not depend on which
/// rows it computes), so a product split by rows over threads gives the same bits.
///
/// # Example
/// ```
/// use gradflow::cpu::fast::ops::matmul_rows;
/// use gradflow::cpu::matmul::Layout;
/// let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [5.0f32, 6.0, 7.0, 8.0]);
/// let mut second = [0f32; 2];
/// matmul_rows(Layout::NN, 2, 2, 2, &a, &b, 1..2, &mut second);
/// assert_eq!(second, [43.0, 50.0]);
/// ```
///
/// # Panics
/// When a slice is shorter than its shape says, or `rows` goes past `m`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_rows(
    layout: Layout,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    rows: std::ops::Range<usize>,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && rows.end <= m && rows.start <= rows.end);
    assert!(c.len() >= rows.len() * n);
    // SAFETY: the asserts above bound every element read (rows `rows` of op(a), op(b)) and
    // written (`c`'s rows.len() · n, at row stride n); `c` is a distinct, exclusive borrow.
    unsafe { sgemm_block(layout, m, k, n, a, b, rows, 0..n, c.as_mut_ptr(), n) };
}

/// Products from this many multiply-adds up are split over the [`team`](super::team):
/// upwards of half a microsecond of arithmetic at ~200 GFLOP/s, against a 0.2 µs hand-off
/// (set from that estimate, not tuned).
pub const SPLIT_WORK: usize = 1 << 16;

/// [`matmul`], split in two over the [`team`](super::team) when it is large enough: by
/// rows of the product or by columns, whichever leaves each half less to pack (sgemm
/// copies each operand into panels first, so a half that needs all of a large operand
/// copies it twice over). Every element is the same sum as in [`matmul`], so the bits do
/// not depend on the split or the thread count.
///
/// # Panics
/// As [`matmul`].
pub fn matmul_split(
    layout: Layout,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let c = &mut c[..m * n];
    if m * k * n < SPLIT_WORK || m.max(n) < 16 {
        return matmul(layout, m, k, n, a, b, c);
    }
    if m >= n {
        // At a multiple of 8 rows, sgemm's row tiles.
        let mid = (m / 2).next_multiple_of(8).min(m);
        super::team::split_in_two(c, mid * n, &|h, part| {
            let rows = if h == 0 { 0..mid } else { mid..m };
            matmul_rows(layout, m, k, n, a, b, rows, part);
        });
    } else {
        /// The product, written by both halves at disjoint columns.
        struct Out(*mut f32);
        // SAFETY: the halves write disjoint elements, and `c` stays borrowed until both end.
        unsafe impl Sync for Out {}
        impl Out {
            // A method, so that the closure captures the whole `Out`, not its pointer.
            fn ptr(&self) -> *mut f32 {
                self.0
            }
        }
        let out = Out(c.as_mut_ptr());
        let mid = (n / 2).next_multiple_of(8).min(n);
        super::team::for_each(2, &|h| {
            let cols = if h == 0 { 0..mid } else { mid..n };
            // SAFETY: as `matmul`'s asserts (checked above), for columns `cols` of each
            // row of `c`, which no other half writes.
            unsafe { sgemm_block(layout, m, k, n, a, b, 0..m, cols, out.ptr(), n) };
        });
    }
}

/// `c[r][j] = (op(a) · op(b))[r][j]` for `r` in `rows`, `j` in `cols`, with `c` pointing
/// at the block's first row (row stride `ldc`) and column 0 of the product.
///
/// # Safety
/// `a` holds m·k and `b` k·n values as `layout` says, `rows ⊆ 0..m`, `cols ⊆ 0..n`, and
/// `c` is valid for writes at `c + (r − rows.start) · ldc + j` for those `r`, `j`, with no
/// other access to those elements meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_block(
    layout: Layout,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    c: *mut f32,
    ldc: usize,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let (rsa, csa) = match layout {
        Layout::NN | Layout::NT => (k, 1),
        // A is stored k × m.
        Layout::TN => (1, m),
    };
    let (rsb, csb) = match layout {
        Layout::NN | Layout::TN => (n, 1),
        // B is stored n × k.
        Layout::NT => (1, k),
    };
    // SAFETY: op(a)'s rows `rows` and op(b)'s columns `cols` lie within the m·k and k·n
    // values the caller vouches for; the writes are the caller's block of `c`.
    unsafe {
        matrixmultiply::sgemm(
            rows.len(),
            k,
            cols.len(),
            1.0,
            a.as_ptr().add(rows.start * rsa),
            rsa as isize,
            csa as isize,
            b.as_ptr().add(cols.start * csb),
            rsb as isize,
            csb as isize,
            0.0,
            c.add(cols.start),
            ldc as isize,
            1,
        );
    }
}

/// Copies rows `idx[r]` of `x` (`p` values each) to row `r` of `out`, asking for each row
/// [`PREFETCH_AHEAD`](super::glm::PREFETCH_AHEAD) rows before it is copied (scattered rows
/// are latency-bound), the two halves on the [`team`](super::team) from 128 rows.
pub fn gather(x: &[f32], p: usize, idx: &[u32], out: &mut [f32]) {
    let out = &mut out[..idx.len() * p];
    if idx.len() >= 128 && p > 0 {
        let mid = idx.len() / 2;
        super::team::split_in_two(out, mid * p, &|h, part| {
            let rows = if h == 0 { &idx[..mid] } else { &idx[mid..] };
            gather_rows(x, p, rows, part);
        });
    } else {
        gather_rows(x, p, idx, out);
    }
}

fn gather_rows(x: &[f32], p: usize, idx: &[u32], out: &mut [f32]) {
    let ahead = super::glm::PREFETCH_AHEAD;
    let row = |s: u32| &x[s as usize * p..(s as usize + 1) * p];
    for &s in idx.iter().take(ahead) {
        super::prefetch(row(s));
    }
    for (r, (dst, &s)) in out.chunks_exact_mut(p.max(1)).zip(idx).enumerate() {
        if let Some(&next) = idx.get(r + ahead) {
            super::prefetch(row(next));
        }
        dst.copy_from_slice(row(s));
    }
}

// Plain `for` loops below, no closures: a closure is a function of its own, compiled
// without the AVX2 of the `multiversion!` body it would sit in.

multiversion! {
    /// `out[i] = f(z[i])`.
    pub fn activate(f: Activation, z: &[f32], out: &mut [f32]) {
        match f {
            Activation::Sigmoid => {
                for (o, &v) in out.iter_mut().zip(z) {
                    *o = math::sigmoid(v);
                }
            }
            // libm's tanhf: the fast exp would lose relative accuracy near 0.
            Activation::Tanh => {
                for (o, &v) in out.iter_mut().zip(z) {
                    *o = v.tanh();
                }
            }
            Activation::Relu => {
                for (o, &v) in out.iter_mut().zip(z) {
                    *o = v.max(0.0);
                }
            }
        }
    }
}

multiversion! {
    /// `grad[i] *= f′` from the forward output `a[i]`.
    pub fn activate_backward(f: Activation, a: &[f32], grad: &mut [f32]) {
        match f {
            Activation::Sigmoid => {
                for (g, &y) in grad.iter_mut().zip(a) {
                    *g *= y * (1.0 - y);
                }
            }
            Activation::Tanh => {
                for (g, &y) in grad.iter_mut().zip(a) {
                    *g *= 1.0 - y * y;
                }
            }
            Activation::Relu => {
                for (g, &y) in grad.iter_mut().zip(a) {
                    if y <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
        }
    }
}

multiversion! {
    /// `z[i, :] += bias` over `m` rows.
    pub fn bias_add(z: &mut [f32], m: usize, cols: usize, bias: &[f32]) {
        for row in z[..m * cols].chunks_exact_mut(cols) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

/// Elements from which an elementwise op or a column sum is split over the two members of
/// the [`team`](super::team): several microseconds of work (65,536 sigmoids take ~14 µs,
/// as many bias additions ~2.5 µs), against a 0.2 µs hand-off. Set from those figures,
/// not tuned.
pub const SPLIT_ELEMENTS: usize = 1 << 16;

/// `out = 1ᵀ x` over `m` rows of `cols`; from [`SPLIT_ELEMENTS`] values and 16 columns, the
/// two halves of the columns on the [`team`](super::team) (each sum in the same order).
pub fn col_sums(x: &[f32], m: usize, cols: usize, out: &mut [f32]) {
    let out = &mut out[..cols];
    if m * cols >= SPLIT_ELEMENTS && cols >= 16 {
        let mid = cols / 2;
        super::team::split_in_two(out, mid, &|h, part| {
            let of = if h == 0 { 0..mid } else { mid..cols };
            col_sums_of(x, m, cols, of, part);
        });
    } else {
        col_sums_of(x, m, cols, 0..cols, out);
    }
}

multiversion! {
    /// Columns `of` of [`col_sums`], written to `out` (`of.len()` values): each sum in the
    /// same order as in the whole, so the columns can be split over threads.
    pub fn col_sums_of(x: &[f32], m: usize, cols: usize, of: std::ops::Range<usize>, out: &mut [f32]) {
        let out = &mut out[..of.len()];
        for o in out.iter_mut() {
            *o = 0.0;
        }
        for row in x[..m * cols].chunks_exact(cols) {
            for (o, &v) in out.iter_mut().zip(&row[of.clone()]) {
                *o += v;
            }
        }
    }
}
