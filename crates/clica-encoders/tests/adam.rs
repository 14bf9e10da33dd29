//! Adam: one and two steps against the textbook update computed by hand in f64, and a
//! short regression fit.

mod common;

use clica_encoders::{AdamConfig, Backend, EncoderConfig, MlpEncoder, Normalization};
use common::*;
use ndarray::{array, Array2};

/// A single linear layer 2 → 2 (no hidden layer), so the gradient is easy by hand:
/// dW = Gᵀ X, db = Σ_rows G.
fn linear(backend: Backend) -> MlpEncoder {
    let cfg = EncoderConfig {
        input_dim: 2,
        output_dim: 2,
        hidden: vec![],
        negative_slope: 0.01,
        normalization: Normalization::None,
        backend,
        adam: AdamConfig::default(),
        threads: 0,
    };
    MlpEncoder::new(cfg, &mut rng("adam.linear")).unwrap()
}

fn hand_grad(x: &Array2<f64>, g: &Array2<f64>) -> Vec<f64> {
    // Flat in parameters() order: W (row-major [out, in]) then b.
    let dw = g.t().dot(x);
    let db = g.sum_axis(ndarray::Axis(0));
    dw.iter().chain(db.iter()).copied().collect()
}

#[test]
fn two_steps_match_the_hand_computed_adam_update() {
    for backend in backends() {
        let mut f = linear(backend);
        let flat = |f: &MlpEncoder| -> Vec<f64> {
            f.parameters()
                .iter()
                .flat_map(|t| t.data.iter().map(|&v| f64::from(v)))
                .collect()
        };
        let p0 = flat(&f);
        let x1 = array![[1.0f32, -2.0], [0.5, 0.25], [-1.5, 3.0]];
        let g1 = array![[0.3f32, -0.1], [-0.2, 0.4], [0.05, 0.6]];
        let x2 = array![[-0.5f32, 1.0], [2.0, -0.75], [0.125, 0.5]];
        let g2 = array![[-0.7f32, 0.2], [0.1, -0.3], [0.45, 0.05]];
        let (lr1, lr2) = (0.01f32, 0.004f32);

        f.forward_train(x1.view());
        f.backward_and_step(g1.view(), lr1);
        f.forward_train(x2.view());
        f.backward_and_step(g2.view(), lr2);
        assert_eq!(f.adam_steps(), 2);
        let p2 = flat(&f);

        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let gr1 = hand_grad(&x1.mapv(f64::from), &g1.mapv(f64::from));
        let gr2 = hand_grad(&x2.mapv(f64::from), &g2.mapv(f64::from));
        for k in 0..p0.len() {
            // Textbook Adam (Kingma & Ba, Algorithm 1) with bias correction.
            let (mut m, mut v, mut p) = (0.0, 0.0, p0[k]);
            for (t, (g, lr)) in [(gr1[k], f64::from(lr1)), (gr2[k], f64::from(lr2))]
                .into_iter()
                .enumerate()
            {
                let t = t as i32 + 1;
                m = b1 * m + (1.0 - b1) * g;
                v = b2 * v + (1.0 - b2) * g * g;
                let m_hat = m / (1.0 - b1.powi(t));
                let v_hat = v / (1.0 - b2.powi(t));
                p -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            assert!(
                (p2[k] - p).abs() < 2e-7,
                "{backend:?} parameter {k}: got {} expected {p} (start {})",
                p2[k],
                p0[k]
            );
            // Sanity: the first step moves each parameter by ≈ lr (|m̂/√v̂| = 1).
            assert!((p - p0[k]).abs() > 1e-3);
        }
    }
}

/// Mean over rows and coordinates of (f(x) − y)², and its gradient with respect to f(x).
fn mse(out: ndarray::ArrayView2<'_, f32>, y: &Array2<f32>) -> (f32, Array2<f32>) {
    let d = &out - y;
    let n = d.len() as f32;
    ((&d * &d).sum() / n, d * (2.0 / n))
}

#[test]
fn fitting_a_random_linear_map_with_mse_reduces_the_loss_100x() {
    let n = 5;
    let a = randn(n, n, &mut rng("fit.map")) * 0.5;
    let held_x = randn(1024, n, &mut rng("fit.held"));
    let held_y = held_x.dot(&a.t());
    for backend in backends() {
        let cfg = EncoderConfig::paper(n)
            .with_hidden(vec![64, 64])
            .with_backend(backend);
        let mut f = MlpEncoder::new(cfg, &mut rng("fit.encoder")).unwrap();
        let before = mse(f.encode_f32(held_x.view()).view(), &held_y).0;
        let mut r = rng("fit.batches");
        let steps = 300;
        for s in 0..steps {
            let x = randn(256, n, &mut r);
            let y = x.dot(&a.t());
            let g = mse(f.forward_train(x.view()), &y).1;
            // Cosine schedule from 1e-2: the learning rate changes every step.
            let lr = 1e-2 * 0.5 * (1.0 + (std::f32::consts::PI * s as f32 / steps as f32).cos());
            f.backward_and_step(g.view(), lr);
        }
        let after = mse(f.encode_f32(held_x.view()).view(), &held_y).0;
        eprintln!("{backend:?}: held-out MSE {before:e} -> {after:e}");
        assert!(
            after * 100.0 < before,
            "{backend:?}: held-out MSE {before:e} → {after:e}, less than 100× lower"
        );
    }
}

/// Three steps on `f` with inputs and output gradients drawn from `r`.
fn steps(f: &mut MlpEncoder, r: &mut impl rand::Rng, n: usize) {
    for _ in 0..n {
        let x = randn(130, 3, r);
        let g = randn(130, 3, r);
        f.forward_train(x.view());
        f.backward_and_step(g.view(), 3e-3);
    }
}

#[test]
fn optimizer_state_round_trip_continues_bit_identically() {
    let cfg = EncoderConfig::paper(3).with_normalization(Normalization::learnable_sphere());
    let mut a = MlpEncoder::new(cfg.clone(), &mut rng("adam.state")).unwrap();
    let mut data = rng("adam.state.data");
    steps(&mut a, &mut data, 3);
    let params = a.parameters();
    let state = a.optimizer_state().unwrap();
    assert_eq!(state.steps, 3);

    // A fresh encoder with other weights, restored from the saved state.
    let mut b = MlpEncoder::new(cfg, &mut rng("adam.state.other")).unwrap();
    b.set_parameters(&params).unwrap();
    b.set_optimizer_state(&state).unwrap();
    assert_eq!(b.adam_steps(), 3);
    let mut data_b = data.clone();
    steps(&mut a, &mut data, 4);
    steps(&mut b, &mut data_b, 4);
    assert_eq!(a.parameters(), b.parameters());
    assert_eq!(a.optimizer_state().unwrap(), b.optimizer_state().unwrap());
}

#[test]
fn optimizer_state_of_another_architecture_is_rejected_by_name() {
    let mut a = MlpEncoder::new(EncoderConfig::paper(3), &mut rng("adam.arch")).unwrap();
    let mut b = MlpEncoder::new(EncoderConfig::paper(4), &mut rng("adam.arch")).unwrap();
    // Before its first step an optimiser holds no moments (a fresh state fits any encoder).
    assert!(b.optimizer_state().unwrap().first_moment.is_empty());
    a.set_optimizer_state(&b.optimizer_state().unwrap())
        .unwrap();
    let r = &mut rng("adam.arch.data");
    b.forward_train(randn(8, 4, r).view());
    b.backward_and_step(randn(8, 4, r).view(), 1e-3);
    let err = a
        .set_optimizer_state(&b.optimizer_state().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("layers.0.weight"), "{err}");
}

#[test]
fn non_finite_parameters_and_gradients_are_located() {
    let mut f = linear(Backend::Native);
    assert_eq!(f.first_non_finite_parameter(), None);
    let mut ps = f.parameters();
    ps[1].data[1] = f32::NAN; // layers.0.bias[1]
    f.set_parameters(&ps).unwrap();
    assert_eq!(
        f.first_non_finite_parameter(),
        Some(("layers.0.bias".to_string(), 1))
    );
    let x = array![[1.0f32, 2.0]];
    f.forward_train(x.view());
    f.backward(array![[f32::INFINITY, 0.0]].view());
    assert_eq!(
        f.first_non_finite_gradient(),
        Some(("layers.0.weight".to_string(), 0))
    );
}
