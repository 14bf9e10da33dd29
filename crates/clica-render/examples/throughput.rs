//! Rendering rate: renders `n` images of uniform random latents at a given size and
//! supersampling on rayon's pool (set `RAYON_NUM_THREADS`), reports images per second (the
//! best of `reps` timed batches, 3 by default).
//!
//! ```sh
//! cargo run --release -p clica-render --example throughput -- [n] [size] [supersample] [reps]
//! ```
use clica_core::RunSeed;
use clica_render::{RenderConfig, Renderer, N_LATENTS};
use ndarray::Array2;
use rand::Rng;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(4096);
    let size: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let ss: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let reps: usize = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let renderer = Renderer::new(&RenderConfig::new(size).with_supersample(ss))?;
    let mut rng = RunSeed::new(0).stream("latents");
    let latents = Array2::from_shape_fn((n, N_LATENTS), |_| rng.random_range(-1.0..=1.0));
    let mut images = vec![0u8; n * renderer.image_len()];
    renderer.render_batch(latents.view(), &mut images)?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        renderer.render_batch(latents.view(), &mut images)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let mean = images.iter().map(|&b| f64::from(b)).sum::<f64>() / images.len() as f64 / 255.0;
    println!(
        "{n} images {size}x{size}, supersample {ss}, {} triangles, {} threads: best of {reps} {:.3} s = {:.0} images/s (pixel mean {mean:.3})",
        renderer.triangles(),
        rayon::current_num_threads(),
        best,
        n as f64 / best
    );
    Ok(())
}
