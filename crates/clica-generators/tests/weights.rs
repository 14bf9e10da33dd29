//! The weight construction: unit-norm columns, condition numbers under the threshold, and the
//! threshold as a quantile of the pool.

use clica_core::RunSeed;
use clica_generators::{
    cond_pool, cond_threshold, condition_number, quantile_linear, random_unit_column_matrix,
    Activation, Error, InvertibleMlp, MlpConfig, CHUNK_SIZE,
};
use rand::RngCore;

#[test]
fn columns_have_unit_norm_and_conditions_respect_the_threshold() {
    for (dim, ratio) in [
        (1, 0.0),
        (2, 0.0),
        (10, 0.0),
        (10, 0.5),
        (10, 0.9),
        (17, 0.25),
    ] {
        let config = MlpConfig::new(dim)
            .with_layers(4)
            .with_cond_pool_size(300)
            .with_cond_ratio(ratio);
        let g = InvertibleMlp::build(&config, &mut RunSeed::new(3).stream("generator")).unwrap();
        let threshold = g.cond_threshold().unwrap();
        assert_eq!(g.weights().len(), 4);
        assert_eq!(g.condition_numbers().len(), 4);
        assert_eq!(g.candidates_drawn().len(), 4);
        for (l, w) in g.weights().iter().enumerate() {
            assert_eq!(w.dim(), (dim, dim));
            for (j, col) in w.columns().into_iter().enumerate() {
                let norm = col.dot(&col).sqrt();
                assert!(
                    (norm - 1.0).abs() < 1e-12,
                    "n={dim} layer {l} column {j}: {norm}"
                );
            }
            assert!(w.iter().all(|v| v.abs() <= 1.0));
            let c = condition_number(w.view()).unwrap();
            assert!(
                c <= threshold,
                "n={dim} ratio {ratio} layer {l}: {c} > {threshold}"
            );
            assert_eq!(c, g.condition_numbers()[l]);
        }
    }
}

#[test]
fn random_matrix_is_uniform_draws_with_columns_normalised() {
    // Raw entries are 2u − 1 drawn row by row, then each column is divided by its L2 norm
    // (NumPy: W / sqrt((W**2).sum(0))).
    use rand::Rng;
    let n = 6;
    let w = random_unit_column_matrix(n, &mut RunSeed::new(1).stream("m"));
    let mut rng = RunSeed::new(1).stream("m");
    let raw = ndarray::Array2::from_shape_fn((n, n), |_| 2.0 * rng.random::<f64>() - 1.0);
    for j in 0..n {
        let norm = raw.column(j).dot(&raw.column(j)).sqrt();
        for i in 0..n {
            assert!((w[(i, j)] - raw[(i, j)] / norm).abs() < 1e-15);
        }
    }
}

#[test]
fn threshold_with_ratio_zero_is_the_pool_minimum() {
    for (dim, pool) in [(3, 1), (5, 129), (10, 1000), (10, 3 * CHUNK_SIZE + 5)] {
        let name = format!("pool-{dim}-{pool}");
        let conds = cond_pool(dim, pool, &mut RunSeed::new(9).stream(&name)).unwrap();
        assert_eq!(conds.len(), pool);
        let min = conds.iter().copied().fold(f64::INFINITY, f64::min);
        let t = cond_threshold(dim, pool, 0.0, &mut RunSeed::new(9).stream(&name)).unwrap();
        assert_eq!(t, min, "n={dim} pool {pool}");
        // The pool entries are the condition numbers of the matrices the chunk generators draw.
        let base = RunSeed::new(9).stream(&name).next_u64();
        let mut rng = clica_core::chunk_rng(base, 0);
        let first = random_unit_column_matrix(dim, &mut rng);
        assert_eq!(condition_number(first.view()).unwrap(), conds[0]);
    }
}

/// NumPy's `np.percentile(a, 100 q)` (linear interpolation), written out directly.
fn numpy_percentile(values: &[f64], q: f64) -> f64 {
    let mut a = values.to_vec();
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let pos = q * (a.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(a.len() - 1);
    a[i] + (pos - i as f64) * (a[j] - a[i])
}

#[test]
fn quantile_matches_sort_based_percentile() {
    for (dim, pool) in [(10, 1000), (10, 1001), (4, 2), (6, 257)] {
        let name = format!("q-{dim}-{pool}");
        let conds = cond_pool(dim, pool, &mut RunSeed::new(5).stream(&name)).unwrap();
        for ratio in [0.5, 0.25, 1.0] {
            let t = cond_threshold(dim, pool, ratio, &mut RunSeed::new(5).stream(&name)).unwrap();
            let want = numpy_percentile(&conds, ratio);
            assert!(
                (t - want).abs() <= 1e-12 * want,
                "n={dim} pool {pool} ratio {ratio}: {t} vs {want}"
            );
        }
        let max = conds.iter().copied().fold(0.0, f64::max);
        assert_eq!(quantile_linear(&conds, 1.0).unwrap(), max);
    }
    // Small hand-checked cases (NumPy: percentile([1, 2, 3, 4], 50) = 2.5, 25 → 1.75).
    assert_eq!(quantile_linear(&[4.0, 1.0, 3.0, 2.0], 0.5).unwrap(), 2.5);
    assert_eq!(quantile_linear(&[4.0, 1.0, 3.0, 2.0], 0.25).unwrap(), 1.75);
    assert_eq!(quantile_linear(&[7.0], 0.3).unwrap(), 7.0);
    assert!(quantile_linear(&[], 0.5).is_err());
    assert!(quantile_linear(&[1.0, f64::NAN], 0.5).is_err());
    assert!(quantile_linear(&[1.0], 1.5).is_err());
}

#[test]
fn higher_ratio_gives_higher_threshold() {
    let t = |r: f64| cond_threshold(8, 500, r, &mut RunSeed::new(2).stream("mono")).unwrap();
    let (a, b, c, d) = (t(0.0), t(0.1), t(0.5), t(1.0));
    assert!(a <= b && b <= c && c <= d, "{a} {b} {c} {d}");
    assert!(a < d);
}

#[test]
fn invalid_configs_are_rejected() {
    let mut rng = RunSeed::new(0).stream("generator");
    let bad = [
        MlpConfig::new(0),
        MlpConfig::new(3).with_layers(0),
        MlpConfig::new(3).with_cond_pool_size(0),
        MlpConfig::new(3).with_cond_ratio(1.5),
        MlpConfig::new(3).with_cond_ratio(-0.1),
        MlpConfig::new(3).with_cond_ratio(f64::NAN),
        MlpConfig::new(3).with_activation(Activation::LeakyRelu { slope: 0.0 }),
        MlpConfig::new(3).with_activation(Activation::LeakyRelu { slope: -1.0 }),
    ];
    for config in bad {
        assert!(
            matches!(config.validate(), Err(Error::InvalidParameter { .. })),
            "{config:?}"
        );
        assert!(matches!(
            InvertibleMlp::build(&config, &mut rng),
            Err(Error::InvalidParameter { .. })
        ));
    }
    assert!(MlpConfig::new(3).validate().is_ok());
    assert!(cond_threshold(0, 10, 0.0, &mut rng).is_err());
    assert!(cond_threshold(3, 0, 0.0, &mut rng).is_err());
    assert!(cond_threshold(3, 10, 1.5, &mut rng).is_err());
    assert!(cond_pool(3, 0, &mut rng).is_err());
}

#[test]
fn defaults_are_the_papers() {
    let c = MlpConfig::new(10);
    assert_eq!(c.dim, 10);
    assert_eq!(c.layers, 3);
    assert_eq!(c.activation, Activation::LeakyRelu { slope: 0.2 });
    assert_eq!(c.cond_pool_size, 25_000);
    assert_eq!(c.cond_ratio, 0.0);
}
