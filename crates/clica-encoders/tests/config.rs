//! Configuration: the paper architecture and validation errors.

use clica_core::{Error, RunSeed};
use clica_encoders::{AdamConfig, Backend, EncoderConfig, MlpEncoder, Normalization};

#[test]
fn paper_architecture() {
    let c = EncoderConfig::paper(10);
    assert_eq!(c.widths(), vec![10, 100, 500, 500, 500, 500, 100, 10]);
    assert_eq!(c.negative_slope, 0.01);
    assert_eq!(c.num_layers(), 7);
    assert_eq!(c.macs_per_row(), 852_000);
    assert_eq!(c.num_parameters(), 852_000 + 2_210);
    assert_eq!(
        c.clone()
            .with_normalization(Normalization::learnable_box())
            .num_parameters(),
        852_000 + 2_210 + 10
    );
    assert!(c.validate().is_ok());
}

fn invalid(c: EncoderConfig) -> String {
    let e = c.validate().unwrap_err();
    // MlpEncoder::new reports the same error.
    assert_eq!(
        MlpEncoder::new(c, &mut RunSeed::new(0).stream("encoder")).unwrap_err(),
        e
    );
    match e {
        Error::InvalidParameter { name, .. } => name,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn validation_names_the_bad_field() {
    let p = EncoderConfig::paper(3);
    assert_eq!(
        invalid(EncoderConfig {
            input_dim: 0,
            ..p.clone()
        }),
        "input_dim"
    );
    assert_eq!(
        invalid(EncoderConfig {
            output_dim: 0,
            ..p.clone()
        }),
        "output_dim"
    );
    assert_eq!(invalid(p.clone().with_hidden(vec![4, 0])), "hidden[1]");
    for s in [-0.1, 1.5, f64::NAN] {
        assert_eq!(
            invalid(EncoderConfig {
                negative_slope: s,
                ..p.clone()
            }),
            "negative_slope"
        );
    }
    assert_eq!(
        invalid(
            p.clone()
                .with_normalization(Normalization::Sphere { radius: 0.0 })
        ),
        "normalization.radius"
    );
    assert_eq!(
        invalid(
            p.clone()
                .with_normalization(Normalization::LearnableSphere {
                    init_radius: f64::INFINITY
                })
        ),
        "normalization.init_radius"
    );
    assert_eq!(
        invalid(
            p.clone()
                .with_normalization(Normalization::LearnableBox { init_bound: -1.0 })
        ),
        "normalization.init_bound"
    );
    let adam = |a: AdamConfig| EncoderConfig {
        adam: a,
        ..p.clone()
    };
    let d = AdamConfig::default();
    assert_eq!(invalid(adam(AdamConfig { beta1: 1.0, ..d })), "adam.beta1");
    assert_eq!(invalid(adam(AdamConfig { beta2: -0.1, ..d })), "adam.beta2");
    assert_eq!(invalid(adam(AdamConfig { eps: 0.0, ..d })), "adam.eps");
    // An empty hidden list is a valid linear encoder; slope 0 is a plain ReLU.
    assert!(p.clone().with_hidden(vec![]).validate().is_ok());
    assert!(EncoderConfig {
        negative_slope: 0.0,
        ..p
    }
    .validate()
    .is_ok());
}

#[test]
#[cfg(not(feature = "dfdx"))]
fn the_dfdx_backend_is_rejected_without_the_feature() {
    let c = EncoderConfig::paper(3).with_backend(Backend::Dfdx);
    let e = c.validate().unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("`dfdx` feature")),
        "{e:?}"
    );
    assert_eq!(
        MlpEncoder::new(c, &mut RunSeed::new(0).stream("encoder")).unwrap_err(),
        e
    );
    let native = MlpEncoder::new(
        EncoderConfig::paper(3),
        &mut RunSeed::new(0).stream("encoder"),
    )
    .unwrap();
    assert_eq!(native.to_backend(Backend::Dfdx).unwrap_err(), e);
}

#[test]
#[cfg(feature = "dfdx")]
fn the_dfdx_backend_is_accepted_with_the_feature() {
    let c = EncoderConfig::paper(3).with_backend(Backend::Dfdx);
    assert!(c.validate().is_ok());
    assert!(MlpEncoder::new(c, &mut RunSeed::new(0).stream("encoder")).is_ok());
}
