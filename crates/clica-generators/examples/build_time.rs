//! Times building the paper's default generator (n = 10, 3 layers, pool 25,000, ratio 0).
//!
//! `cargo run --release -p clica-generators --example build_time [dim] [seed]`

use clica_core::RunSeed;
use clica_generators::{InvertibleMlp, MlpConfig};
use std::time::Instant;

fn main() -> clica_generators::Result<()> {
    let mut args = std::env::args().skip(1);
    let dim: usize = args.next().map_or(10, |a| a.parse().expect("dim"));
    let seed: u64 = args.next().map_or(0, |a| a.parse().expect("seed"));
    let config = MlpConfig::new(dim);
    let t = Instant::now();
    let g = InvertibleMlp::build(&config, &mut RunSeed::new(seed).stream("generator"))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "dim {dim}, {} layers, pool {}: built in {secs:.2} s on {} rayon threads",
        config.layers,
        config.cond_pool_size,
        rayon::current_num_threads()
    );
    println!("threshold {:.4}", g.cond_threshold().unwrap_or(f64::NAN));
    println!("layer condition numbers {:?}", g.condition_numbers());
    println!("candidates drawn per layer {:?}", g.candidates_drawn());
    println!("fingerprint {}", g.fingerprint().hex());
    Ok(())
}
