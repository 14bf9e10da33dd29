//! The floating-point element types the kernels run on, and a vectorisable `exp`.

use num_traits::Float;
use std::fmt::{Debug, Display};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element type of the kernels: `f32` (training) or `f64` (checks). Sealed.
///
/// Besides [`Float`] it carries a branch-free `exp` that the compiler can vectorise inside the
/// kernels' inner loops (the standard library's `exp` is an opaque call that cannot be).
pub trait Real: Float + Debug + Display + Default + Send + Sync + 'static + sealed::Sealed {
    /// `e^x`, accurate to a few units in the last place, branch-free so that loops over slices
    /// vectorise. Returns exactly 0 below the smallest normal result (about `e^-87` for `f32`,
    /// `e^-708` for `f64`, including `x = -∞`), `+∞` above the largest, and NaN for NaN.
    fn fast_exp(x: Self) -> Self;

    /// Conversion from `f64` (rounding to nearest for `f32`).
    fn from_f64(x: f64) -> Self;

    /// Conversion to `f64` (exact).
    fn to_f64_lossless(self) -> f64;
}

impl Real for f64 {
    #[inline(always)]
    fn fast_exp(x: f64) -> f64 {
        // Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, then a degree-13 Taylor polynomial
        // (truncation error < 2e-17 relative) and scaling by 2^n through the exponent bits.
        const LOG2E: f64 = std::f64::consts::LOG2_E;
        // ln 2 = LN2_HI + LN2_LO with the low 21 mantissa bits of LN2_HI zero (fdlibm's split),
        // so n·LN2_HI is exact for every n the reduction produces (|n| ≤ 1023).
        const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
        const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
        const LO: f64 = -708.0;
        const HI: f64 = 709.0;
        const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: adding it rounds to an integer
        let xc = x.clamp(LO, HI); // NaN stays NaN
        let t = xc * LOG2E + MAGIC;
        let n = t - MAGIC;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let mut p = 1.0 / 6_227_020_800.0; // 1/13!
        p = p * r + 1.0 / 479_001_600.0;
        p = p * r + 1.0 / 39_916_800.0;
        p = p * r + 1.0 / 3_628_800.0;
        p = p * r + 1.0 / 362_880.0;
        p = p * r + 1.0 / 40_320.0;
        p = p * r + 1.0 / 5_040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()); // n as a two's-complement integer
        let scale = f64::from_bits(ni.wrapping_add(1023) << 52);
        let y = p * scale;
        let y = if x > HI { f64::INFINITY } else { y };
        if x < LO {
            0.0
        } else {
            y
        }
    }

    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }

    #[inline(always)]
    fn to_f64_lossless(self) -> f64 {
        self
    }
}

impl Real for f32 {
    #[inline(always)]
    fn fast_exp(x: f32) -> f32 {
        // Cody–Waite reduction (Cephes constants) and a degree-7 Taylor polynomial
        // (truncation error < 1e-8 relative on |r| ≤ ln2/2).
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        // ln 2 = LN2_HI + LN2_LO, LN2_HI = 0.693359375 exactly (9 significant bits).
        const LN2_HI: f32 = f32::from_bits(0x3F31_8000);
        const LN2_LO: f32 = -2.121_944_4e-4;
        const LO: f32 = -87.0;
        const HI: f32 = 88.0;
        const MAGIC: f32 = 12_582_912.0; // 1.5·2^23
        let xc = x.clamp(LO, HI); // NaN stays NaN
        let t = xc * LOG2E + MAGIC;
        let n = t - MAGIC;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let mut p = 1.0 / 5_040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
        let scale = f32::from_bits(ni.wrapping_add(127) << 23);
        let y = p * scale;
        let y = if x > HI { f32::INFINITY } else { y };
        if x < LO {
            0.0
        } else {
            y
        }
    }

    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }

    #[inline(always)]
    fn to_f64_lossless(self) -> f64 {
        f64::from(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Real;

    fn max_rel_err<F: Real>(lo: f64, hi: f64, n: usize) -> f64 {
        let mut worst = 0.0f64;
        for k in 0..=n {
            let x = F::from_f64(lo + (hi - lo) * k as f64 / n as f64);
            let exact = x.to_f64_lossless().exp();
            let got = F::fast_exp(x).to_f64_lossless();
            worst = worst.max(((got - exact) / exact).abs());
        }
        worst
    }

    #[test]
    fn f64_exp_is_accurate_to_a_few_ulp() {
        let e = max_rel_err::<f64>(-700.0, 700.0, 200_003);
        assert!(e < 4.0 * f64::EPSILON, "max relative error {e:e}");
        let e = max_rel_err::<f64>(-2.0, 2.0, 100_003);
        assert!(e < 3.0 * f64::EPSILON, "max relative error {e:e}");
    }

    #[test]
    fn f32_exp_is_accurate_to_a_few_ulp() {
        // The reference is exp of the same f32 input computed in f64.
        let e = max_rel_err::<f32>(-86.0, 87.0, 200_003);
        assert!(
            e < 3.0 * f64::from(f32::EPSILON),
            "max relative error {e:e}"
        );
    }

    #[test]
    fn exp_special_values() {
        assert_eq!(f64::fast_exp(0.0), 1.0);
        assert_eq!(f32::fast_exp(0.0), 1.0);
        assert_eq!(f64::fast_exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(f32::fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(f64::fast_exp(-1000.0), 0.0);
        assert_eq!(f64::fast_exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(f32::fast_exp(100.0), f32::INFINITY);
        assert!(f64::fast_exp(f64::NAN).is_nan());
        assert!(f32::fast_exp(f32::NAN).is_nan());
        assert!((f64::fast_exp(1.0) - std::f64::consts::E).abs() <= f64::EPSILON * 3.0);
    }
}
