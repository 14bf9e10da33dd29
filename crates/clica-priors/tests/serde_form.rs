//! The serialised form of the parameters (feature `serde`): tables tagged by `kind`, every
//! field defaulted, unknown fields rejected.
#![cfg(feature = "serde")]

use clica_priors::{Conditional, Marginal, Space};
use serde_json::{from_str, json, to_value};

#[test]
fn every_variant_round_trips_under_its_kind() {
    let spaces = [
        (
            Space::Sphere { radius: 2.0 },
            json!({"kind": "sphere", "radius": 2.0}),
        ),
        (
            Space::Box {
                low: -1.0,
                high: 1.0,
            },
            json!({"kind": "box", "low": -1.0, "high": 1.0}),
        ),
        (Space::Unbounded, json!({"kind": "unbounded"})),
    ];
    for (v, j) in spaces {
        assert_eq!(to_value(v).unwrap(), j);
        assert_eq!(serde_json::from_value::<Space>(j).unwrap(), v);
    }
    let marginals = [
        (Marginal::Uniform, json!({"kind": "uniform"})),
        (
            Marginal::Normal { sigma: 0.5 },
            json!({"kind": "normal", "sigma": 0.5}),
        ),
        (
            Marginal::Laplace { scale: 0.5 },
            json!({"kind": "laplace", "scale": 0.5}),
        ),
        (
            Marginal::GenNorm {
                beta: 2.0,
                scale: 0.5,
            },
            json!({"kind": "gennorm", "beta": 2.0, "scale": 0.5}),
        ),
    ];
    for (v, j) in marginals {
        assert_eq!(to_value(v).unwrap(), j);
        assert_eq!(serde_json::from_value::<Marginal>(j).unwrap(), v);
    }
    let conditionals = [
        (
            Conditional::VonMisesFisher { kappa: 10.0 },
            json!({"kind": "vmf", "kappa": 10.0}),
        ),
        (
            Conditional::Normal { sigma: 0.05 },
            json!({"kind": "normal", "sigma": 0.05}),
        ),
        (
            Conditional::Laplace { scale: 0.05 },
            json!({"kind": "laplace", "scale": 0.05}),
        ),
        (
            Conditional::GenNorm {
                beta: 3.0,
                scale: 0.05,
            },
            json!({"kind": "gennorm", "beta": 3.0, "scale": 0.05}),
        ),
    ];
    for (v, j) in conditionals {
        assert_eq!(to_value(v).unwrap(), j);
        assert_eq!(serde_json::from_value::<Conditional>(j).unwrap(), v);
    }
}

#[test]
fn missing_fields_take_their_defaults() {
    assert_eq!(
        from_str::<Space>(r#"{"kind": "sphere"}"#).unwrap(),
        Space::Sphere { radius: 1.0 }
    );
    assert_eq!(
        from_str::<Space>(r#"{"kind": "box", "high": 2}"#).unwrap(),
        Space::Box {
            low: 0.0,
            high: 2.0
        }
    );
    assert_eq!(
        from_str::<Marginal>(r#"{"kind": "gennorm"}"#).unwrap(),
        Marginal::GenNorm {
            beta: 3.0,
            scale: 1.0
        }
    );
    assert_eq!(
        from_str::<Conditional>(r#"{"kind": "vmf"}"#).unwrap(),
        Conditional::VonMisesFisher { kappa: 1.0 }
    );
    assert_eq!(
        from_str::<Conditional>(r#"{"kind": "laplace"}"#).unwrap(),
        Conditional::Laplace { scale: 1.0 }
    );
}

#[test]
fn unknown_kinds_and_fields_are_rejected_by_name() {
    let e = from_str::<Space>(r#"{"kind": "moon"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("moon"), "{e}");
    let e = from_str::<Space>(r#"{"kind": "sphere", "low": 0}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("low"), "{e}");
    let e = from_str::<Conditional>(r#"{"kind": "vmf", "concentration": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("concentration"), "{e}");
    assert!(
        from_str::<Marginal>(r#"{"sigma": 1}"#).is_err(),
        "kind is required"
    );
}
