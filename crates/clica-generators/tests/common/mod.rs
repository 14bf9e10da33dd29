//! Helpers shared by the integration tests.
#![allow(dead_code)]

use clica_core::RunSeed;
use ndarray::Array2;
use rand::Rng;

/// A `rows × cols` batch of standard normals (Box–Muller) from a fixed named stream.
pub fn normal_batch(rows: usize, cols: usize, name: &str) -> Array2<f64> {
    let mut rng = RunSeed::new(12345).stream(name);
    Array2::from_shape_fn((rows, cols), |_| {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    })
}

/// A `rows × cols` batch of Uniform(0, 1) draws from a fixed named stream.
pub fn uniform_batch(rows: usize, cols: usize, name: &str) -> Array2<f64> {
    let mut rng = RunSeed::new(12345).stream(name);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f64>())
}

/// max |a − b| over all entries.
pub fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}
