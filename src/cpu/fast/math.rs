//! `f32` exponential and logarithm written so that a loop over a slice vectorises: no
//! branches, no library calls, rounding by the 1.5 · 2²³ trick instead of `round` (which
//! is a library call on x86-64's baseline). Cephes' polynomials (`expf`, `logf`): within
//! 2 ulp of the correctly rounded result over the ranges used here, which the tests
//! check against `f64`.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two, so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting it rounds an `f32` below 2²² to the nearest integer.
const ROUNDER: f32 = 12_582_912.0;

/// `eˣ` for `x` clamped to `[−87, 88]` (so the result stays a normal, finite `f32`:
/// `exp(−100)` gives `e⁻⁸⁷ ≈ 1.6e−38`, which no caller can tell from 0).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2ⁿ from the exponent bits; n ∈ [−126, 127] after the clamp. t's low mantissa bits
    // hold 2²² + n (t is in [2²³, 2²⁴), where the unit in the last place is 1), so the
    // low 9 bits of t's bits + 127 are n + 127: integer arithmetic that vectorises, where
    // `n as i32` (a saturating conversion) is done lane by lane.
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    e * scale
}

/// `ln x` for finite `x > 0` (normal numbers; the callers pass values ≥ 1).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2ᵉ with m in [0.5, 1).
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Centre m on 1: below √½ use 2m − 1 and one less in the exponent.
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= i32::from(small);
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 0.333_333_33;
    let ef = e as f32;
    let mut y = y * m * z;
    y += LN2_LO * ef;
    y -= 0.5 * z;
    m + y + LN2_HI * ef
}

/// σ(z) = 1 / (1 + e⁻ᶻ), finite for every finite `z` (the clamp in [`exp`]).
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against f64, in units of f32's epsilon.
    fn ulps(got: f32, want: f64) -> f64 {
        ((f64::from(got) - want) / want.abs().max(f64::from(f32::MIN_POSITIVE))).abs()
            / f64::from(f32::EPSILON)
    }

    #[test]
    fn exp_and_ln_are_within_a_few_ulp_of_f64() {
        let mut worst = (0f64, 0f64);
        let mut x = -87.0f32;
        while x < 88.0 {
            worst.0 = worst.0.max(ulps(exp(x), f64::from(x).exp()));
            x += 0.0137;
        }
        let mut y = 1.0f32;
        while y < 1e30 {
            worst.1 = worst.1.max(ulps(ln(y), f64::from(y).ln()));
            y *= 1.0011;
        }
        for y in [0.5f32, 0.75, 0.999, 1.5, 2.0, 1e-3, 3e-20] {
            worst.1 = worst.1.max(ulps(ln(y), f64::from(y).ln()));
        }
        assert!(
            worst.0 < 3.0 && worst.1 < 3.0,
            "exp {} ulp, ln {} ulp",
            worst.0,
            worst.1
        );
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn sigmoid_and_softplus_stay_finite_and_accurate() {
        for z in [
            -1e30f32, -200.0, -50.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 50.0, 200.0, 1e30,
        ] {
            // softplus(z) = max(z, 0) + ln(1 + e^−|z|), as the BCE loss computes it.
            let (s, sp) = (sigmoid(z), z.max(0.0) + ln(1.0 + exp(-z.abs())));
            let zf = f64::from(z);
            let s64 = 1.0 / (1.0 + (-zf).exp());
            let sp64 = zf.max(0.0) + (-zf.abs()).exp().ln_1p();
            assert!(s.is_finite() && sp.is_finite(), "z = {z}");
            assert!(
                (f64::from(s) - s64).abs() <= 2e-7 * s64.max(1e-30) + 1e-37,
                "σ({z}) = {s}"
            );
            assert!(
                (f64::from(sp) - sp64).abs() <= 2e-7 * sp64.max(1.0),
                "softplus({z}) = {sp}"
            );
        }
    }
}
