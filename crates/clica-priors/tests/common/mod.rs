//! Helpers shared by the statistical tests: fixtures, sample moments, the KS statistic.
#![allow(dead_code)]

use clica_core::RunSeed;
use clica_priors::{Conditional, LatentPrior, Marginal, Prior, Space};
use ndarray::Array2;

/// Loads `tests/fixtures/<name>` of the workspace.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// Field `key` of a fixture object as `f64`.
pub fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("fixture field `{key}` missing in {v}"))
}

/// Sample mean and its standard error sd/√N (sd with the N−1 denominator).
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Asserts |mean(xs) − expected| < k·SE (+ `slack` for known deterministic bias).
pub fn assert_mean(what: &str, xs: &[f64], expected: f64, k: f64) {
    let (m, se) = mean_se(xs);
    assert!(
        (m - expected).abs() < k * se,
        "{what}: sample mean {m} vs expected {expected}: |diff| = {} ≥ {k}·SE = {}",
        (m - expected).abs(),
        k * se
    );
}

/// One-sample Kolmogorov–Smirnov statistic D = sup |F_N − F| of `xs` against `cdf`.
pub fn ks_statistic(xs: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("finite samples"));
    let n = s.len() as f64;
    let mut d: f64 = 0.0;
    for (i, &x) in s.iter().enumerate() {
        let f = cdf(x);
        d = d.max(f - i as f64 / n).max((i + 1) as f64 / n - f);
    }
    d
}

/// Asymptotic KS critical value at α = 0.01: 1.63/√N.
pub fn ks_critical(n: usize) -> f64 {
    1.63 / (n as f64).sqrt()
}

/// Asserts the KS test does not reject at α = 0.01.
pub fn assert_ks(what: &str, xs: &[f64], cdf: impl Fn(f64) -> f64) {
    let d = ks_statistic(xs, cdf);
    let crit = ks_critical(xs.len());
    assert!(
        d < crit,
        "{what}: KS statistic {d} ≥ critical {crit} (α = 0.01, N = {})",
        xs.len()
    );
}

/// A tabulated CDF on [lo, hi] of the unnormalised density `f`, by cumulative Simpson's rule
/// on `m` intervals; evaluated by linear interpolation.
pub struct QuadCdf {
    lo: f64,
    h: f64,
    cum: Vec<f64>,
}

impl QuadCdf {
    pub fn new(lo: f64, hi: f64, m: usize, f: impl Fn(f64) -> f64) -> Self {
        let h = (hi - lo) / m as f64;
        let mut cum = Vec::with_capacity(m + 1);
        cum.push(0.0);
        let mut acc = 0.0;
        for i in 0..m {
            let a = lo + i as f64 * h;
            acc += h / 6.0 * (f(a) + 4.0 * f(a + 0.5 * h) + f(a + h));
            cum.push(acc);
        }
        let total = acc;
        for c in &mut cum {
            *c /= total;
        }
        QuadCdf { lo, h, cum }
    }

    pub fn cdf(&self, x: f64) -> f64 {
        let t = (x - self.lo) / self.h;
        if t <= 0.0 {
            return 0.0;
        }
        let i = t.floor() as usize;
        if i + 1 >= self.cum.len() {
            return 1.0;
        }
        let frac = t - i as f64;
        self.cum[i] + frac * (self.cum[i + 1] - self.cum[i])
    }
}

/// Builds a prior, panicking with the parameters on error.
pub fn prior(space: Space, dim: usize, m: Marginal, c: Conditional) -> Prior {
    Prior::new(space, dim, m, c).unwrap_or_else(|e| panic!("{space:?} {dim} {m:?} {c:?}: {e}"))
}

/// `k` conditional draws of a prior around the constant anchor `anchor` (one row).
pub fn conditional_around(
    p: &Prior,
    anchor: &[f64],
    k: usize,
    seed: u64,
    name: &str,
) -> Array2<f64> {
    let anchors = Array2::from_shape_fn((k, anchor.len()), |(_, j)| anchor[j]);
    let mut rng = RunSeed::new(seed).stream(name);
    p.conditional(&mut rng, anchors.view())
}

/// `k` marginal draws.
pub fn marginal(p: &impl LatentPrior, k: usize, seed: u64, name: &str) -> Array2<f64> {
    let mut rng = RunSeed::new(seed).stream(name);
    p.marginal(&mut rng, k)
}

/// Standard normal CDF.
pub fn phi(x: f64) -> f64 {
    0.5 * (1.0 + puruspe::erf(x / std::f64::consts::SQRT_2))
}

/// CDF of the Laplace law with density ∝ exp(−|x|/λ).
pub fn laplace_cdf(x: f64, scale: f64) -> f64 {
    if x < 0.0 {
        0.5 * (x / scale).exp()
    } else {
        1.0 - 0.5 * (-x / scale).exp()
    }
}

/// CDF of the generalized normal with density ∝ exp(−|x/λ|^β).
pub fn gennorm_cdf(x: f64, beta: f64, scale: f64) -> f64 {
    let p = puruspe::gammp(1.0 / beta, (x.abs() / scale).powf(beta));
    if x < 0.0 {
        0.5 - 0.5 * p
    } else {
        0.5 + 0.5 * p
    }
}
