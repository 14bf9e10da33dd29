//! The paper's mixing: build it from a seed, push latents through it, invert it exactly.
//!
//! `cargo run --release -p clica-generators --example mix_and_invert`

use clica_core::RunSeed;
use clica_generators::{InvertibleMlp, MlpConfig};
use ndarray::Array2;

fn main() -> Result<(), clica_core::Error> {
    let seed = RunSeed::new(1);
    // The paper selects each weight matrix against 25 000 random ones; 1 000 is quicker.
    let cfg = MlpConfig {
        cond_pool_size: 1000,
        ..MlpConfig::new(5)
    };
    let g = InvertibleMlp::build(&cfg, &mut seed.stream("generator"))?;
    let z = Array2::from_shape_fn((4, 5), |(i, j)| (i as f64 - 1.5) * 0.3 + j as f64 * 0.1);
    let x = g.forward(z.view());
    let back = g.inverse(x.view())?;
    let err = (&back - &z).iter().fold(0.0f64, |m, d| m.max(d.abs()));
    println!(
        "generator {}: max |g⁻¹(g(z)) − z| = {err:.2e}",
        g.fingerprint().hex()
    );
    Ok(())
}
