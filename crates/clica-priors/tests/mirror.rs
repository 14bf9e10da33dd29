//! Antithetic positives: the mirror image (`LatentPrior::conditional_mirror`) of an exact
//! conditional draw must be an exact draw too. Each check compares the mirrored draws with
//! independent direct draws (two-sample Kolmogorov–Smirnov at α = 0.01, fixed seeds) or with
//! the noise law itself (one-sample), coordinate by coordinate around an anchor off the axes.

mod common;

use clica_core::{LatentPrior, Mirror, RunSeed};
use clica_priors::{Conditional, Marginal, Space};
use common::{assert_ks, conditional_around, laplace_cdf, prior};
use ndarray::Array2;

const N: usize = 20_000;

/// Two-sample KS statistic sup |F_a − F_b|.
fn ks2(a: &[f64], b: &[f64]) -> f64 {
    let sorted = |x: &[f64]| {
        let mut s = x.to_vec();
        s.sort_by(|p, q| p.partial_cmp(q).expect("finite"));
        s
    };
    let (a, b) = (sorted(a), sorted(b));
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let t = a[i].min(b[j]);
        while i < a.len() && a[i] <= t {
            i += 1;
        }
        while j < b.len() && b[j] <= t {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

fn mirrored(p: &dyn LatentPrior, anchor: &[f64], seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mirror = p.conditional_mirror().expect("this prior has a mirror");
    let anchors = Array2::from_shape_fn((N, anchor.len()), |(_, j)| anchor[j]);
    let draws = p.conditional(&mut RunSeed::new(seed).stream("mirror"), anchors.view());
    let mut out = Array2::zeros(draws.raw_dim());
    mirror.apply(anchors.view(), draws.view(), out.view_mut());
    (draws, out)
}

/// Every coordinate of the mirrored draws has the law of independent direct draws.
fn assert_same_law(what: &str, p: &clica_priors::Prior, anchor: &[f64], seed: u64) {
    let (draws, mirror) = mirrored(p, anchor, seed);
    let direct = conditional_around(p, anchor, N, seed + 1000, "mirror-direct");
    let crit = 1.63 * (2.0 / N as f64).sqrt();
    for j in 0..anchor.len() {
        let d = ks2(&mirror.column(j).to_vec(), &direct.column(j).to_vec());
        assert!(d < crit, "{what}, coordinate {j}: D = {d} ≥ {crit}");
    }
    // Not the identity: the mirrored draws are other points.
    assert!(draws.iter().zip(mirror.iter()).any(|(a, b)| a != b));
}

#[test]
fn vmf_mirrored_draws_are_vmf_draws() {
    for (r, kappa, anchor) in [
        (1.0, 1.0, vec![0.6, -0.8, 0.0]),
        (2.5, 4.0, vec![1.0, 2.0, -1.0, 0.5, 1.5]),
    ] {
        let n = anchor.len();
        let norm = anchor.iter().map(|v: &f64| v * v).sum::<f64>().sqrt();
        let anchor: Vec<f64> = anchor.iter().map(|v| v * r / norm).collect();
        let p = prior(
            Space::Sphere { radius: r },
            n,
            Marginal::Uniform,
            Conditional::VonMisesFisher { kappa },
        );
        assert_eq!(p.conditional_mirror(), Some(Mirror::Axis));
        assert_same_law(&format!("vMF(κ = {kappa}), r = {r}"), &p, &anchor, 31);
    }
}

#[test]
fn projected_normal_mirrored_draws_are_projected_normal_draws() {
    let r = 2.0;
    let anchor = [1.2, 0.0, -1.6, 0.0];
    let p = prior(
        Space::Sphere { radius: r },
        4,
        Marginal::Uniform,
        Conditional::Normal { sigma: 0.8 },
    );
    assert_eq!(p.conditional_mirror(), Some(Mirror::Axis));
    assert_same_law("sphere, projected Normal(0.8)", &p, &anchor, 32);
}

#[test]
fn unbounded_mirrored_offsets_follow_the_noise_law() {
    let (anchor, scale) = (0.3, 0.4);
    let p = prior(
        Space::Unbounded,
        1,
        Marginal::Normal { sigma: 1.0 },
        Conditional::Laplace { scale },
    );
    assert_eq!(p.conditional_mirror(), Some(Mirror::Point));
    let (draws, mirror) = mirrored(&p, &[anchor], 33);
    let offsets: Vec<f64> = mirror.column(0).iter().map(|v| v - anchor).collect();
    assert_ks("mirrored Laplace offsets", &offsets, |t| {
        laplace_cdf(t, scale)
    });
    // Each mirrored offset is the negated drawn one.
    for (d, m) in draws.column(0).iter().zip(mirror.column(0)) {
        assert!(((d - anchor) + (m - anchor)).abs() < 1e-12);
    }
}

#[test]
fn conditionals_without_a_law_preserving_reflection_have_no_mirror() {
    for (space, c) in [
        (
            Space::Box {
                low: 0.0,
                high: 1.0,
            },
            Conditional::Normal { sigma: 0.1 },
        ),
        (
            Space::Box {
                low: 0.0,
                high: 1.0,
            },
            Conditional::Laplace { scale: 0.1 },
        ),
        (
            Space::Sphere { radius: 1.0 },
            Conditional::Laplace { scale: 0.1 },
        ),
        (
            Space::Sphere { radius: 1.0 },
            Conditional::GenNorm {
                beta: 3.0,
                scale: 0.1,
            },
        ),
    ] {
        let p = prior(space, 3, Marginal::Uniform, c);
        assert_eq!(p.conditional_mirror(), None, "{space:?} {c:?}");
    }
}
