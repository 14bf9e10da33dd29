//! Gradients of the native backend against f64 central finite differences (tiny nets,
//! every normalisation) and against dfdx's autodiff (the paper net at n = 3).

mod common;

use clica_encoders::{Backend, EncoderConfig, MlpEncoder, NamedTensor, Normalization};
use common::*;
use ndarray::Array2;
use rand::Rng;

/// A tiny net with every parameter perturbed away from its initial value (so learnable
/// radius / bound are not all equal) and a batch split into 3 row blocks (3 threads).
fn tiny(norm: Normalization, backend: Backend) -> MlpEncoder {
    let cfg = EncoderConfig {
        input_dim: 3,
        output_dim: 3,
        hidden: vec![5, 4],
        negative_slope: 0.1,
        normalization: norm,
        backend,
        adam: Default::default(),
        threads: 3,
    };
    let mut f = MlpEncoder::new(cfg, &mut rng("tiny")).unwrap();
    let mut r = rng("tiny.perturb");
    let ps: Vec<NamedTensor> = f
        .parameters()
        .into_iter()
        .map(|mut t| {
            for v in &mut t.data {
                *v += r.random::<f32>() * 0.4 - 0.2;
            }
            t
        })
        .collect();
    f.set_parameters(&ps).unwrap();
    f
}

/// L(θ) = Σ G ⊙ f(x; θ) in f64.
fn surrogate(cfg: &EncoderConfig, ps: &[Vec<f64>], x: &Array2<f64>, g: &Array2<f64>) -> f64 {
    (reference_forward(cfg, ps, x) * g).sum()
}

#[test]
fn native_gradients_match_f64_central_differences_for_every_normalization() {
    // 3·64 + 5 rows so the three row blocks are uneven and all used.
    let rows = 197;
    for norm in all_normalizations() {
        let mut f = tiny(norm, Backend::Native);
        let cfg = f.config().clone();
        let x = randn(rows, 3, &mut rng("fd.x"));
        let g = randn(rows, 3, &mut rng("fd.g"));
        let (x64, g64) = (x.mapv(f64::from), g.mapv(f64::from));

        let out = f.forward_train(x.view()).mapv(f64::from);
        let params = f.parameters();
        let mut ps = to_f64(&params);
        let reference = reference_forward(&cfg, &ps, &x64);
        let fwd_err = rel_err(out.as_slice().unwrap(), reference.as_slice().unwrap());
        assert!(
            fwd_err < 1e-5,
            "{norm:?}: forward differs from f64 reference by {fwd_err:e}"
        );

        f.backward(g.view());
        let grads = f.gradients().expect("gradient after backward");
        assert_eq!(grads.len(), params.len());
        let h = 1e-6;
        for (ti, gt) in grads.iter().enumerate() {
            assert_eq!(gt.name, params[ti].name);
            assert_eq!(gt.shape, params[ti].shape);
            let mut fd = vec![0.0; gt.data.len()];
            for (k, d) in fd.iter_mut().enumerate() {
                let orig = ps[ti][k];
                ps[ti][k] = orig + h;
                let up = surrogate(&cfg, &ps, &x64, &g64);
                ps[ti][k] = orig - h;
                let down = surrogate(&cfg, &ps, &x64, &g64);
                ps[ti][k] = orig;
                *d = (up - down) / (2.0 * h);
            }
            let native: Vec<f64> = gt.data.iter().map(|&v| f64::from(v)).collect();
            let err = rel_err(&native, &fd);
            assert!(
                err < 1e-4,
                "{norm:?} {}: native vs finite differences rel. error {err:e}",
                gt.name
            );
            assert!(
                fd.iter().any(|v| v.abs() > 1e-3),
                "{}: degenerate test",
                gt.name
            );
        }
    }
}

#[test]
#[cfg(feature = "dfdx")]
fn native_matches_dfdx_autodiff_on_the_paper_net_at_n3() {
    let rows = 150;
    for norm in all_normalizations() {
        let cfg = EncoderConfig::paper(3)
            .with_normalization(norm)
            .with_threads(2);
        let mut native = MlpEncoder::new(cfg, &mut rng("paper3")).unwrap();
        let mut dfdx = native.to_backend(Backend::Dfdx).unwrap();
        let x = randn(rows, 3, &mut rng("dfdx.x"));
        let g = randn(rows, 3, &mut rng("dfdx.g"));

        let yn = native.forward_train(x.view()).to_owned();
        let yd = dfdx.forward_train(x.view()).to_owned();
        let err = rel_err(
            yn.mapv(f64::from).as_slice().unwrap(),
            yd.mapv(f64::from).as_slice().unwrap(),
        );
        assert!(
            err < 1e-5,
            "{norm:?}: forward native vs dfdx rel. error {err:e}"
        );

        native.backward(g.view());
        dfdx.backward(g.view());
        let (gn, gd) = (native.gradients().unwrap(), dfdx.gradients().unwrap());
        assert_eq!(gn.len(), gd.len());
        for (a, b) in gn.iter().zip(&gd) {
            assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
            let av: Vec<f64> = a.data.iter().map(|&v| f64::from(v)).collect();
            let bv: Vec<f64> = b.data.iter().map(|&v| f64::from(v)).collect();
            let err = rel_err(&av, &bv);
            assert!(
                err < 1e-4,
                "{norm:?} {}: native vs dfdx rel. error {err:e}",
                a.name
            );
        }
    }
}

#[test]
#[cfg(feature = "dfdx")]
fn steps_of_both_backends_agree() {
    // Same weights, same data, three Adam steps each: the parameters stay within f32
    // rounding of each other (dfdx's Adam kernel is an independent implementation).
    let cfg = EncoderConfig::paper(3).with_normalization(Normalization::learnable_box());
    let mut native = MlpEncoder::new(cfg, &mut rng("steps")).unwrap();
    let mut dfdx = native.to_backend(Backend::Dfdx).unwrap();
    let mut r = rng("steps.data");
    for _ in 0..3 {
        let x = randn(96, 3, &mut r);
        let g = randn(96, 3, &mut r);
        native.forward_train(x.view());
        dfdx.forward_train(x.view());
        native.backward_and_step(g.view(), 1e-3);
        dfdx.backward_and_step(g.view(), 1e-3);
    }
    assert_eq!((native.adam_steps(), dfdx.adam_steps()), (3, 3));
    for (a, b) in native.parameters().iter().zip(&dfdx.parameters()) {
        let d = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        // Each step moves a parameter by at most ≈ lr; rounding differences are far smaller.
        assert!(d < 1e-5, "{}: backends drifted apart by {d}", a.name);
    }
}

#[test]
#[should_panic(expected = "backward needs a forward_train first")]
fn backward_without_forward_panics() {
    let mut f = tiny(Normalization::None, Backend::Native);
    f.backward(Array2::<f32>::zeros((4, 3)).view());
}

#[test]
#[should_panic(expected = "grad_out must have the shape")]
fn backward_with_wrong_shape_panics() {
    let mut f = tiny(Normalization::None, Backend::Native);
    f.forward_train(Array2::<f32>::zeros((4, 3)).view());
    f.backward(Array2::<f32>::zeros((5, 3)).view());
}
