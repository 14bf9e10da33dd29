//! The vector registers' state after foreign SIMD kernels.
//!
//! faer's f32/f64 GEMM kernels on x86-64 (the `private-gemm-x86` crate, generated assembly)
//! return with the upper halves of the AVX registers still in use, without `vzeroupper`.
//! Until something clears them, every switch between legacy-SSE code (what the portable build
//! compiles scalar Rust to) and VEX code (glibc's `expf`, `log`, `exp`, …, which dispatch to
//! their AVX2/FMA variants) pays the CPU's state-transition penalty. Measured on an Intel Xeon
//! (family 6, model 207): 4.1 ns per call of the f32 logistic `1 / (1 + e^−x)` with the state
//! clean, 211 ns after a GEMM, 3.7 ns after a GEMM and [`clear_upper_state`] (the `gemm_state`
//! example of `clica-encoders`). On Table 2 row 1 the box encoder's logistic had been a fifth
//! of the training step.
//!
//! [`clear_upper_state`] executes `vzeroupper` when the CPU has AVX. Call it after a GEMM,
//! before scalar code that calls into libm. It changes no value, only timing.
#![allow(unsafe_code)]

/// Clears the upper halves of the vector registers (`vzeroupper`) on x86-64 CPUs with AVX;
/// does nothing elsewhere. See the module docs.
#[inline]
pub fn clear_upper_state() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: `zero_upper` needs AVX only, and the CPU has it (checked just above).
            unsafe { zero_upper() }
        }
    }
}

/// `vzeroupper`: zeroes bits 128 and up of every vector register. The compiler models the
/// intrinsic, so no live value sits in those bits across it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

#[cfg(test)]
mod tests {
    #[test]
    fn clearing_keeps_values() {
        // Values live in registers around the call must survive it.
        let v: Vec<f64> = (0..64).map(|i| (i as f64).sin()).collect();
        let before: f64 = v.iter().sum();
        super::clear_upper_state();
        let after: f64 = v.iter().sum();
        assert_eq!(before.to_bits(), after.to_bits());
    }
}
