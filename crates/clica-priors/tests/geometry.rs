//! Support of the samples (sphere norms, box bounds), finiteness for extreme κ, the moments of
//! the uniform sphere marginal, and the product prior's column layout.

mod common;

use clica_core::RunSeed;
use clica_priors::{Conditional, LatentPrior, Marginal, Prior, ProductPrior, Space};
use common::{assert_mean, prior};
use ndarray::{s, Array2, ShapeBuilder};

const MARGINALS: [Marginal; 4] = [
    Marginal::Uniform,
    Marginal::Normal { sigma: 1.0 },
    Marginal::Laplace { scale: 0.5 },
    Marginal::GenNorm {
        beta: 3.0,
        scale: 0.3,
    },
];

const ADDITIVE: [Conditional; 3] = [
    Conditional::Normal { sigma: 0.05 },
    Conditional::Laplace { scale: 0.05 },
    Conditional::GenNorm {
        beta: 3.0,
        scale: 0.05,
    },
];

fn check_norms(z: &Array2<f64>, r: f64, what: &str) {
    for row in z.rows() {
        let norm = row.dot(&row).sqrt();
        assert!(
            ((norm - r) / r).abs() < 1e-12,
            "{what}: norm {norm} differs from radius {r}"
        );
    }
}

#[test]
fn sphere_samples_have_norm_r_for_every_combination() {
    let mut conds = ADDITIVE.to_vec();
    conds.push(Conditional::VonMisesFisher { kappa: 5.0 });
    conds.push(Conditional::Normal { sigma: 10.0 });
    for r in [0.5, 1.0, 3.0] {
        for n in [2, 5] {
            for m in MARGINALS {
                for &c in &conds {
                    let p = prior(Space::Sphere { radius: r }, n, m, c);
                    let what = p.describe();
                    let mut rng = RunSeed::new(1).stream("norms");
                    let z = p.marginal(&mut rng, 300);
                    check_norms(&z, r, &what);
                    let zt = p.conditional(&mut rng, z.view());
                    check_norms(&zt, r, &what);
                }
            }
        }
    }
}

#[test]
fn box_samples_stay_inside_for_every_combination() {
    // A box narrower than the marginals' spread (and off-centre) exercises the rejection.
    for (low, high) in [(-0.3, 0.2), (0.0, 1.0)] {
        for m in MARGINALS {
            let mut conds = ADDITIVE.to_vec();
            conds.push(Conditional::Laplace { scale: 0.5 });
            for c in conds {
                let p = prior(Space::Box { low, high }, 4, m, c);
                let mut rng = RunSeed::new(2).stream("box");
                let z = p.marginal(&mut rng, 600);
                let zt = p.conditional(&mut rng, z.view());
                for v in z.iter().chain(zt.iter()) {
                    assert!(
                        (low..=high).contains(v),
                        "{}: sample {v} outside [{low}, {high}]",
                        p.describe()
                    );
                }
            }
        }
    }
}

#[test]
fn unbounded_outputs_are_finite_and_centred() {
    for m in &MARGINALS[1..] {
        let p = prior(Space::Unbounded, 3, *m, Conditional::Laplace { scale: 1.0 });
        let z = common::marginal(&p, 4000, 3, "unbounded");
        assert!(z.iter().all(|v| v.is_finite()));
        for j in 0..3 {
            let col: Vec<f64> = z.column(j).to_vec();
            assert_mean(&format!("{} column {j}", p.describe()), &col, 0.0, 5.0);
        }
    }
}

#[test]
fn vmf_is_finite_for_extreme_kappa() {
    for n in [2, 3, 10, 50] {
        for kappa in [1e-12, 1e-3, 1e4, 1e8, 1e12, 1e100, 1e300, f64::MAX] {
            for r in [0.5, 3.0] {
                let p = prior(
                    Space::Sphere { radius: r },
                    n,
                    Marginal::Uniform,
                    Conditional::VonMisesFisher { kappa },
                );
                let mut rng = RunSeed::new(4).stream("extreme");
                let z = p.marginal(&mut rng, 300);
                let zt = p.conditional(&mut rng, z.view());
                assert!(
                    zt.iter().all(|v| v.is_finite()),
                    "n={n} kappa={kappa}: non-finite"
                );
                check_norms(&zt, r, &format!("n={n} kappa={kappa}"));
                if kappa >= 1e12 {
                    // Angular spread ~ sqrt((n−1)/κ): the positive is the anchor to ~1e-5.
                    let d = (&zt - &z).iter().fold(0.0f64, |a, v| a.max(v.abs()));
                    assert!(d < 1e-4 * r, "n={n} kappa={kappa}: max deviation {d}");
                }
            }
        }
    }
}

/// Uniform on the sphere of radius r in ℝⁿ: E[z] = 0 and E[z zᵀ] = r²/n·I. Each entry is
/// checked within 5 standard errors computed from the sample (28 checks; a false alarm has
/// probability < 1e-5).
#[test]
fn uniform_sphere_marginal_moments() {
    let (n, k) = (4, 40_000);
    for r in [0.5, 3.0] {
        let p = prior(
            Space::Sphere { radius: r },
            n,
            Marginal::Uniform,
            Conditional::VonMisesFisher { kappa: 1.0 },
        );
        let z = common::marginal(&p, k, 5, "uniform-sphere");
        for i in 0..n {
            let zi: Vec<f64> = z.column(i).to_vec();
            assert_mean(&format!("r={r} E[z_{i}]"), &zi, 0.0, 5.0);
            for j in i..n {
                let prod: Vec<f64> = z
                    .column(i)
                    .iter()
                    .zip(z.column(j))
                    .map(|(a, b)| a * b)
                    .collect();
                let expected = if i == j { r * r / n as f64 } else { 0.0 };
                assert_mean(&format!("r={r} E[z_{i} z_{j}]"), &prod, expected, 5.0);
            }
        }
    }
}

#[test]
fn product_prior_concatenates_parts() {
    let sphere = prior(
        Space::Sphere { radius: 2.0 },
        3,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 10.0 },
    );
    let boxp = prior(
        Space::Box {
            low: -1.0,
            high: 0.5,
        },
        2,
        Marginal::Uniform,
        Conditional::Laplace { scale: 0.1 },
    );
    let prod = ProductPrior::new(vec![sphere.clone(), boxp]).unwrap();
    assert_eq!(prod.dim(), 5);
    assert_eq!(prod.columns(0), 0..3);
    assert_eq!(prod.columns(1), 3..5);
    assert!(prod.describe().starts_with("product["));
    let mut rng = RunSeed::new(6).stream("product");
    let z = prod.marginal(&mut rng, 700);
    let zt = prod.conditional(&mut rng, z.view());
    for a in [&z, &zt] {
        check_norms(
            &a.slice(s![.., 0..3]).to_owned(),
            2.0,
            "product sphere part",
        );
        assert!(a
            .slice(s![.., 3..5])
            .iter()
            .all(|v| (-1.0..=0.5).contains(v)));
    }

    // A one-part product samples exactly like its part.
    let single = ProductPrior::new(vec![sphere.clone()]).unwrap();
    let a = common::marginal(&single, 500, 7, "single");
    let b = common::marginal(&sphere, 500, 7, "single");
    assert_eq!(a, b);
}

#[test]
fn writes_into_strided_views() {
    // The caller's buffer may be a column block of a wider array.
    let p = prior(
        Space::Sphere { radius: 1.5 },
        3,
        Marginal::Laplace { scale: 0.2 },
        Conditional::Normal { sigma: 0.1 },
    );
    let mut big = Array2::<f64>::from_elem((600, 7), f64::NAN);
    let mut rng = RunSeed::new(8).stream("strided");
    p.sample_marginal(&mut rng, big.slice_mut(s![.., 2..5]));
    check_norms(&big.slice(s![.., 2..5]).to_owned(), 1.5, "strided");
    assert!(big.slice(s![.., 0..2]).iter().all(|v| v.is_nan()));
    assert!(big.slice(s![.., 5..7]).iter().all(|v| v.is_nan()));
    // Column-major output buffer.
    let mut fortran = Array2::<f64>::zeros((600, 3).f());
    let anchors = big.slice(s![.., 2..5]).to_owned();
    p.sample_conditional(&mut rng, anchors.view(), fortran.view_mut());
    check_norms(&fortran, 1.5, "column-major");
}

#[test]
#[should_panic(expected = "columns")]
fn marginal_panics_on_wrong_width() {
    let p = prior(
        Space::Box {
            low: 0.0,
            high: 1.0,
        },
        3,
        Marginal::Uniform,
        Conditional::Normal { sigma: 0.1 },
    );
    let mut out = Array2::zeros((10, 2));
    p.sample_marginal(&mut RunSeed::new(0).stream("x"), out.view_mut());
}

#[test]
#[should_panic(expected = "differ in shape")]
fn conditional_panics_on_row_mismatch() {
    let p = prior(
        Space::Box {
            low: 0.0,
            high: 1.0,
        },
        3,
        Marginal::Uniform,
        Conditional::Normal { sigma: 0.1 },
    );
    let anchors = Array2::from_elem((10, 3), 0.5);
    let mut out = Array2::zeros((9, 3));
    p.sample_conditional(
        &mut RunSeed::new(0).stream("x"),
        anchors.view(),
        out.view_mut(),
    );
}

#[test]
#[should_panic(expected = "outside the box")]
fn box_conditional_panics_on_anchor_outside() {
    let p = prior(
        Space::Box {
            low: 0.0,
            high: 1.0,
        },
        2,
        Marginal::Uniform,
        Conditional::Normal { sigma: 0.1 },
    );
    let anchors = Array2::from_elem((4, 2), 1.5);
    p.conditional(&mut RunSeed::new(0).stream("x"), anchors.view());
}

#[test]
fn empty_batches_are_fine() {
    let p: Prior = prior(
        Space::Unbounded,
        2,
        Marginal::Normal { sigma: 1.0 },
        Conditional::Normal { sigma: 1.0 },
    );
    let z = common::marginal(&p, 0, 0, "empty");
    assert_eq!(z.dim(), (0, 2));
    let zt = p.conditional(&mut RunSeed::new(0).stream("e"), z.view());
    assert_eq!(zt.dim(), (0, 2));
}
