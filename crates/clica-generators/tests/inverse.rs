//! g⁻¹(g(z)) = z for every invertible activation, several dimensions and depths.

mod common;

use clica_core::{Generator, RunSeed};
use clica_generators::{Activation, Error, InvertibleMlp, MlpConfig};
use common::{max_abs_diff, normal_batch, uniform_batch};
use ndarray::{array, Array2};

const INVERTIBLE: [Activation; 4] = [
    Activation::LeakyRelu { slope: 0.2 },
    Activation::Elu,
    Activation::Softplus,
    Activation::SmoothLeakyRelu,
];

fn build(dim: usize, layers: usize, act: Activation, seed: u64) -> InvertibleMlp {
    let config = MlpConfig::new(dim)
        .with_layers(layers)
        .with_activation(act)
        .with_cond_pool_size(50);
    InvertibleMlp::build(&config, &mut RunSeed::new(seed).stream("generator")).unwrap()
}

/// Pool size for the round-trip test: large enough that the weights are as well conditioned
/// as the paper intends (the round-trip error grows with the product of the layers'
/// condition numbers), small enough to keep the test fast.
const ROUND_TRIP_POOL: usize = 1000;

#[test]
fn inverse_recovers_latents() {
    let mut worst = 0.0f64;
    for dim in [2, 10, 40] {
        // One 5-layer build per dimension; shallower networks use its first layers, other
        // activations the same weights.
        let config = MlpConfig::new(dim)
            .with_layers(5)
            .with_cond_pool_size(ROUND_TRIP_POOL);
        let full = InvertibleMlp::build(&config, &mut RunSeed::new(7).stream("generator")).unwrap();
        for act in INVERTIBLE {
            for layers in [1, 3, 5] {
                let g =
                    InvertibleMlp::from_weights(full.weights()[..layers].to_vec(), act).unwrap();
                for (name, z) in [
                    ("normal", normal_batch(512, dim, "z.normal")),
                    ("uniform", uniform_batch(512, dim, "z.uniform")),
                ] {
                    let x = g.forward(z.view());
                    assert_eq!(x.dim(), (512, dim));
                    let back = g.inverse(x.view()).unwrap();
                    let err = max_abs_diff(&back, &z);
                    worst = worst.max(err);
                    assert!(
                        err < 1e-10,
                        "{act}, n={dim}, L={layers}, {name} z: max abs error {err:e}"
                    );
                }
            }
        }
    }
    eprintln!("worst round-trip error {worst:e}");
}

#[test]
fn built_networks_of_every_activation_invert() {
    // Full builds (not via from_weights) with a small pool, one per activation.
    for act in INVERTIBLE {
        let g = build(6, 3, act, 11);
        assert_eq!(g.activation(), act);
        let z = normal_batch(64, 6, "built");
        let back = g.inverse(g.forward(z.view()).view()).unwrap();
        assert!(max_abs_diff(&back, &z) < 1e-10, "{act}");
    }
}

#[test]
fn forward_matches_the_layer_formula() {
    // x = W2 · act(W1 · z), written out by hand.
    let w1 = array![[2.0, 1.0], [0.5, -1.0]];
    let w2 = array![[1.0, -3.0], [0.0, 1.0]];
    let g =
        InvertibleMlp::from_weights(vec![w1.clone(), w2.clone()], Activation::default()).unwrap();
    let z = array![[1.0, -4.0], [0.25, 0.5]];
    let x = g.forward(z.view());
    for r in 0..2 {
        let zr = z.row(r);
        let h: Vec<f64> = (0..2)
            .map(|i| {
                let a = w1[(i, 0)] * zr[0] + w1[(i, 1)] * zr[1];
                if a >= 0.0 {
                    a
                } else {
                    0.2 * a
                }
            })
            .collect();
        for i in 0..2 {
            let want = w2[(i, 0)] * h[0] + w2[(i, 1)] * h[1];
            assert!((x[(r, i)] - want).abs() < 1e-14);
        }
    }
    // The Generator trait face agrees.
    let dyn_g: &dyn Generator = &g;
    assert_eq!(dyn_g.forward(z.view()), x);
    assert_eq!((dyn_g.input_dim(), dyn_g.output_dim()), (2, 2));
    assert_eq!(dyn_g.fingerprint(), g.fingerprint());
    let back = g.inverse(x.view()).unwrap();
    assert!(max_abs_diff(&back, &z) < 1e-14);
}

#[test]
fn relu_network_cannot_be_inverted() {
    let g = build(3, 2, Activation::Relu, 1);
    assert!(!g.is_invertible());
    let x = g.forward(normal_batch(4, 3, "relu").view());
    assert!(matches!(g.inverse(x.view()), Err(Error::Unsupported(_))));
}

#[test]
fn inverse_rejects_bad_input() {
    let g = build(3, 2, Activation::default(), 1);
    let wrong = Array2::<f64>::zeros((4, 2));
    assert!(matches!(g.inverse(wrong.view()), Err(Error::Shape(_))));
    let mut nan = Array2::<f64>::zeros((4, 3));
    nan[(2, 1)] = f64::NAN;
    assert!(matches!(
        g.inverse(nan.view()),
        Err(Error::NonFinite { .. })
    ));
    // A point outside the range of an ELU network (pre-activations ≤ −1) errors.
    let e =
        InvertibleMlp::from_weights(vec![Array2::eye(2), Array2::eye(2)], Activation::Elu).unwrap();
    let x = array![[-2.0, 0.0]];
    assert!(matches!(e.inverse(x.view()), Err(Error::Numerical(_))));
}

#[test]
#[should_panic(expected = "columns")]
fn forward_panics_on_wrong_width() {
    let g = build(3, 1, Activation::default(), 1);
    let _ = g.forward(Array2::<f64>::zeros((2, 4)).view());
}

#[test]
fn from_weights_validates() {
    let act = Activation::default();
    assert!(InvertibleMlp::from_weights(vec![], act).is_err());
    let rect = Array2::<f64>::zeros((2, 3));
    assert!(matches!(
        InvertibleMlp::from_weights(vec![rect], act),
        Err(Error::Shape(_))
    ));
    let mixed = vec![Array2::<f64>::eye(2), Array2::<f64>::eye(3)];
    assert!(matches!(
        InvertibleMlp::from_weights(mixed, act),
        Err(Error::Shape(_))
    ));
    let singular = array![[1.0, 2.0], [2.0, 4.0]];
    assert!(matches!(
        InvertibleMlp::from_weights(vec![singular], act),
        Err(Error::Numerical(_))
    ));
    let inf = array![[1.0, f64::INFINITY], [0.0, 1.0]];
    assert!(matches!(
        InvertibleMlp::from_weights(vec![inf], act),
        Err(Error::NonFinite { .. })
    ));
    assert!(InvertibleMlp::from_weights(
        vec![Array2::eye(2)],
        Activation::LeakyRelu { slope: 0.0 }
    )
    .is_err());

    // Rebuilding from a built network's weights gives the same function and fingerprint.
    let g = build(5, 3, Activation::SmoothLeakyRelu, 3);
    let h = InvertibleMlp::from_weights(g.weights().to_vec(), g.activation()).unwrap();
    assert_eq!(h.fingerprint(), g.fingerprint());
    let z = normal_batch(16, 5, "rebuild");
    assert_eq!(h.forward(z.view()), g.forward(z.view()));
    assert_eq!(h.config().layers, 3);
    assert_eq!(h.cond_threshold(), None);
}
