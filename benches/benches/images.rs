//! The image half: rendering 3DIdent-like images (64 × 64, with and without supersampling)
//! and one training step (forward + backward + Adam) of the default conv encoder (the KITTI
//! conv net) at batch 256 and 1,024 images of 3 × 64 × 64.
//!
//! Run: `cargo bench -p clica-benches --bench images`
//! Compare: `benches/pytorch/conv_step.py` (the same conv net in PyTorch), see
//! docs/performance.md.

use clica_conv::{ConvEncoder, ConvEncoderConfig};
use clica_core::{RunSeed, TrainableEncoder};
use clica_optim::{Adam, AdamConfig};
use clica_render::{RenderConfig, Renderer, N_LATENTS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use rand::Rng;

fn render(c: &mut Criterion) {
    let n = 256;
    let mut rng = RunSeed::new(0).stream("bench");
    let z = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let mut group = c.benchmark_group("render_64x64");
    group.throughput(Throughput::Elements(n as u64));
    for ss in [1, 2] {
        let r = Renderer::new(&RenderConfig::new(64).with_supersample(ss)).unwrap();
        let mut out = vec![0u8; n * r.image_len()];
        group.bench_function(BenchmarkId::new("supersample", ss), |b| {
            b.iter(|| r.render_batch(z.view(), &mut out).unwrap())
        });
    }
    group.finish();
}

fn conv_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv_kitti_64x64_step");
    group.sample_size(10);
    for batch in [256, 1024] {
        let mut enc = ConvEncoder::new(
            ConvEncoderConfig::kitti([3, 64, 64], 10),
            &mut RunSeed::new(0).stream("encoder"),
        )
        .unwrap();
        let mut rng = RunSeed::new(1).stream("x");
        let x = Array2::from_shape_fn((batch, 3 * 64 * 64), |_| rng.random_range(0.0..1.0f32));
        let g = Array2::from_shape_fn((batch, 10), |_| rng.random_range(-1e-3..1e-3f32));
        let mut adam = Adam::new(AdamConfig::default()).unwrap();
        group.bench_function(BenchmarkId::new("forward_backward_adam", batch), |b| {
            b.iter(|| {
                enc.forward_train(x.view());
                enc.backward(g.view());
                adam.step(&mut enc, 1e-4).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render, conv_step);
criterion_main!(benches);
