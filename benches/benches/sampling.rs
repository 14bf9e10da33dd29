//! Sampling throughput at the paper's batch size (6144) and n = 10.
//!
//! Run: `cargo bench -p clica-benches --bench sampling`

use clica_core::{LatentPrior, RunSeed};
use clica_generators::{InvertibleMlp, MlpConfig};
use clica_priors::{Conditional, Marginal, Prior, Space};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;

const B: usize = 6144;
const N: usize = 10;

fn conditionals(c: &mut Criterion) {
    let cases = [
        (
            "vmf_kappa1_sphere",
            Prior::new(
                Space::Sphere { radius: 1.0 },
                N,
                Marginal::Uniform,
                Conditional::VonMisesFisher { kappa: 1.0 },
            ),
        ),
        (
            "vmf_kappa10_sphere",
            Prior::new(
                Space::Sphere { radius: 1.0 },
                N,
                Marginal::Uniform,
                Conditional::VonMisesFisher { kappa: 10.0 },
            ),
        ),
        (
            "normal_truncated_box",
            Prior::new(
                Space::Box {
                    low: 0.0,
                    high: 1.0,
                },
                N,
                Marginal::Uniform,
                Conditional::Normal { sigma: 0.05 },
            ),
        ),
        (
            "laplace_truncated_box",
            Prior::new(
                Space::Box {
                    low: 0.0,
                    high: 1.0,
                },
                N,
                Marginal::Uniform,
                Conditional::Laplace { scale: 0.05 },
            ),
        ),
    ];
    let mut group = c.benchmark_group("conditional_6144x10");
    group.throughput(Throughput::Elements(B as u64));
    for (name, prior) in cases {
        let prior = prior.expect("valid prior");
        let seed = RunSeed::new(0);
        let mut rng = seed.stream("bench");
        let z = prior.marginal(&mut rng, B);
        let mut out = Array2::zeros((B, N));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| prior.sample_conditional(&mut rng, z.view(), out.view_mut()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("marginal_6144x10");
    group.throughput(Throughput::Elements(B as u64));
    let sphere = Prior::new(
        Space::Sphere { radius: 1.0 },
        N,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 1.0 },
    )
    .unwrap();
    let mut rng = RunSeed::new(1).stream("bench");
    let mut out = Array2::zeros((B, N));
    group.bench_function("uniform_sphere", |b| {
        b.iter(|| sphere.sample_marginal(&mut rng, out.view_mut()))
    });
    group.finish();
}

fn mixing(c: &mut Criterion) {
    let seed = RunSeed::new(0);
    let prior = Prior::new(
        Space::Sphere { radius: 1.0 },
        N,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 1.0 },
    )
    .unwrap();
    let z = prior.marginal(&mut seed.stream("bench"), B);
    let mut cfg = MlpConfig::new(N);
    c.bench_function("mixing_build_n10_l3_pool25000", |b| {
        b.iter(|| InvertibleMlp::build(&cfg, &mut seed.stream("generator")).unwrap())
    });
    cfg.cond_pool_size = 1000;
    let g = InvertibleMlp::build(&cfg, &mut seed.stream("generator")).unwrap();
    c.bench_function("mixing_forward_6144x10_l3", |b| {
        b.iter(|| clica_core::Generator::forward(&g, z.view()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = conditionals, mixing
}
criterion_main!(benches);
