//! The conv encoder against independent references: a naive convolution written out in f64
//! with PyTorch's semantics (forward), and central finite differences (backward), for every
//! output layer.

use clica_conv::{ConvEncoder, ConvEncoderConfig, ConvSpec, Normalization};
use clica_core::{NamedTensor, RunSeed, TrainableEncoder};
use ndarray::Array2;
use rand::Rng;

fn small(n_out: usize, norm: Normalization) -> ConvEncoderConfig {
    // Odd sizes, padding and a stride-1 layer exercise the im2col edges.
    let mut c = ConvEncoderConfig::kitti([3, 16, 16], n_out)
        .with_normalization(norm)
        .with_threads(2);
    c.convs = vec![
        ConvSpec {
            out: 4,
            kernel: 4,
            stride: 2,
            padding: 1,
        },
        ConvSpec {
            out: 5,
            kernel: 3,
            stride: 1,
            padding: 1,
        },
        ConvSpec {
            out: 6,
            kernel: 4,
            stride: 2,
            padding: 1,
        },
        ConvSpec {
            out: 7,
            kernel: 4,
            stride: 1,
            padding: 0,
        },
    ];
    c
}

fn inputs(seed: u64, rows: usize, len: usize) -> Array2<f32> {
    let mut rng = RunSeed::new(seed).stream("x");
    Array2::from_shape_fn((rows, len), |_| rng.random_range(0.0..1.0f32))
}

/// PyTorch's Conv2d → ReLU stack, linear head and output layer, in f64, from the named
/// tensors ([out, in, k, k] weights, NCHW activations, features flattened in (h, w, c) order
/// as the encoder documents).
fn reference(cfg: &ConvEncoderConfig, params: &[NamedTensor], x: &[f32]) -> Vec<f64> {
    let get = |name: &str| {
        params
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let [mut c, mut h, mut w] = cfg.input;
    let mut a: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    if let Some((mean, std)) = &cfg.input_norm {
        for ch in 0..c {
            for p in 0..h * w {
                a[ch * h * w + p] = (a[ch * h * w + p] - f64::from(mean[ch])) / f64::from(std[ch]);
            }
        }
    }
    for (i, s) in cfg.convs.iter().enumerate() {
        let wt = get(&format!("convs.{i}.weight"));
        let b = get(&format!("convs.{i}.bias"));
        let oh = (h + 2 * s.padding - s.kernel) / s.stride + 1;
        let ow = (w + 2 * s.padding - s.kernel) / s.stride + 1;
        let mut out = vec![0.0; s.out * oh * ow];
        for o in 0..s.out {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = f64::from(b.data[o]);
                    for ci in 0..c {
                        for ky in 0..s.kernel {
                            for kx in 0..s.kernel {
                                let iy = (y * s.stride + ky) as isize - s.padding as isize;
                                let ix = (xx * s.stride + kx) as isize - s.padding as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    let wv =
                                        wt.data[((o * c + ci) * s.kernel + ky) * s.kernel + kx];
                                    acc +=
                                        f64::from(wv) * a[(ci * h + iy as usize) * w + ix as usize];
                                }
                            }
                        }
                    }
                    out[(o * oh + y) * ow + xx] = acc.max(0.0);
                }
            }
        }
        (a, c, h, w) = (out, s.out, oh, ow);
    }
    // Flatten in (h, w, c) order.
    let feats: Vec<f64> = (0..h * w)
        .flat_map(|p| (0..c).map(move |ch| (p, ch)))
        .map(|(p, ch)| a[ch * h * w + p])
        .collect();
    let hw = get("head.weight");
    let hb = get("head.bias");
    let n = cfg.output_dim;
    let hv: Vec<f64> = (0..n)
        .map(|k| {
            f64::from(hb.data[k])
                + feats
                    .iter()
                    .enumerate()
                    .map(|(j, &f)| f64::from(hw.data[k * feats.len() + j]) * f)
                    .sum::<f64>()
        })
        .collect();
    match cfg.normalization {
        Normalization::None => hv,
        Normalization::Sphere { radius } => {
            let norm = hv.iter().map(|v| v * v).sum::<f64>().sqrt();
            hv.iter().map(|v| v / norm * radius).collect()
        }
        Normalization::LearnableSphere { .. } => {
            let r = f64::from(get("norm.radius").data[0]);
            let norm = hv.iter().map(|v| v * v).sum::<f64>().sqrt();
            hv.iter().map(|v| v / norm * r).collect()
        }
        Normalization::LearnableBox { .. } => {
            let bnd = get("norm.bound");
            hv.iter()
                .enumerate()
                .map(|(k, v)| f64::from(bnd.data[k]) / (1.0 + (-v).exp()))
                .collect()
        }
    }
}

/// Step of the central differences: small enough that ReLU kinks are rarely crossed, large
/// enough that the f32 forward's rounding (~1e-6 of the loss) stays below 1e-3 of the slope.
const EPS: f32 = 3e-4;

/// Agreement of an analytic and a finite-difference directional derivative: 1 % relative
/// plus 2e-3 absolute (the f32 rounding noise of the differences at [`EPS`]).
fn agrees(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 1e-2 * analytic.abs().max(numeric.abs()) + 2e-3
}

const NORMS: [Normalization; 4] = [
    Normalization::None,
    Normalization::Sphere { radius: 2.0 },
    Normalization::LearnableSphere { init_radius: 1.5 },
    Normalization::LearnableBox { init_bound: 0.7 },
];

#[test]
fn forward_matches_a_naive_f64_convolution_with_pytorch_layouts() {
    for (i, norm) in NORMS.into_iter().enumerate() {
        let cfg = small(5, norm).with_input_norm(vec![0.3, 0.5, 0.4], vec![0.2, 0.25, 0.3]);
        let enc =
            ConvEncoder::new(cfg.clone(), &mut RunSeed::new(i as u64).stream("encoder")).unwrap();
        let x = inputs(1, 11, 3 * 16 * 16);
        let got = enc.encode_f32(x.view());
        let params = enc.parameters();
        for r in 0..x.nrows() {
            let want = reference(&cfg, &params, x.row(r).as_slice().unwrap());
            for k in 0..5 {
                let (g, w) = (f64::from(got[[r, k]]), want[k]);
                assert!(
                    (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                    "{norm:?} row {r} out {k}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    // The sphere layers make the loss too curved near a random initialisation (‖h‖ is
    // small) for f32 differences; they are checked through the chain rule below.
    for (i, norm) in [NORMS[0], NORMS[3]].into_iter().enumerate() {
        let cfg = small(4, norm);
        let mut enc =
            ConvEncoder::new(cfg, &mut RunSeed::new(10 + i as u64).stream("encoder")).unwrap();
        let x = inputs(2, 9, 3 * 16 * 16);
        let mut rng = RunSeed::new(20 + i as u64).stream("probe");
        // L = Σ c ⊙ out with a fixed random c, so dL/d out = c.
        let c = Array2::from_shape_fn((9, 4), |_| rng.random_range(-1.0..1.0f32));
        let loss = |enc: &ConvEncoder| -> f64 {
            let out = enc.encode_f32(x.view());
            out.iter()
                .zip(c.iter())
                .map(|(&o, &w)| f64::from(o) * f64::from(w))
                .sum()
        };
        enc.forward_train(x.view());
        enc.backward(c.view());
        let grads = enc.gradients().unwrap();
        let params = enc.parameters();
        for (p, g) in params.iter().zip(&grads) {
            // A random direction per tensor: the directional derivative g·v against
            // (L(θ + εv) − L(θ − εv)) / 2ε.
            let v: Vec<f32> = (0..p.data.len())
                .map(|_| rng.random_range(-1.0..1.0f32))
                .collect();
            let analytic: f64 = g
                .data
                .iter()
                .zip(&v)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let eps = EPS;
            let shifted = |sign: f32| {
                let mut e = enc.clone();
                let moved: Vec<NamedTensor> = params
                    .iter()
                    .map(|t| {
                        let mut t = t.clone();
                        if t.name == p.name {
                            for (d, &dv) in t.data.iter_mut().zip(&v) {
                                *d += sign * eps * dv;
                            }
                        }
                        t
                    })
                    .collect();
                e.set_parameters(&moved).unwrap();
                loss(&e)
            };
            let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * f64::from(eps));
            assert!(
                agrees(analytic, numeric),
                "{norm:?} {}: analytic {analytic} vs numeric {numeric}",
                p.name
            );
        }
    }
}

/// The sphere output layers through the chain rule: their gradient must equal the unbounded
/// encoder's (checked by finite differences above) fed with dL/dh = Jᵀc, the sphere map's
/// Jacobian written out in f64 (out = ρ h/‖h‖: dL/dh = ρ/‖h‖ (c − u (u·c)), dL/dρ = Σ u·c).
#[test]
fn sphere_gradients_follow_the_chain_rule() {
    for norm in [NORMS[1], NORMS[2]] {
        let plain_cfg = small(4, Normalization::None);
        let cfg = small(4, norm);
        let mut plain =
            ConvEncoder::new(plain_cfg, &mut RunSeed::new(30).stream("encoder")).unwrap();
        let mut sphere = ConvEncoder::new(cfg, &mut RunSeed::new(30).stream("encoder")).unwrap();
        let shared: Vec<NamedTensor> = plain.parameters();
        let mut with_radius = shared.clone();
        let rho = match norm {
            Normalization::Sphere { radius } => radius,
            _ => {
                with_radius.push(NamedTensor {
                    name: "norm.radius".into(),
                    shape: vec![1],
                    data: vec![1.5],
                });
                1.5
            }
        };
        sphere.set_parameters(&with_radius).unwrap();
        let x = inputs(7, 9, 3 * 16 * 16);
        let mut rng = RunSeed::new(31).stream("probe");
        let c = Array2::from_shape_fn((9, 4), |_| rng.random_range(-1.0..1.0f32));
        let h = plain.forward_train(x.view()).to_owned();
        let mut dh = Array2::<f32>::zeros((9, 4));
        let mut drho = 0.0f64;
        for r in 0..9 {
            let hr: Vec<f64> = h.row(r).iter().map(|&v| f64::from(v)).collect();
            let norm2 = hr.iter().map(|v| v * v).sum::<f64>().sqrt();
            let u: Vec<f64> = hr.iter().map(|v| v / norm2).collect();
            let uc: f64 = u.iter().zip(c.row(r)).map(|(a, &b)| a * f64::from(b)).sum();
            drho += uc;
            for k in 0..4 {
                dh[[r, k]] = (rho / norm2 * (f64::from(c[[r, k]]) - u[k] * uc)) as f32;
            }
        }
        plain.backward(dh.view());
        sphere.forward_train(x.view());
        sphere.backward(c.view());
        let want = plain.gradients().unwrap();
        let got = sphere.gradients().unwrap();
        for w in &want {
            let g = got.iter().find(|g| g.name == w.name).unwrap();
            for (a, b) in g.data.iter().zip(&w.data) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{norm:?} {}: {a} vs {b}",
                    w.name
                );
            }
        }
        if let Some(r) = got.iter().find(|g| g.name == "norm.radius") {
            assert!(
                (f64::from(r.data[0]) - drho).abs() < 1e-4 * (1.0 + drho.abs()),
                "radius: {} vs {drho}",
                r.data[0]
            );
        }
    }
}

#[test]
fn a_mutated_backward_is_caught() {
    // The check above must be able to fail: scale one tensor's gradient slightly.
    let cfg = small(4, Normalization::None);
    let mut enc = ConvEncoder::new(cfg, &mut RunSeed::new(3).stream("encoder")).unwrap();
    let x = inputs(4, 9, 3 * 16 * 16);
    let c = Array2::from_elem((9, 4), 0.5f32);
    enc.forward_train(x.view());
    enc.backward(c.view());
    let g = enc.gradients().unwrap();
    let p = enc.parameters();
    let t = p.iter().position(|t| t.name == "convs.1.weight").unwrap();
    let analytic: f64 = g[t].data.iter().map(|&v| f64::from(v)).sum::<f64>() * 1.03;
    let eps = EPS;
    let shifted = |sign: f32| {
        let mut e = enc.clone();
        let mut moved = p.clone();
        for d in &mut moved[t].data {
            *d += sign * eps;
        }
        e.set_parameters(&moved).unwrap();
        e.encode_f32(x.view())
            .iter()
            .map(|&o| f64::from(o) * 0.5)
            .sum::<f64>()
    };
    let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * f64::from(eps));
    assert!(
        agrees(analytic / 1.03, numeric),
        "the unmutated gradient must agree: {analytic} vs {numeric}"
    );
    assert!(
        !agrees(analytic, numeric),
        "a 3 % error went unnoticed: {analytic} vs {numeric}"
    );
}

#[test]
fn training_output_equals_inference_and_is_reproducible() {
    let cfg = ConvEncoderConfig::kitti([3, 64, 64], 10).with_threads(2);
    let mut a = ConvEncoder::new(cfg.clone(), &mut RunSeed::new(5).stream("encoder")).unwrap();
    let mut b = ConvEncoder::new(cfg, &mut RunSeed::new(5).stream("encoder")).unwrap();
    let x = inputs(6, 40, 3 * 64 * 64);
    let inf = a.encode_f32(x.view());
    let tr = a.forward_train(x.view()).to_owned();
    assert_eq!(inf, tr);
    let g = Array2::from_elem((40, 10), 0.1f32);
    a.backward(g.view());
    b.forward_train(x.view());
    b.backward(g.view());
    assert_eq!(a.gradients(), b.gradients());
    // Another block count changes rounding only.
    let mut c = ConvEncoder::new(
        ConvEncoderConfig::kitti([3, 64, 64], 10).with_threads(3),
        &mut RunSeed::new(5).stream("encoder"),
    )
    .unwrap();
    c.forward_train(x.view());
    c.backward(g.view());
    for (ga, gc) in a.gradients().unwrap().iter().zip(c.gradients().unwrap()) {
        for (u, v) in ga.data.iter().zip(&gc.data) {
            assert!(
                (u - v).abs() <= 1e-4 * (1.0 + u.abs()),
                "{}: {u} vs {v}",
                ga.name
            );
        }
    }
}

#[test]
fn bad_configurations_are_errors() {
    let base = ConvEncoderConfig::kitti([3, 64, 64], 10);
    let mut bad = vec![
        ConvEncoderConfig {
            output_dim: 0,
            ..base.clone()
        },
        ConvEncoderConfig {
            input: [3, 0, 64],
            ..base.clone()
        },
        ConvEncoderConfig::kitti([3, 8, 8], 10), // the 4×4 kernels do not fit after two halvings
        base.clone().with_input_norm(vec![0.0; 2], vec![1.0; 2]),
        base.clone()
            .with_input_norm(vec![0.0; 3], vec![1.0, 0.0, 1.0]),
        base.clone()
            .with_normalization(Normalization::Sphere { radius: -1.0 }),
    ];
    bad.push(ConvEncoderConfig {
        convs: vec![],
        ..base
    });
    for cfg in bad {
        assert!(
            ConvEncoder::new(cfg.clone(), &mut RunSeed::new(0).stream("e")).is_err(),
            "{cfg:?}"
        );
    }
}

#[test]
fn a_batch_gradient_is_the_sum_of_its_rows_gradients() {
    // At 32 × 32 the im2col blocks hold 5, 2, 4 and 4 images of the four layers, so 7 rows
    // on one thread end in partial blocks; at 64 × 64 every block is one image. The
    // batch's gradient must be the sum of the rows' gradients, each computed alone.
    for size in [32, 64] {
        let cfg = ConvEncoderConfig::kitti([3, size, size], 3).with_threads(1);
        let mut enc = ConvEncoder::new(cfg, &mut RunSeed::new(8).stream("encoder")).unwrap();
        let rows = 7;
        let x = inputs(9, rows, 3 * size * size);
        let mut rng = RunSeed::new(10).stream("probe");
        let c = Array2::from_shape_fn((rows, 3), |_| rng.random_range(-1.0..1.0f32));
        enc.forward_train(x.view());
        enc.backward(c.view());
        let batch = enc.gradients().unwrap();
        let mut sum: Vec<Vec<f64>> = batch.iter().map(|t| vec![0.0; t.data.len()]).collect();
        for r in 0..rows {
            enc.forward_train(x.slice(ndarray::s![r..r + 1, ..]));
            enc.backward(c.slice(ndarray::s![r..r + 1, ..]));
            for (acc, g) in sum.iter_mut().zip(enc.gradients().unwrap()) {
                for (a, &v) in acc.iter_mut().zip(&g.data) {
                    *a += f64::from(v);
                }
            }
        }
        for (b, s) in batch.iter().zip(&sum) {
            let scale = s.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
            for (&u, &v) in b.data.iter().zip(s) {
                assert!(
                    (f64::from(u) - v).abs() <= 1e-4 * scale,
                    "{size}×{size}, {}: batch {u} vs rows' sum {v}",
                    b.name
                );
            }
        }
    }
}
