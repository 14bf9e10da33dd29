//! ResNet-18 against independent references: the whole network written out naively in f64
//! with PyTorch's semantics and torchvision's parameter names (batch norm with batch
//! statistics in training and running averages in inference, the running-average update,
//! max-pool padding), and central finite differences for every trained tensor.

use clica_conv::{Normalization, ResNetConfig, ResNetEncoder};
use clica_core::{NamedTensor, RunSeed, TrainableEncoder};
use clica_optim::{Adam, AdamConfig};
use ndarray::Array2;
use rand::Rng;

/// A narrow ResNet-18 (same topology, stages of 3, 4, 5, 6 channels) on 3 × 19 × 19 images:
/// the odd side exercises the padding of every stride-2 layer and of the max-pool.
fn small(norm: Normalization, threads: usize) -> ResNetConfig {
    let mut c = ResNetConfig::resnet18([3, 19, 19], 3)
        .with_widths([3, 4, 5, 6])
        .with_normalization(norm)
        .with_threads(threads);
    c.hidden = 7;
    c
}

fn inputs(seed: u64, rows: usize, len: usize) -> Array2<f32> {
    let mut rng = RunSeed::new(seed).stream("x");
    Array2::from_shape_fn((rows, len), |_| rng.random_range(0.0..1.0f32))
}

/// One image as channels × height × width in f64.
#[derive(Clone)]
struct Img {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

/// Named tensors in f64.
type Params = Vec<(String, Vec<f64>)>;

fn to_f64(params: &[NamedTensor]) -> Params {
    params
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.data.iter().map(|&v| f64::from(v)).collect(),
            )
        })
        .collect()
}

struct Reference<'a> {
    params: &'a Params,
    train: bool,
    eps: f64,
    /// Batch mean and biased variance of every batch norm's input, in network order.
    stats: Vec<(String, Vec<f64>, Vec<f64>)>,
}

impl Reference<'_> {
    fn get(&self, name: &str) -> Vec<f64> {
        self.params
            .iter()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("missing {name}"))
            .1
            .clone()
    }

    fn conv(&self, x: &[Img], name: &str, out: usize, k: usize, s: usize, p: usize) -> Vec<Img> {
        let wt = self.get(&format!("{name}.weight"));
        x.iter()
            .map(|im| {
                let oh = (im.h + 2 * p - k) / s + 1;
                let ow = (im.w + 2 * p - k) / s + 1;
                let mut v = vec![0.0; out * oh * ow];
                for o in 0..out {
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut acc = 0.0;
                            for ci in 0..im.c {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let iy = (y * s + ky) as isize - p as isize;
                                        let ix = (xx * s + kx) as isize - p as isize;
                                        if iy >= 0
                                            && ix >= 0
                                            && (iy as usize) < im.h
                                            && (ix as usize) < im.w
                                        {
                                            acc += wt[((o * im.c + ci) * k + ky) * k + kx]
                                                * im.v[(ci * im.h + iy as usize) * im.w
                                                    + ix as usize];
                                        }
                                    }
                                }
                            }
                            v[(o * oh + y) * ow + xx] = acc;
                        }
                    }
                }
                Img {
                    c: out,
                    h: oh,
                    w: ow,
                    v,
                }
            })
            .collect()
    }

    fn bn(&mut self, x: &[Img], name: &str) -> Vec<Img> {
        let (c, hw) = (x[0].c, x[0].h * x[0].w);
        let m = (x.len() * hw) as f64;
        let (mean, var) = if self.train {
            let mut mean = vec![0.0; c];
            let mut var = vec![0.0; c];
            for ch in 0..c {
                mean[ch] = x
                    .iter()
                    .map(|im| im.v[ch * hw..(ch + 1) * hw].iter().sum::<f64>())
                    .sum::<f64>()
                    / m;
                var[ch] = x
                    .iter()
                    .map(|im| {
                        im.v[ch * hw..(ch + 1) * hw]
                            .iter()
                            .map(|v| (v - mean[ch]).powi(2))
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / m;
            }
            self.stats
                .push((name.to_string(), mean.clone(), var.clone()));
            (mean, var)
        } else {
            (
                self.get(&format!("{name}.running_mean")),
                self.get(&format!("{name}.running_var")),
            )
        };
        let (g, b) = (
            self.get(&format!("{name}.weight")),
            self.get(&format!("{name}.bias")),
        );
        x.iter()
            .map(|im| {
                let mut o = im.clone();
                for ch in 0..c {
                    for v in &mut o.v[ch * hw..(ch + 1) * hw] {
                        *v = (*v - mean[ch]) / (var[ch] + self.eps).sqrt() * g[ch] + b[ch];
                    }
                }
                o
            })
            .collect()
    }

    fn forward(&mut self, cfg: &ResNetConfig, x: &Array2<f32>) -> Vec<Vec<f64>> {
        let [c, h, w] = cfg.input;
        let relu = |x: Vec<Img>| -> Vec<Img> {
            x.into_iter()
                .map(|mut im| {
                    im.v.iter_mut().for_each(|v| *v = v.max(0.0));
                    im
                })
                .collect()
        };
        let mut a: Vec<Img> = x
            .rows()
            .into_iter()
            .map(|r| Img {
                c,
                h,
                w,
                v: r.iter().map(|&v| f64::from(v)).collect(),
            })
            .collect();
        let stem = self.conv(&a, "conv1", cfg.widths[0], 7, 2, 3);
        let stem = relu(self.bn(&stem, "bn1"));
        // Max-pool 3 × 3, stride 2, padding 1 (padding never wins).
        a = stem
            .iter()
            .map(|im| {
                let (oh, ow) = ((im.h - 1) / 2 + 1, (im.w - 1) / 2 + 1);
                let mut v = vec![f64::NEG_INFINITY; im.c * oh * ow];
                for ch in 0..im.c {
                    for y in 0..oh {
                        for xx in 0..ow {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (y * 2 + ky) as isize - 1;
                                    let ix = (xx * 2 + kx) as isize - 1;
                                    if iy >= 0
                                        && ix >= 0
                                        && (iy as usize) < im.h
                                        && (ix as usize) < im.w
                                    {
                                        let o = &mut v[(ch * oh + y) * ow + xx];
                                        *o = o.max(
                                            im.v[(ch * im.h + iy as usize) * im.w + ix as usize],
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
                Img {
                    c: im.c,
                    h: oh,
                    w: ow,
                    v,
                }
            })
            .collect();
        for (s, (&width, &n)) in cfg.widths.iter().zip(&cfg.blocks).enumerate() {
            for b in 0..n {
                let name = format!("layer{}.{b}", s + 1);
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let y = self.conv(&a, &format!("{name}.conv1"), width, 3, stride, 1);
                let y = relu(self.bn(&y, &format!("{name}.bn1")));
                let y = self.conv(&y, &format!("{name}.conv2"), width, 3, 1, 1);
                let y = self.bn(&y, &format!("{name}.bn2"));
                let sc = if stride != 1 || a[0].c != width {
                    let d = self.conv(&a, &format!("{name}.downsample.0"), width, 1, stride, 0);
                    self.bn(&d, &format!("{name}.downsample.1"))
                } else {
                    a.clone()
                };
                a = relu(
                    y.into_iter()
                        .zip(sc)
                        .map(|(mut u, v)| {
                            u.v.iter_mut().zip(&v.v).for_each(|(p, q)| *p += q);
                            u
                        })
                        .collect(),
                );
            }
        }
        let (fw, fb) = (self.get("fc.weight"), self.get("fc.bias"));
        let (hw, hb) = (self.get("head.weight"), self.get("head.bias"));
        a.iter()
            .map(|im| {
                let hwn = im.h * im.w;
                let feats: Vec<f64> = (0..im.c)
                    .map(|ch| im.v[ch * hwn..(ch + 1) * hwn].iter().sum::<f64>() / hwn as f64)
                    .collect();
                let u: Vec<f64> = (0..cfg.hidden)
                    .map(|j| {
                        let z = fb[j] + (0..im.c).map(|k| fw[j * im.c + k] * feats[k]).sum::<f64>();
                        if z > 0.0 {
                            z
                        } else {
                            z * f64::from(cfg.negative_slope)
                        }
                    })
                    .collect();
                let hv: Vec<f64> = (0..cfg.output_dim)
                    .map(|k| {
                        hb[k]
                            + (0..cfg.hidden)
                                .map(|j| hw[k * cfg.hidden + j] * u[j])
                                .sum::<f64>()
                    })
                    .collect();
                match cfg.normalization {
                    Normalization::None => hv,
                    Normalization::LearnableBox { .. } => {
                        let bnd = self.get("norm.bound");
                        hv.iter()
                            .enumerate()
                            .map(|(k, v)| bnd[k] / (1.0 + (-v).exp()))
                            .collect()
                    }
                    _ => unimplemented!("the tests use none and box"),
                }
            })
            .collect()
    }
}

fn close(a: &Array2<f32>, b: &[Vec<f64>], tol: f64, what: &str) {
    for (r, row) in b.iter().enumerate() {
        for (k, &want) in row.iter().enumerate() {
            let got = f64::from(a[[r, k]]);
            assert!(
                (got - want).abs() <= tol * (1.0 + want.abs()),
                "{what} [{r}, {k}]: clica {got} vs reference {want}"
            );
        }
    }
}

#[test]
fn forward_matches_a_naive_f64_resnet_with_torchvision_names() {
    let cfg = small(Normalization::LearnableBox { init_bound: 0.7 }, 2);
    let mut enc = ResNetEncoder::new(cfg.clone(), &mut RunSeed::new(1).stream("encoder")).unwrap();
    // Random γ, β and running averages, so that no batch-norm parameter is a no-op.
    let mut rng = RunSeed::new(2).stream("bn");
    let params: Vec<NamedTensor> = enc
        .parameters()
        .into_iter()
        .map(|mut t| {
            if t.name.contains("bn") || t.name.contains("downsample.1") {
                for v in &mut t.data {
                    *v = if t.name.ends_with("running_var") {
                        rng.random_range(0.5..2.0)
                    } else {
                        rng.random_range(-0.5..0.5)
                            + if t.name.ends_with("weight") { 1.0 } else { 0.0 }
                    };
                }
            }
            t
        })
        .collect();
    enc.set_parameters(&params).unwrap();
    let x = inputs(3, 5, 3 * 19 * 19);
    let params64 = to_f64(&params);
    let mut reference = Reference {
        params: &params64,
        train: false,
        eps: f64::from(cfg.bn_eps),
        stats: Vec::new(),
    };
    // Inference: the running averages.
    let want = reference.forward(&cfg, &x);
    close(&enc.encode_f32(x.view()), &want, 2e-4, "inference");
    // Training: the batch's statistics, and the running averages move towards them.
    reference.train = true;
    let want = reference.forward(&cfg, &x);
    let got = enc.forward_train(x.view()).to_owned();
    close(&got, &want, 2e-4, "training");
    let after = enc.parameters();
    let m = 0.1f64;
    assert_eq!(
        reference.stats.len(),
        1 + 4 * 2 * 2 + 3,
        "every batch norm seen"
    );
    for (name, mean, var) in &reference.stats {
        let count = (5 * {
            // Values per channel: the batch times the map's positions.
            let l = enc
                .plan()
                .units
                .iter()
                .zip(after.iter().filter(|t| t.name.ends_with(".running_mean")))
                .find(|(_, t)| t.name == format!("{name}.running_mean"))
                .expect("unit")
                .0;
            l.positions()
        }) as f64;
        for (suffix, batch, unbiased) in [("running_mean", mean, false), ("running_var", var, true)]
        {
            let before = params
                .iter()
                .find(|t| t.name == format!("{name}.{suffix}"))
                .unwrap();
            let now = after
                .iter()
                .find(|t| t.name == format!("{name}.{suffix}"))
                .unwrap();
            for ((&b, &n), &v) in before.data.iter().zip(&now.data).zip(batch) {
                let v = if unbiased {
                    v * count / (count - 1.0)
                } else {
                    v
                };
                let want = (1.0 - m) * f64::from(b) + m * v;
                assert!(
                    (f64::from(n) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{name}.{suffix}: {n} vs {want}"
                );
            }
        }
    }
}

/// Step of the central differences, taken on the f64 reference: small enough that no ReLU
/// kink is crossed (batch norm puts many activations near zero, so f32 differences at a
/// step f32 can resolve cross kinks and disagree by tens of percent).
const EPS: f64 = 1e-6;

#[test]
fn gradients_match_central_finite_differences_of_the_f64_reference() {
    for (i, norm) in [
        Normalization::None,
        Normalization::LearnableBox { init_bound: 0.7 },
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = small(norm, 2);
        let enc = ResNetEncoder::new(
            cfg.clone(),
            &mut RunSeed::new(10 + i as u64).stream("encoder"),
        )
        .unwrap();
        let rows = 6;
        let x = inputs(4, rows, 3 * 19 * 19);
        let mut rng = RunSeed::new(20 + i as u64).stream("probe");
        let c = Array2::from_shape_fn((rows, 3), |_| rng.random_range(-1.0..1.0f32));
        // L = Σ c ⊙ out in training mode (batch statistics), so dL/d out = c.
        let params = to_f64(&enc.parameters());
        let loss = |p: &Params| -> f64 {
            let mut r = Reference {
                params: p,
                train: true,
                eps: f64::from(cfg.bn_eps),
                stats: Vec::new(),
            };
            r.forward(&cfg, &x)
                .iter()
                .flatten()
                .zip(c.iter())
                .map(|(&o, &w)| o * f64::from(w))
                .sum()
        };
        let mut probe = enc.clone();
        probe.forward_train(x.view());
        probe.backward(c.view());
        let grads = probe.gradients().unwrap();
        assert_eq!(grads.len(), params.len());
        for ((name, p), g) in params.iter().zip(&grads) {
            assert_eq!(*name, g.name);
            if name.contains("running") {
                // Training-mode outputs do not depend on the running averages.
                assert!(g.data.iter().all(|&v| v == 0.0), "{name}: zero gradient");
                continue;
            }
            // A random direction per tensor: g·v against (L(θ + εv) − L(θ − εv)) / 2ε.
            let v: Vec<f64> = (0..p.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let analytic: f64 = g.data.iter().zip(&v).map(|(&a, &b)| f64::from(a) * b).sum();
            let shifted = |sign: f64| {
                let mut moved = params.clone();
                let t = moved.iter_mut().find(|t| t.0 == *name).unwrap();
                for (d, &dv) in t.1.iter_mut().zip(&v) {
                    *d += sign * EPS * dv;
                }
                loss(&moved)
            };
            let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * EPS);
            assert!(
                (analytic - numeric).abs() <= 1e-3 * analytic.abs().max(numeric.abs()) + 1e-4,
                "{norm:?} {name}: analytic {analytic} vs numeric {numeric}"
            );
        }
    }
}

#[test]
fn training_is_reproducible_and_the_optimiser_leaves_running_averages_alone() {
    let cfg = small(Normalization::LearnableBox { init_bound: 1.0 }, 2);
    let mut a = ResNetEncoder::new(cfg.clone(), &mut RunSeed::new(5).stream("encoder")).unwrap();
    let mut b = ResNetEncoder::new(cfg, &mut RunSeed::new(5).stream("encoder")).unwrap();
    let x = inputs(6, 9, 3 * 19 * 19);
    let g = Array2::from_elem((9, 3), 0.1f32);
    let mut adam = Adam::new(AdamConfig::default()).unwrap();
    let mut adam_b = Adam::new(AdamConfig::default()).unwrap();
    for _ in 0..2 {
        a.forward_train(x.view());
        a.backward(g.view());
        let running: Vec<NamedTensor> = a
            .parameters()
            .into_iter()
            .filter(|t| t.name.contains("running"))
            .collect();
        adam.step(&mut a, 1e-2).unwrap();
        let after: Vec<NamedTensor> = a
            .parameters()
            .into_iter()
            .filter(|t| t.name.contains("running"))
            .collect();
        assert_eq!(running, after, "Adam must not move the running averages");
        b.forward_train(x.view());
        b.backward(g.view());
        adam_b.step(&mut b, 1e-2).unwrap();
    }
    assert_eq!(a.parameters(), b.parameters());
    assert_eq!(a.encode_f32(x.view()), b.encode_f32(x.view()));
    // Another thread count changes rounding only.
    let mut c = ResNetEncoder::new(
        small(Normalization::LearnableBox { init_bound: 1.0 }, 3),
        &mut RunSeed::new(5).stream("encoder"),
    )
    .unwrap();
    c.forward_train(x.view());
    c.backward(g.view());
    let mut e = ResNetEncoder::new(
        small(Normalization::LearnableBox { init_bound: 1.0 }, 1),
        &mut RunSeed::new(5).stream("encoder"),
    )
    .unwrap();
    e.forward_train(x.view());
    e.backward(g.view());
    for (gc, ge) in c.gradients().unwrap().iter().zip(e.gradients().unwrap()) {
        for (u, v) in gc.data.iter().zip(&ge.data) {
            assert!(
                (u - v).abs() <= 1e-4 * (1.0 + u.abs()),
                "{}: {u} vs {v}",
                gc.name
            );
        }
    }
}

#[test]
fn resnet18_has_torchvisions_shapes_and_bad_configurations_are_errors() {
    let enc = ResNetEncoder::new(
        ResNetConfig::resnet18([3, 64, 64], 10),
        &mut RunSeed::new(0).stream("encoder"),
    )
    .unwrap();
    let p = enc.parameters();
    // torchvision's resnet18 has 11,689,512 parameters with its 1000-way fc (512·1000 +
    // 1000 of them) and 9,600 running-average values; ours has fc 512 → 100 and the head.
    let trained: usize = p
        .iter()
        .filter(|t| !t.name.contains("running"))
        .map(|t| t.data.len())
        .sum();
    assert_eq!(
        trained,
        11_689_512 - 513_000 + 512 * 100 + 100 + 100 * 10 + 10
    );
    let running: usize = p
        .iter()
        .filter(|t| t.name.contains("running"))
        .map(|t| t.data.len())
        .sum();
    assert_eq!(running, 9_600);
    let shape = |n: &str| p.iter().find(|t| t.name == n).unwrap().shape.clone();
    assert_eq!(shape("conv1.weight"), vec![64, 3, 7, 7]);
    assert_eq!(shape("layer3.0.downsample.0.weight"), vec![256, 128, 1, 1]);
    assert_eq!(shape("layer4.1.conv2.weight"), vec![512, 512, 3, 3]);
    // 64 × 64: the last stage's maps are 2 × 2.
    assert_eq!(enc.plan().final_positions, 4);
    let base = ResNetConfig::resnet18([3, 64, 64], 10);
    for (bad, key) in [
        (
            ResNetConfig {
                hidden: 0,
                ..base.clone()
            },
            "hidden",
        ),
        (base.clone().with_widths([64, 0, 256, 512]), "widths[1]"),
        (
            ResNetConfig {
                output_dim: 0,
                ..base.clone()
            },
            "output_dim",
        ),
        (
            ResNetConfig {
                bn_momentum: 1.5,
                ..base.clone()
            },
            "bn_momentum",
        ),
        (
            base.clone().with_input_norm(vec![0.0; 2], vec![1.0; 2]),
            "input_norm",
        ),
    ] {
        let err = ResNetEncoder::new(bad, &mut RunSeed::new(0).stream("encoder"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}
