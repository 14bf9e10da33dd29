//! Scoring cost at the paper's evaluation size: R² and MCC on 6144 × 10.
//!
//! Run: `cargo bench -p clica-benches --bench metrics`

use clica_core::{LatentPrior, RunSeed};
use clica_eval::Correlation;
use clica_generators::{InvertibleMlp, MlpConfig};
use clica_priors::{Conditional, Marginal, Prior, Space};
use criterion::{criterion_group, criterion_main, Criterion};

fn metrics(c: &mut Criterion) {
    let seed = RunSeed::new(0);
    let prior = Prior::new(
        Space::Sphere { radius: 1.0 },
        10,
        Marginal::Uniform,
        Conditional::VonMisesFisher { kappa: 1.0 },
    )
    .unwrap();
    let z = prior.marginal(&mut seed.stream("bench"), 6144);
    let mut cfg = MlpConfig::new(10);
    cfg.cond_pool_size = 1000;
    let g = InvertibleMlp::build(&cfg, &mut seed.stream("generator")).unwrap();
    let x = clica_core::Generator::forward(&g, z.view());
    let mut group = c.benchmark_group("scores_6144x10");
    group.bench_function("r2_in_sample", |b| {
        b.iter(|| clica_eval::r2_in_sample(z.view(), x.view()).unwrap())
    });
    group.bench_function("r2_held_out_half", |b| {
        b.iter(|| clica_eval::r2_held_out_half(z.view(), x.view()).unwrap())
    });
    group.bench_function("mcc_pearson", |b| {
        b.iter(|| clica_eval::mcc(z.view(), x.view(), Correlation::Pearson).unwrap())
    });
    group.bench_function("mcc_spearman", |b| {
        b.iter(|| clica_eval::mcc(z.view(), x.view(), Correlation::Spearman).unwrap())
    });
    group.bench_function("evaluate_all", |b| {
        b.iter(|| clica_eval::evaluate(z.view(), x.view()).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = metrics
}
criterion_main!(benches);
