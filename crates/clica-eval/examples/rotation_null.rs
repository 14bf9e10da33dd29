//! The MCC of a uniformly random rotation: what a representation identified only up to a
//! rotation scores, by chance, against the true latents.
//!
//! Draws rotations Q from the Haar measure on O(n) (QR of a Gaussian matrix with the signs
//! fixed), latents z ~ N(0, I) (`samples` rows), the representation h = z·Qᵀ, and scores
//! MCC (Pearson) with the same estimator the runs use. Prints the distribution of one
//! rotation's MCC and of the mean over `seeds` independent rotations (what a row reports
//! over its seeds), as percentiles in %.
//!
//! `cargo run --release -p clica-eval --example rotation_null -- [n] [draws] [samples] [seeds]`
//! (defaults 10 2000 4096 3). Its output for the defaults is the `mcc_band` of Table 1 row 12
//! in `configs/reproduce.toml`.
use clica_core::RunSeed;
use clica_eval::{mcc, Correlation};
use ndarray::Array2;
use rand_distr::{Distribution, StandardNormal};

/// A Haar-distributed orthogonal n × n matrix: Gram–Schmidt on a Gaussian matrix's columns
/// (the Q of its QR decomposition with a positive diagonal of R).
fn haar(n: usize, rng: &mut impl rand::Rng) -> Array2<f64> {
    let mut q = Array2::<f64>::from_shape_fn((n, n), |_| StandardNormal.sample(rng));
    for j in 0..n {
        for k in 0..j {
            let d = q.column(j).dot(&q.column(k));
            let qk = q.column(k).to_owned();
            q.column_mut(j).scaled_add(-d, &qk);
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        q.column_mut(j).mapv_inplace(|v| v / norm);
    }
    q
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match std::env::args().nth(i) {
            Some(a) => a.parse().map_err(|e| format!("argument {i} ({a}): {e}"))?,
            None => d,
        })
    };
    let (n, draws, samples, seeds) = (arg(1, 10)?, arg(2, 2000)?, arg(3, 4096)?, arg(4, 3)?);
    if n == 0 || draws < seeds.max(2) || samples < 2 * n || seeds == 0 {
        return Err("need n ≥ 1, draws ≥ max(seeds, 2), samples ≥ 2n, seeds ≥ 1".into());
    }
    let mut rng = RunSeed::new(0).stream("rotation_null");
    let mut one = Vec::with_capacity(draws);
    for _ in 0..draws {
        let q = haar(n, &mut rng);
        let z = Array2::<f64>::from_shape_fn((samples, n), |_| StandardNormal.sample(&mut rng));
        let h = z.dot(&q.t());
        one.push(100.0 * mcc(z.view(), h.view(), Correlation::Pearson)?.score);
    }
    let mut means: Vec<f64> = one
        .chunks_exact(seeds)
        .map(|c| c.iter().sum::<f64>() / seeds as f64)
        .collect();
    one.sort_by(f64::total_cmp);
    means.sort_by(f64::total_cmp);
    let show = |what: &str, v: &[f64]| {
        println!(
            "{what}: mean {:.2}, percentiles 0.5 % {:.2}, 2.5 % {:.2}, 50 % {:.2}, 97.5 % {:.2}, 99.5 % {:.2} ({} values)",
            v.iter().sum::<f64>() / v.len() as f64,
            percentile(v, 0.005),
            percentile(v, 0.025),
            percentile(v, 0.5),
            percentile(v, 0.975),
            percentile(v, 0.995),
            v.len()
        );
    };
    println!("MCC (Pearson, %) of h = Qz, Q uniform on O({n}), z ~ N(0, I), {samples} samples");
    show("one rotation", &one);
    show(&format!("mean of {seeds} rotations"), &means);
    Ok(())
}
