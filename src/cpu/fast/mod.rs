//! The fast CPU kernels: what `Backend::Cpu` trains with by default.
//!
//! The reference kernels in [`crate::cpu`] are written for exactness (sums in `f64`, plain
//! loops) and stay the oracle: verify mode, the gradient check and the tests compare
//! against them. These are written for speed, in `f32` throughout, and agree with the
//! reference within `f32` rounding (`tests/fast_cpu.rs` checks every kernel and whole fits
//! on awkward shapes):
//!
//! - [`glm`]: linear, logistic and softmax regression as **one fused pass** over a batch's
//!   rows (z = x·W + b, the loss and δ, then Xᵀδ while the rows are still in L1), reading a
//!   shuffled batch in place with software prefetch, and splitting a large batch (full-batch
//!   descent) over threads in fixed blocks whose partial gradients are added in order, so
//!   the result does not depend on the thread count;
//! - [`ops`]: every [`Op`](crate::program::Op) of a [`Program`](crate::program::Program)
//!   (the MLP), with matrix products by `matrixmultiply`'s sgemm and activations and
//!   losses on vectorisable `f32` math ([`math`]);
//! - the hot loops are compiled three times, for x86-64's baseline, AVX2 + FMA and
//!   AVX-512, and the widest the CPU has is chosen at run time (`multiversion!`); they
//!   give the same results on all three.

pub mod glm;
pub mod math;
pub mod ops;
pub mod team;

/// Whether this CPU runs the AVX2 + FMA versions (checked once; cached by std).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the AVX-512 versions (AVX-512 F, VL, with AVX2 and FMA).
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines a function whose body is compiled three times: for the baseline target and,
/// on x86-64, with AVX2 + FMA and with AVX-512 enabled; each call runs the widest the CPU
/// has. The body must be plain safe code; what it gains is LLVM's vectorisation at 8 or
/// 16 lanes. The body never uses `mul_add`, so no version contracts a multiply and an
/// add: all three round alike and give the same results.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::cpu::fast::has_avx512() {
                    // SAFETY: the CPU has the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::cpu::fast::has_avx2_fma() {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// `Σ a[i] · b[i]` with 8 partial sums (one AVX register: the loop vectorises), added in a
/// fixed order.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; L];
    let (ac, bc) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        let x: &[f32; L] = x.try_into().expect("chunks of L");
        let y: &[f32; L] = y.try_into().expect("chunks of L");
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    let mut sum = tail;
    for v in acc {
        sum += v;
    }
    sum
}

/// `y[i] += alpha · x[i]`.
#[inline(always)]
pub(crate) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Asks for `row`'s cache lines ahead of their use (a hint; a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: prefetching is a hint that never faults; the address is inside `row`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}
