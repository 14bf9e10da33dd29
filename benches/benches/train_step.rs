//! One contrastive training step of the paper's encoder (n = 10: 10-100-500-500-500-500-100-10),
//! one step of the fast protocol on Table 1 row 1 (10-100-100-100-10, symmetric sphere
//! InfoNCE) and each loss kernel alone, at batch 512, 2048 and 6144.
//!
//! Run: `cargo bench -p clica-benches --bench train_step`
//! Compare: `benches/pytorch/step.py` (the reference-style PyTorch step), see docs/performance.md.

use clica_core::{LatentPrior, RunSeed};
use clica_encoders::{EncoderConfig, MlpEncoder, Normalization};
use clica_objectives::{
    ContrastiveLoss, Grouped, LpForm, LpInfoNce, SelfTerm, SphereInfoNce, Symmetric,
};
use clica_priors::{Conditional, Marginal, Prior, Space};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::{Array2, Axis};

const N: usize = 10;

fn losses() -> Vec<(&'static str, Box<dyn ContrastiveLoss<f32>>)> {
    vec![
        (
            "sphere",
            Box::new(SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap()),
        ),
        (
            "p1",
            Box::new(LpInfoNce::new(1, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap()),
        ),
    ]
}

fn inputs(b: usize) -> Array2<f32> {
    let prior = Prior::new(
        Space::Sphere { radius: 1.0 },
        N,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 1.0 },
    )
    .unwrap();
    let seed = RunSeed::new(0);
    let z = prior.marginal(&mut seed.stream("bench"), 2 * b);
    z.mapv(|v| v as f32)
}

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step_paper_encoder_n10");
    group.sample_size(10);
    for b in [512usize, 2048, 6144] {
        let x = inputs(b);
        for (name, loss) in losses() {
            let norm = if name == "sphere" {
                Normalization::Sphere { radius: 1.0 }
            } else {
                Normalization::None
            };
            let cfg = EncoderConfig::paper(N).with_normalization(norm);
            let mut enc = MlpEncoder::new(cfg, &mut RunSeed::new(0).stream("encoder")).unwrap();
            let mut grad = Array2::<f32>::zeros((2 * b, N));
            group.bench_function(BenchmarkId::new(name, b), |bench| {
                bench.iter(|| {
                    let h = enc.forward_train(x.view());
                    let (ha, hp) = h.split_at(Axis(0), b);
                    let (ga, gp) = grad.view_mut().split_at(Axis(0), b);
                    let l = loss.loss_and_grad(ha, hp, ga, gp);
                    enc.backward_and_step(grad.view(), 1e-4);
                    l
                })
            });
        }
        let cfg = EncoderConfig::paper(N);
        let mut enc = MlpEncoder::new(cfg, &mut RunSeed::new(0).stream("encoder")).unwrap();
        let ones = Array2::<f32>::ones((2 * b, N));
        group.bench_function(
            BenchmarkId::new("encoder_forward_backward_adam", b),
            |bench| {
                bench.iter(|| {
                    enc.forward_train(x.view());
                    enc.backward_and_step(ones.view(), 1e-4);
                })
            },
        );
    }
    group.finish();
}

/// The fast protocol's step on Table 1 row 1, as `cargo xtask reproduce` runs it: the
/// 10n-10n-10n encoder on the sphere, the symmetric sphere InfoNCE (τ = 1), Adam, B = 2048
/// (and 512, 6144 for the shape of the curve).
fn fast_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step_fast_protocol_n10");
    group.sample_size(10);
    let loss = Symmetric::new(SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap());
    for b in [512usize, 2048, 6144] {
        let x = inputs(b);
        let cfg = EncoderConfig::paper(N)
            .with_hidden(vec![10 * N, 10 * N, 10 * N])
            .with_normalization(Normalization::Sphere { radius: 1.0 });
        let mut enc = MlpEncoder::new(cfg, &mut RunSeed::new(0).stream("encoder")).unwrap();
        let mut grad = Array2::<f32>::zeros((2 * b, N));
        group.bench_function(BenchmarkId::new("sphere_symmetric", b), |bench| {
            bench.iter(|| {
                let h = enc.forward_train(x.view());
                let (ha, hp) = h.split_at(Axis(0), b);
                let (ga, gp) = grad.view_mut().split_at(Axis(0), b);
                let l = loss.loss_and_grad(ha, hp, ga, gp);
                enc.backward_and_step(grad.view(), 1e-3);
                l
            })
        });
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("loss_kernel_d10");
    group.sample_size(10);
    for b in [512usize, 2048, 6144] {
        let x = inputs(b);
        let (h, ht) = x.view().split_at(Axis(0), b);
        let mut grad = Array2::<f32>::zeros((2 * b, N));
        let mut all = losses();
        all.push((
            "p2",
            Box::new(LpInfoNce::new(2, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap()),
        ));
        all.push((
            "p3",
            Box::new(LpInfoNce::new(3, 1.0, LpForm::SimClr, SelfTerm::Keep).unwrap()),
        ));
        let sphere = || SphereInfoNce::new(1.0, SelfTerm::Keep).unwrap();
        all.push(("sphere_symmetric", Box::new(Symmetric::new(sphere()))));
        all.push((
            "sphere_symmetric_groups512",
            Box::new(Symmetric::new(Grouped::new(sphere(), 512).unwrap())),
        ));
        for (name, loss) in all {
            group.bench_function(BenchmarkId::new(name, b), |bench| {
                bench.iter(|| {
                    let (ga, gp) = grad.view_mut().split_at(Axis(0), b);
                    loss.loss_and_grad(h, ht, ga, gp)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, step, fast_step, kernels);
criterion_main!(benches);
