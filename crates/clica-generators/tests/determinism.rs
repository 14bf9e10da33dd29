//! Reproducibility: same seed ⇒ same network, independent of the number of threads, and a
//! pinned fingerprint that guards value stability across releases and platforms.

use clica_core::{Generator, RunSeed};
use clica_generators::{Activation, InvertibleMlp, MlpConfig};

fn small_config() -> MlpConfig {
    MlpConfig::new(10).with_layers(3).with_cond_pool_size(1000)
}

fn build(config: &MlpConfig, seed: u64) -> InvertibleMlp {
    InvertibleMlp::build(config, &mut RunSeed::new(seed).stream("generator")).unwrap()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn same_seed_same_network() {
    let config = small_config();
    let a = build(&config, 6);
    let b = build(&config, 6);
    assert_eq!(a.weights(), b.weights());
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint().hex(), b.fingerprint().hex());
    assert_eq!(a.cond_threshold(), b.cond_threshold());
    assert_eq!(a.candidates_drawn(), b.candidates_drawn());
}

#[test]
fn different_seed_or_structure_different_fingerprint() {
    let config = small_config();
    let a = build(&config, 6);
    let b = build(&config, 7);
    assert_ne!(a.weights(), b.weights());
    assert_ne!(a.fingerprint(), b.fingerprint());
    // Same weights, different activation: different fingerprint.
    let c = InvertibleMlp::from_weights(a.weights().to_vec(), Activation::Elu).unwrap();
    let d = InvertibleMlp::from_weights(a.weights().to_vec(), Activation::LeakyRelu { slope: 0.1 })
        .unwrap();
    assert_ne!(c.fingerprint(), a.fingerprint());
    assert_ne!(d.fingerprint(), a.fingerprint());
    // One bit of one weight changes the fingerprint.
    let mut w = a.weights().to_vec();
    w[2][(3, 4)] = f64::from_bits(w[2][(3, 4)].to_bits() ^ 1);
    let e = InvertibleMlp::from_weights(w, a.activation()).unwrap();
    assert_ne!(e.fingerprint(), a.fingerprint());
}

#[test]
fn independent_of_the_number_of_threads() {
    for config in [
        small_config(),
        MlpConfig::new(5)
            .with_layers(2)
            .with_cond_pool_size(700)
            .with_cond_ratio(0.3)
            .with_activation(Activation::SmoothLeakyRelu),
    ] {
        let one = in_pool(1, || build(&config, 21));
        let two = in_pool(2, || build(&config, 21));
        let three = in_pool(3, || build(&config, 21));
        assert_eq!(one.weights(), two.weights());
        assert_eq!(one.weights(), three.weights());
        assert_eq!(one.fingerprint(), two.fingerprint());
        assert_eq!(one.fingerprint(), three.fingerprint());
        assert_eq!(one.cond_threshold(), two.cond_threshold());
        let pool1 = in_pool(1, || {
            clica_generators::cond_pool(7, 600, &mut RunSeed::new(1).stream("p"))
        })
        .unwrap();
        let pool2 = in_pool(2, || {
            clica_generators::cond_pool(7, 600, &mut RunSeed::new(1).stream("p"))
        })
        .unwrap();
        assert_eq!(pool1, pool2);
    }
}

#[test]
fn generator_trait_object_is_stable() {
    let g: Box<dyn Generator> = Box::new(build(&small_config(), 6));
    assert_eq!(g.input_dim(), 10);
    assert_eq!(g.output_dim(), 10);
    assert_eq!(g.fingerprint(), build(&small_config(), 6).fingerprint());
}

/// Value stability: if this fails, every generator built from a seed has changed, and with it
/// every recorded result. Only update the pins deliberately (and say so in the changelog).
#[test]
fn pinned_fingerprint() {
    let config = MlpConfig::new(10).with_layers(3).with_cond_pool_size(500);
    let g = InvertibleMlp::build(&config, &mut RunSeed::new(0).stream("generator")).unwrap();
    assert_eq!(
        g.fingerprint().hex(),
        "3f85a43d3fd96782",
        "generator fingerprint changed"
    );
}

/// The paper's default configuration (n = 10, 3 layers, LeakyReLU(0.2), pool 25,000, ratio 0)
/// from seed 0: the generator most result files will name.
#[test]
fn pinned_fingerprint_default_config() {
    let g = build(&MlpConfig::new(10), 0);
    assert_eq!(
        g.fingerprint().hex(),
        "cddf58f442fa6609",
        "generator fingerprint changed"
    );
    assert_eq!(g.candidates_drawn(), &[12494, 39785, 131180]);
}

#[test]
fn search_cap_gives_a_numerical_error() {
    // Pool of one 2×2 matrix with condition number ≈ 1.00001: none of the
    // SEARCH_CAP_FACTOR × 1 candidates (rounded up to a chunk) beats it.
    let config = MlpConfig::new(2).with_layers(1).with_cond_pool_size(1);
    let err =
        InvertibleMlp::build(&config, &mut RunSeed::new(1023).stream("generator")).unwrap_err();
    assert!(
        matches!(err, clica_generators::Error::Numerical(_)),
        "{err}"
    );
}
