//! Sample moments against the reference values in `tests/fixtures/` (loaded at test time).
//!
//! Tolerance: every comparison is |sample mean − expected| < 5·SE, with SE = sd/√N estimated
//! from the same sample. For a single comparison a false alarm has probability ≈ 6e-7.

mod common;

use clica_core::RunSeed;
use clica_priors::{Conditional, LatentPrior, Marginal, Space};
use common::{assert_mean, conditional_around, fixture, num, prior};

const VMF_N: usize = 20_000;

/// E[μᵀx] of vMF(μ, κ) in dimension d is I_{d/2}(κ)/I_{d/2−1}(κ). The statistic is
/// cos = zᵀz̃/r² with uniform anchors z, at radius 1 and 3 (must not depend on the radius).
#[test]
fn vmf_mean_cosine_matches_fixture_at_every_radius() {
    let cases = fixture("vmf.json");
    for case in cases.as_array().expect("vmf.json is an array") {
        let dim = num(case, "dim") as usize;
        let kappa = num(case, "kappa");
        let expected = num(case, "mean_cosine");
        for r in [1.0, 3.0] {
            let p = prior(
                Space::Sphere { radius: r },
                dim,
                Marginal::Uniform,
                Conditional::VonMisesFisher { kappa },
            );
            let mut rng = RunSeed::new(10).stream(&format!("vmf-{dim}-{kappa}-{r}"));
            let z = p.marginal(&mut rng, VMF_N);
            let zt = p.conditional(&mut rng, z.view());
            let cos: Vec<f64> = z
                .rows()
                .into_iter()
                .zip(zt.rows())
                .map(|(a, b)| a.dot(&b) / (r * r))
                .collect();
            assert_mean(
                &format!("vMF d={dim} κ={kappa} r={r} mean cosine"),
                &cos,
                expected,
                5.0,
            );
        }
    }
}

/// The tangent part of a vMF draw around a fixed μ = r·e₁ is isotropic: the other coordinates
/// have mean 0 and all share the variance (r² − E[(μᵀz̃)²])/(n − 1).
#[test]
fn vmf_tangent_direction_is_isotropic() {
    let (n, r, kappa) = (6, 2.0, 3.0);
    let p = prior(
        Space::Sphere { radius: r },
        n,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa },
    );
    let mut anchor = vec![0.0; n];
    anchor[0] = r;
    let zt = conditional_around(&p, &anchor, 40_000, 11, "vmf-tangent");
    let w2: Vec<f64> = zt.column(0).iter().map(|v| v * v).collect();
    let (ew2, _) = common::mean_se(&w2);
    let expected_var = (r * r - ew2) / (n - 1) as f64;
    for j in 1..n {
        let col: Vec<f64> = zt.column(j).to_vec();
        assert_mean(&format!("tangent coordinate {j} mean"), &col, 0.0, 5.0);
        let sq: Vec<f64> = col.iter().map(|v| v * v).collect();
        assert_mean(
            &format!("tangent coordinate {j} variance"),
            &sq,
            expected_var,
            5.0,
        );
    }
}

/// For large κ, E[1 − μᵀx] = (n−1)/(2κ) + O(κ⁻²). Checks that the stable form of Wood's
/// algorithm is exact far in the concentrated regime (the O(κ⁻²) term is ≤ 1e-3 relative here,
/// far below the 5·SE ≈ 1e-2 relative tolerance).
#[test]
fn vmf_large_kappa_spread() {
    let n = 10;
    for kappa in [1e4, 1e8] {
        let p = prior(
            Space::Sphere { radius: 3.0 },
            n,
            Marginal::Uniform,
            Conditional::VonMisesFisher { kappa },
        );
        let mut rng = RunSeed::new(12).stream("vmf-large");
        let z = p.marginal(&mut rng, 20_000);
        let zt = p.conditional(&mut rng, z.view());
        // 1 − cos computed without cancellation: ‖z − z̃‖²/(2r²).
        let gap: Vec<f64> = z
            .rows()
            .into_iter()
            .zip(zt.rows())
            .map(|(a, b)| (&a - &b).mapv(|v| v * v).sum() / (2.0 * 9.0))
            .collect();
        let expected = (n - 1) as f64 / (2.0 * kappa);
        assert_mean(&format!("κ={kappa} E[1 − cos]"), &gap, expected, 5.0);
    }
}

/// Generalized normal with scale 0.05: variance and E|x| for β = 1, 2, 3, through the GenNorm
/// conditional of a 1-D unbounded prior around 0 and the GenNorm marginal (centred at 0);
/// β = 1 also through the Laplace law, β = 2 through the normal law with σ = λ/√2.
#[test]
fn gennorm_moments_match_fixture() {
    let cases = fixture("distributions.json");
    let mut seen = 0;
    for case in cases.as_array().expect("array") {
        if case["dist"] != "gennorm" {
            continue;
        }
        seen += 1;
        let (beta, scale) = (num(case, "beta"), num(case, "scale"));
        let (var, mean_abs) = (num(case, "variance"), num(case, "mean_abs"));
        let mut conds = vec![Conditional::GenNorm { beta, scale }];
        let mut margs = vec![Marginal::GenNorm { beta, scale }];
        if beta == 1.0 {
            conds.push(Conditional::Laplace { scale });
            margs.push(Marginal::Laplace { scale });
        }
        if beta == 2.0 {
            let sigma = scale / 2f64.sqrt();
            conds.push(Conditional::Normal { sigma });
            margs.push(Marginal::Normal { sigma });
        }
        let mut samples = Vec::new();
        for c in conds {
            let p = prior(Space::Unbounded, 1, Marginal::Normal { sigma: 1.0 }, c);
            let x = conditional_around(&p, &[0.0], 40_000, 13, "gennorm-cond");
            samples.push((format!("{c:?}"), x.column(0).to_vec()));
        }
        for m in margs {
            let p = prior(Space::Unbounded, 1, m, Conditional::Normal { sigma: 1.0 });
            let x = common::marginal(&p, 40_000, 14, "gennorm-marg");
            samples.push((format!("{m:?}"), x.column(0).to_vec()));
        }
        for (what, x) in samples {
            let sq: Vec<f64> = x.iter().map(|v| v * v).collect();
            let abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
            assert_mean(&format!("{what} variance"), &sq, var, 5.0);
            assert_mean(&format!("{what} mean |x|"), &abs, mean_abs, 5.0);
        }
    }
    assert_eq!(seen, 3, "expected three gennorm fixtures");
}

/// Truncated conditionals in the box [0, 1] around the anchor 0.02 (Normal σ = 0.05,
/// Laplace λ = 0.05): mean and variance. The variance is checked as the mean of (x − m)², with
/// m the fixture mean, within 5 SE of that statistic.
#[test]
fn truncated_box_conditionals_match_fixture() {
    let cases = fixture("distributions.json");
    let mut seen = 0;
    for case in cases.as_array().expect("array") {
        let cond = match case["dist"].as_str() {
            Some("normal_truncated") => Conditional::Normal {
                sigma: num(case, "sigma"),
            },
            Some("laplace_truncated") => Conditional::Laplace {
                scale: num(case, "scale"),
            },
            _ => continue,
        };
        seen += 1;
        let space = Space::Box {
            low: num(case, "low"),
            high: num(case, "high"),
        };
        let p = prior(space, 1, Marginal::Uniform, cond);
        let x = conditional_around(&p, &[num(case, "center")], 40_000, 15, "truncated");
        let x = x.column(0).to_vec();
        let mean = num(case, "mean");
        assert_mean(&format!("{cond:?} truncated mean"), &x, mean, 5.0);
        let dev: Vec<f64> = x.iter().map(|v| (v - mean) * (v - mean)).collect();
        assert_mean(
            &format!("{cond:?} truncated variance"),
            &dev,
            num(case, "variance"),
            5.0,
        );
    }
    assert_eq!(seen, 2, "expected two truncated fixtures");
}
