//! Every invalid parameter is an `Error::InvalidParameter` naming the parameter, never a panic.

use clica_priors::{Conditional, Error, Marginal, Prior, ProductPrior, Space};

const SPHERE: Space = Space::Sphere { radius: 1.0 };
const BOX: Space = Space::Box {
    low: 0.0,
    high: 1.0,
};
const UNIFORM: Marginal = Marginal::Uniform;
const NORMAL_C: Conditional = Conditional::Normal { sigma: 0.1 };

fn expect_param(r: clica_priors::Result<Prior>, name: &str) {
    match r {
        Err(Error::InvalidParameter { name: n, reason }) => {
            assert_eq!(n, name, "wrong parameter named (reason: {reason})");
            assert!(!reason.is_empty());
        }
        other => panic!("expected InvalidParameter({name}), got {other:?}"),
    }
}

const BAD: [f64; 5] = [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

#[test]
fn dimension() {
    expect_param(Prior::new(BOX, 0, UNIFORM, NORMAL_C), "dim");
    expect_param(
        Prior::new(
            Space::Unbounded,
            0,
            Marginal::Normal { sigma: 1.0 },
            NORMAL_C,
        ),
        "dim",
    );
    expect_param(Prior::new(SPHERE, 0, UNIFORM, NORMAL_C), "dim");
    expect_param(Prior::new(SPHERE, 1, UNIFORM, NORMAL_C), "dim");
    assert!(Prior::new(SPHERE, 2, UNIFORM, NORMAL_C).is_ok());
    assert!(Prior::new(BOX, 1, UNIFORM, NORMAL_C).is_ok());
}

#[test]
fn radius() {
    for r in BAD {
        expect_param(
            Prior::new(Space::Sphere { radius: r }, 3, UNIFORM, NORMAL_C),
            "radius",
        );
    }
}

#[test]
fn box_bounds() {
    let b = |low, high| Space::Box { low, high };
    expect_param(Prior::new(b(f64::NAN, 1.0), 2, UNIFORM, NORMAL_C), "low");
    expect_param(
        Prior::new(b(f64::NEG_INFINITY, 1.0), 2, UNIFORM, NORMAL_C),
        "low",
    );
    expect_param(
        Prior::new(b(0.0, f64::INFINITY), 2, UNIFORM, NORMAL_C),
        "high",
    );
    expect_param(Prior::new(b(0.0, f64::NAN), 2, UNIFORM, NORMAL_C), "high");
    expect_param(Prior::new(b(1.0, 1.0), 2, UNIFORM, NORMAL_C), "high");
    expect_param(Prior::new(b(2.0, 1.0), 2, UNIFORM, NORMAL_C), "high");
    expect_param(
        Prior::new(b(-f64::MAX, f64::MAX), 2, UNIFORM, NORMAL_C),
        "high",
    );
}

#[test]
fn marginal_parameters() {
    for v in BAD {
        expect_param(
            Prior::new(BOX, 2, Marginal::Normal { sigma: v }, NORMAL_C),
            "marginal.sigma",
        );
        expect_param(
            Prior::new(BOX, 2, Marginal::Laplace { scale: v }, NORMAL_C),
            "marginal.scale",
        );
        expect_param(
            Prior::new(
                BOX,
                2,
                Marginal::GenNorm {
                    beta: v,
                    scale: 1.0,
                },
                NORMAL_C,
            ),
            "marginal.beta",
        );
        expect_param(
            Prior::new(
                BOX,
                2,
                Marginal::GenNorm {
                    beta: 2.0,
                    scale: v,
                },
                NORMAL_C,
            ),
            "marginal.scale",
        );
    }
    // Below the documented numerical floor for β.
    expect_param(
        Prior::new(
            BOX,
            2,
            Marginal::GenNorm {
                beta: 1e-3,
                scale: 1.0,
            },
            NORMAL_C,
        ),
        "marginal.beta",
    );
    expect_param(
        Prior::new(Space::Unbounded, 2, UNIFORM, NORMAL_C),
        "marginal",
    );
}

#[test]
fn conditional_parameters() {
    for v in BAD {
        expect_param(
            Prior::new(BOX, 2, UNIFORM, Conditional::Normal { sigma: v }),
            "conditional.sigma",
        );
        expect_param(
            Prior::new(BOX, 2, UNIFORM, Conditional::Laplace { scale: v }),
            "conditional.scale",
        );
        expect_param(
            Prior::new(
                BOX,
                2,
                UNIFORM,
                Conditional::GenNorm {
                    beta: v,
                    scale: 1.0,
                },
            ),
            "conditional.beta",
        );
        expect_param(
            Prior::new(
                BOX,
                2,
                UNIFORM,
                Conditional::GenNorm {
                    beta: 3.0,
                    scale: v,
                },
            ),
            "conditional.scale",
        );
        expect_param(
            Prior::new(SPHERE, 3, UNIFORM, Conditional::VonMisesFisher { kappa: v }),
            "conditional.kappa",
        );
    }
    let vmf = Conditional::VonMisesFisher { kappa: 1.0 };
    expect_param(Prior::new(BOX, 3, UNIFORM, vmf), "conditional");
    expect_param(
        Prior::new(Space::Unbounded, 3, Marginal::Normal { sigma: 1.0 }, vmf),
        "conditional",
    );
}

#[test]
fn empty_product() {
    match ProductPrior::new(vec![]) {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "parts"),
        other => panic!("expected InvalidParameter(parts), got {other:?}"),
    }
}

#[test]
fn messages_name_the_parameter() {
    let e = Prior::new(
        SPHERE,
        3,
        UNIFORM,
        Conditional::VonMisesFisher { kappa: -2.0 },
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("conditional.kappa") && msg.contains("-2"),
        "{msg}"
    );
}
