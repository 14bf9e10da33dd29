//! Inference: equality with the training forward, normalisation properties, the `Encoder`
//! trait.

mod common;

use clica_core::Encoder;
use clica_encoders::{EncoderConfig, MlpEncoder, NamedTensor, Normalization};
use common::*;
use ndarray::{s, Array2, ShapeBuilder};
use rand::Rng;

#[test]
fn encode_equals_the_training_forward_bitwise() {
    for backend in backends() {
        for norm in all_normalizations() {
            let cfg = EncoderConfig::paper(4)
                .with_normalization(norm)
                .with_backend(backend);
            let mut f = MlpEncoder::new(cfg, &mut rng("encode.eq")).unwrap();
            // 3·64 + 7 rows: several uneven row blocks on the native backend.
            let x = randn(199, 4, &mut rng("encode.x"));
            let train = f.forward_train(x.view()).to_owned();
            assert_eq!(f.encode_f32(x.view()), train, "{backend:?} {norm:?}");
            // Through the f64 `Encoder` face: the same numbers, widened.
            let e = f.encode(x.mapv(f64::from).view());
            assert_eq!(e, train.mapv(f64::from), "{backend:?} {norm:?}");
            // A non-contiguous (column-major) input view gives the same result.
            let mut col_major = Array2::zeros(x.dim().f());
            col_major.assign(&x);
            assert!(!col_major.is_standard_layout());
            assert_eq!(
                f.encode_f32(col_major.view()),
                train,
                "{backend:?} strided input"
            );
        }
    }
}

#[test]
fn encode_handles_empty_and_large_batches() {
    let f = MlpEncoder::new(EncoderConfig::paper(2), &mut rng("encode.sizes")).unwrap();
    assert_eq!(f.encode_f32(Array2::zeros((0, 2)).view()).dim(), (0, 2));
    // More rows than one inference block (16 384): blocks do not change row results.
    let x = randn(16_500, 2, &mut rng("encode.big"));
    let all = f.encode_f32(x.view());
    let tail = f.encode_f32(x.slice(s![16_384.., ..]));
    let diff = (&all.slice(s![16_384.., ..]) - &tail)
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(diff < 1e-5, "block boundary changed results by {diff}");
}

#[test]
fn normalizations_have_their_geometric_properties() {
    let x = randn(300, 5, &mut rng("norm.x"));
    let base = EncoderConfig::paper(5);

    // Fixed sphere: every output has norm r.
    let f = MlpEncoder::new(
        base.clone()
            .with_normalization(Normalization::Sphere { radius: 3.0 }),
        &mut rng("norm.f"),
    )
    .unwrap();
    for row in f.encode_f32(x.view()).rows() {
        assert!((row.dot(&row).sqrt() - 3.0).abs() < 1e-5);
    }

    // Learnable sphere: norm equals the current learned radius.
    let mut f = MlpEncoder::new(
        base.clone()
            .with_normalization(Normalization::learnable_sphere()),
        &mut rng("norm.f"),
    )
    .unwrap();
    let mut ps = f.parameters();
    ps.last_mut().unwrap().data = vec![0.37];
    f.set_parameters(&ps).unwrap();
    for row in f.encode_f32(x.view()).rows() {
        assert!((row.dot(&row).sqrt() - 0.37).abs() < 1e-6);
    }

    // Learnable box: outputs strictly inside (0, b) per coordinate.
    let mut f = MlpEncoder::new(
        base.clone()
            .with_normalization(Normalization::learnable_box()),
        &mut rng("norm.f"),
    )
    .unwrap();
    let bound = [0.5f32, 1.0, 2.0, 4.0, 0.25];
    let mut ps = f.parameters();
    *ps.last_mut().unwrap() = NamedTensor {
        name: "norm.bound".into(),
        shape: vec![5],
        data: bound.to_vec(),
    };
    f.set_parameters(&ps).unwrap();
    let y = f.encode_f32((&x * 20.0).view());
    for row in y.rows() {
        for (v, b) in row.iter().zip(bound) {
            assert!(*v > 0.0 && *v < b, "{v} outside (0, {b})");
        }
    }

    // None: the raw output of the last layer, unbounded (checked against the f64 reference).
    let f = MlpEncoder::new(base.clone(), &mut rng("norm.f")).unwrap();
    let y = f.encode_f32(x.view()).mapv(f64::from);
    let reference = reference_forward(&base, &to_f64(&f.parameters()), &x.mapv(f64::from));
    assert!(rel_err(y.as_slice().unwrap(), reference.as_slice().unwrap()) < 1e-5);
}

#[test]
fn zero_rows_on_the_sphere_stay_finite() {
    // A net whose last layer is all zeros maps everything to h = 0; the norm floor keeps
    // the output (and the gradient) finite, like PyTorch's F.normalize.
    let cfg = EncoderConfig::paper(2).with_normalization(Normalization::learnable_sphere());
    let mut f = MlpEncoder::new(cfg, &mut rng("zero")).unwrap();
    let mut ps = f.parameters();
    for t in ps.iter_mut().filter(|t| t.name.starts_with("layers.6")) {
        t.data.fill(0.0);
    }
    f.set_parameters(&ps).unwrap();
    let x = randn(4, 2, &mut rng("zero.x"));
    let y = f.forward_train(x.view()).to_owned();
    assert!(y.iter().all(|v| *v == 0.0));
    f.backward(Array2::ones((4, 2)).view());
    assert!(f
        .gradients()
        .unwrap()
        .iter()
        .all(|t| t.data.iter().all(|v| v.is_finite())));
}

#[test]
fn row_blocks_change_only_rounding() {
    // 1 block vs 3 blocks on the same data: equal up to f32 rounding.
    let cfg = EncoderConfig::paper(3).with_normalization(Normalization::learnable_box());
    let one = MlpEncoder::new(cfg.clone().with_threads(1), &mut rng("blocks")).unwrap();
    let three = MlpEncoder::new(cfg.with_threads(3), &mut rng("blocks")).unwrap();
    let mut r = rng("blocks.x");
    let x = Array2::from_shape_fn((500, 3), |_| r.random::<f32>());
    let (a, b) = (one.encode_f32(x.view()), three.encode_f32(x.view()));
    let d = (&a - &b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(d < 1e-5, "{d}");
}

#[test]
#[should_panic(expected = "has 3 columns but the encoder")]
fn wrong_input_width_panics() {
    let f = MlpEncoder::new(EncoderConfig::paper(2), &mut rng("panic")).unwrap();
    f.encode(Array2::zeros((4, 3)).view());
}

#[test]
fn encoders_are_send_and_sync_and_a_step_may_cross_threads() {
    fn check<T: Send + Sync>() {}
    check::<MlpEncoder>();
    for backend in backends() {
        let cfg = EncoderConfig::paper(2)
            .with_backend(backend)
            .with_normalization(Normalization::learnable_sphere());
        let mut f = MlpEncoder::new(cfg, &mut rng("threads")).unwrap();
        let x = randn(8, 2, &mut rng("threads.x"));
        f.forward_train(x.view());
        let g = randn(8, 2, &mut rng("threads.g"));
        let f = std::thread::spawn(move || {
            f.backward_and_step(g.view(), 1e-3);
            f
        })
        .join()
        .unwrap();
        assert_eq!(f.adam_steps(), 1);
    }
}
