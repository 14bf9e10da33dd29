//! von Mises–Fisher sampling on the unit sphere S^{n−1} (Wood, 1994).

use rand::Rng;
use rand_distr::{Beta, Distribution, StandardNormal};

/// Precomputed constants of Wood's rejection sampler for the component w = μᵀx.
///
/// With b = (n−1)/(√(4κ² + (n−1)²) + 2κ) and x₀ = (1−b)/(1+b), a proposal is
/// w = (1 − (1+b)Z)/(1 − (1−b)Z) with Z ~ Beta((n−1)/2, (n−1)/2), accepted when
/// κw + (n−1)ln(1 − x₀w) − c ≥ ln u, c = κx₀ + (n−1)ln(1 − x₀²).
///
/// Every difference that cancels for large κ (1 − x₀, 1 − w, 1 − x₀w, 1 − x₀²) is
/// computed from b directly, so the sampler stays exact and finite for κ up to ~1e307.
#[derive(Debug, Clone)]
pub(crate) struct VmfW {
    kappa: f64,
    /// n − 1.
    nm1: f64,
    b: f64,
    x0: f64,
    /// 1 − x₀ = 2b/(1+b).
    one_minus_x0: f64,
    /// ln(1 − x₀²) = ln(4b/(1+b)²).
    ln_one_minus_x0_sq: f64,
    beta: Beta<f64>,
}

impl VmfW {
    /// `dim` ≥ 2 and `kappa` finite and > 0 (validated by the caller).
    pub(crate) fn new(dim: usize, kappa: f64) -> Self {
        let nm1 = (dim - 1) as f64;
        let half = 0.5 * nm1;
        // b = (n−1)/(√(4κ² + (n−1)²) + 2κ) = ((n−1)/2)/(hypot(κ, (n−1)/2) + κ), overflow-free.
        let b = half / (kappa.hypot(half) + kappa);
        let x0 = (1.0 - b) / (1.0 + b);
        let one_minus_x0 = 2.0 * b / (1.0 + b);
        let ln_one_minus_x0_sq = (4.0 * b).ln() - 2.0 * b.ln_1p();
        let beta = Beta::new(half, half).expect("(n-1)/2 > 0 gives a valid Beta");
        VmfW {
            kappa,
            nm1,
            b,
            x0,
            one_minus_x0,
            ln_one_minus_x0_sq,
            beta,
        }
    }

    /// Draws (w, 1 − w²) for the component w = μᵀx of a unit vMF vector.
    #[inline]
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        if self.b == 0.0 || !(self.ln_one_minus_x0_sq.is_finite()) {
            // κ beyond ~1e307: the law is a point mass at μ to machine precision.
            return (1.0, 0.0);
        }
        let b = self.b;
        loop {
            let z: f64 = self.beta.sample(rng);
            let denom = 1.0 - (1.0 - b) * z;
            // 1 − w = 2bZ/(1 − (1−b)Z), exact for large κ (no cancellation).
            let one_minus_w = 2.0 * b * z / denom;
            let w = (1.0 - (1.0 + b) * z) / denom;
            // 1 − x₀w = (1 − x₀) + x₀(1 − w).
            let one_minus_x0w = self.one_minus_x0 + self.x0 * one_minus_w;
            // κ(w − x₀) = κ((1 − x₀) − (1 − w)).
            let t = self.kappa * (self.one_minus_x0 - one_minus_w)
                + self.nm1 * (one_minus_x0w.ln() - self.ln_one_minus_x0_sq);
            let u: f64 = rng.random::<f64>();
            if t >= u.ln() {
                let w = w.clamp(-1.0, 1.0);
                let one_minus_w_sq = (one_minus_w * (2.0 - one_minus_w)).clamp(0.0, 1.0);
                return (w, one_minus_w_sq);
            }
        }
    }
}

/// Writes a vMF(μ, κ) draw scaled to `radius` into `out`.
///
/// `mu` is a unit vector; `scratch` has the same length and is overwritten.
#[inline]
pub(crate) fn sample_vmf_into<R: Rng + ?Sized>(
    w_law: &VmfW,
    rng: &mut R,
    mu: &[f64],
    radius: f64,
    scratch: &mut [f64],
    out: &mut [f64],
) {
    let (w, one_minus_w_sq) = w_law.sample(rng);
    // A uniform unit tangent vector v ⟂ μ: Gaussian, remove the μ-component, normalise.
    let v = scratch;
    let norm = loop {
        let mut dot = 0.0;
        for (vi, &mi) in v.iter_mut().zip(mu) {
            let g: f64 = StandardNormal.sample(rng);
            *vi = g;
            dot += g * mi;
        }
        let mut sq = 0.0;
        for (vi, &mi) in v.iter_mut().zip(mu) {
            *vi -= dot * mi;
            sq += *vi * *vi;
        }
        // Zero only in measure-zero cases (and never for n ≥ 2 in practice): redraw.
        if sq > 0.0 {
            break sq.sqrt();
        }
    };
    let a = radius * w;
    let c = radius * one_minus_w_sq.sqrt() / norm;
    for ((o, &mi), &vi) in out.iter_mut().zip(mu).zip(v.iter()) {
        *o = a * mi + c * vi;
    }
}
