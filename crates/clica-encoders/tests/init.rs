//! PyTorch-default initialisation from our generator: bounds, spread, reproducibility.

mod common;

use clica_core::RunSeed;
use clica_encoders::{EncoderConfig, MlpEncoder, Normalization};
use common::find;

#[test]
fn every_parameter_lies_within_the_fan_in_bound_with_uniform_spread() {
    let cfg = EncoderConfig::paper(10);
    let f = MlpEncoder::new(cfg.clone(), &mut RunSeed::new(3).stream("encoder")).unwrap();
    let ps = f.parameters();
    assert_eq!(ps.len(), 2 * cfg.num_layers());
    let widths = cfg.widths();
    for (l, &fan_in) in widths[..cfg.num_layers()].iter().enumerate() {
        let fan_in = fan_in as f64;
        let bound = 1.0 / fan_in.sqrt();
        for suffix in ["weight", "bias"] {
            let t = find(&ps, &format!("layers.{l}.{suffix}"));
            let n = t.data.len() as f64;
            assert!(
                t.data.iter().all(|&v| v.abs() <= bound as f32),
                "{} exceeds ±{bound}",
                t.name
            );
            let mean = t.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let std = (t
                .data
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            // Uniform(±a): mean 0, std a/√3. Standard errors: a/√(3n) for the mean and
            // ≈ √(0.2/n)·std for the std; allow 5 of them (plus 1% for the tiny biases).
            let sd = bound / 3f64.sqrt();
            assert!(
                mean.abs() < 5.0 * sd / n.sqrt(),
                "{}: mean {mean} too far from 0 (n = {n})",
                t.name
            );
            let rel = (std / sd - 1.0).abs();
            assert!(
                rel < 5.0 * (0.2 / n).sqrt() + 0.01,
                "{}: std {std} vs a/√3 = {sd} (n = {n})",
                t.name
            );
            // The draw fills the range: extremes near ±bound for large tensors.
            if n >= 1000.0 {
                let max = t.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(f64::from(max) > 0.99 * bound, "{}: max |w| = {max}", t.name);
            }
        }
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights_on_both_backends() {
    let cfg = EncoderConfig::paper(3).with_normalization(Normalization::learnable_box());
    let a = MlpEncoder::new(cfg.clone(), &mut RunSeed::new(9).stream("encoder")).unwrap();
    let b = MlpEncoder::new(cfg.clone(), &mut RunSeed::new(9).stream("encoder")).unwrap();
    let d = MlpEncoder::new(
        cfg.clone()
            .with_backend(*common::backends().last().unwrap()),
        &mut RunSeed::new(9).stream("encoder"),
    )
    .unwrap();
    let c = MlpEncoder::new(cfg, &mut RunSeed::new(10).stream("encoder")).unwrap();
    assert_eq!(a.parameters(), b.parameters());
    assert_eq!(a.parameters(), d.parameters());
    assert_ne!(
        find(&a.parameters(), "layers.0.weight").data,
        find(&c.parameters(), "layers.0.weight").data
    );
}

#[test]
fn learnable_normalization_starts_at_its_initial_value() {
    let cfg = EncoderConfig::paper(4)
        .with_normalization(Normalization::LearnableSphere { init_radius: 2.0 });
    let f = MlpEncoder::new(cfg, &mut RunSeed::new(1).stream("encoder")).unwrap();
    let r = find(&f.parameters(), "norm.radius").clone();
    assert_eq!((r.shape, r.data), (vec![1], vec![2.0]));

    let cfg = EncoderConfig::paper(4).with_normalization(Normalization::learnable_box());
    let f = MlpEncoder::new(cfg, &mut RunSeed::new(1).stream("encoder")).unwrap();
    let b = find(&f.parameters(), "norm.bound").clone();
    assert_eq!((b.shape, b.data), (vec![4], vec![1.0; 4]));
}

#[test]
fn first_weights_are_value_stable() {
    // Guards reproducibility of recorded runs: the draw order (layer by layer, weight row by
    // row then bias) and the uniform formula are part of the contract.
    let f = MlpEncoder::new(
        EncoderConfig::paper(2),
        &mut RunSeed::new(0).stream("encoder"),
    )
    .unwrap();
    let ps = f.parameters();
    let w0 = &find(&ps, "layers.0.weight").data[..3];
    let b_last = find(&ps, "layers.6.bias").data.clone();
    assert_eq!(
        (w0, b_last.as_slice()),
        (
            &[-0.3412506f32, -0.60804915, 0.10059189][..],
            &[-0.1534801f32, 0.046937943][..]
        ),
        "pinned values"
    );
}
