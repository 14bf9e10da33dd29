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

/// Antithetic anchors: the prior's anchor reflection r must keep the marginal
/// (r(z) for z ~ p(z) has the law of direct draws) and commute with the conditional
/// (r(z̃) for z̃ ~ p(· | a) has the law of direct draws around r(a)). Checked for every space,
/// a uniform and a non-uniform marginal, and every conditional law, coordinate by coordinate
/// with a two-sample KS test at α = 0.01 against independent direct draws.
#[test]
fn reflected_anchors_and_positives_are_exact_draws() {
    let sphere = Space::Sphere { radius: 1.5 };
    let boxed = Space::Box {
        low: -1.0,
        high: 3.0,
    };
    let conditionals = [
        Conditional::Normal { sigma: 0.7 },
        Conditional::Laplace { scale: 0.5 },
        Conditional::GenNorm {
            beta: 3.0,
            scale: 0.6,
        },
    ];
    let mut cases = vec![(
        sphere,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 2.0 },
    )];
    for c in conditionals {
        cases.push((sphere, Marginal::Uniform, c));
        cases.push((sphere, Marginal::Normal { sigma: 0.8 }, c));
        cases.push((boxed, Marginal::Uniform, c));
        cases.push((boxed, Marginal::Laplace { scale: 1.0 }, c));
        cases.push((Space::Unbounded, Marginal::Normal { sigma: 1.0 }, c));
        cases.push((
            Space::Unbounded,
            Marginal::GenNorm {
                beta: 1.5,
                scale: 1.0,
            },
            c,
        ));
    }
    cases.push((
        sphere,
        Marginal::Normal { sigma: 0.8 },
        Conditional::VonMisesFisher { kappa: 2.0 },
    ));
    let crit = 1.63 * (2.0 / N as f64).sqrt();
    for (i, (space, m, c)) in cases.into_iter().enumerate() {
        let what = format!("{space:?}, {m:?}, {c:?}");
        let p = prior(space, 3, m, c);
        let r = p.anchor_reflection().expect("every prior here has one");
        let seed = 100 + 10 * i as u64;
        // The marginal.
        let z = p.marginal(&mut RunSeed::new(seed).stream("anchors"), N);
        let mut rz = Array2::zeros(z.raw_dim());
        r.apply(z.view(), rz.view_mut());
        let direct = p.marginal(&mut RunSeed::new(seed + 1).stream("anchors-direct"), N);
        for j in 0..3 {
            let d = ks2(&rz.column(j).to_vec(), &direct.column(j).to_vec());
            assert!(
                d < crit,
                "{what}: marginal, coordinate {j}: D = {d} ≥ {crit}"
            );
        }
        assert!(
            z.iter().zip(rz.iter()).any(|(a, b)| a != b),
            "{what}: r is the identity"
        );
        // The conditional, around an anchor off the axes (z[0] is a marginal draw).
        let a = z.row(0).to_vec();
        let mut ra = Array2::zeros((1, 3));
        r.apply(z.slice(ndarray::s![..1, ..]), ra.view_mut());
        let ra = ra.row(0).to_vec();
        let draws = conditional_around(&p, &a, N, seed + 2, "positives");
        let mut reflected = Array2::zeros(draws.raw_dim());
        r.apply(draws.view(), reflected.view_mut());
        let direct = conditional_around(&p, &ra, N, seed + 3, "positives-direct");
        for j in 0..3 {
            let d = ks2(&reflected.column(j).to_vec(), &direct.column(j).to_vec());
            assert!(
                d < crit,
                "{what}: conditional, coordinate {j}: D = {d} ≥ {crit}"
            );
        }
    }
}

/// The check above can fail: a reflection that does not keep the law is caught. On the
/// sphere with a marginal centred at r·e₁, the point reflection z ↦ −z moves the mass to
/// −r·e₁.
#[test]
fn a_wrong_anchor_reflection_is_caught() {
    let p = prior(
        Space::Sphere { radius: 1.0 },
        3,
        Marginal::Normal { sigma: 0.8 },
        Conditional::VonMisesFisher { kappa: 2.0 },
    );
    let z = p.marginal(&mut RunSeed::new(5).stream("anchors"), N);
    let mut rz = Array2::zeros(z.raw_dim());
    clica_core::Reflection::through(vec![0.0; 3]).apply(z.view(), rz.view_mut());
    let direct = p.marginal(&mut RunSeed::new(6).stream("anchors-direct"), N);
    let d = ks2(&rz.column(0).to_vec(), &direct.column(0).to_vec());
    assert!(d > 1.63 * (2.0 / N as f64).sqrt(), "D = {d}");
}
