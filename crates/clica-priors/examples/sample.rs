//! Anchors on the unit sphere and their vMF positives, from one run seed.
//!
//! `cargo run --release -p clica-priors --example sample`

use clica_core::{LatentPrior, RunSeed};
use clica_priors::{Conditional, Marginal, Prior, Space};

fn main() -> Result<(), clica_core::Error> {
    let seed = RunSeed::new(7);
    for kappa in [1.0, 10.0, 100.0] {
        let prior = Prior::new(
            Space::Sphere { radius: 1.0 },
            10,
            Marginal::Uniform,
            Conditional::VonMisesFisher { kappa },
        )?;
        let z = prior.marginal(&mut seed.stream("prior.marginal"), 20_000);
        let z_tilde = prior.conditional(&mut seed.stream("prior.conditional"), z.view());
        // E[cos(z, z̃)] = A_n(κ) = I_{n/2}(κ) / I_{n/2−1}(κ) for vMF on S^{n−1}.
        let cos = (&z * &z_tilde).sum() / z.nrows() as f64;
        println!("{}: mean cos(z, z̃) = {cos:.4}", prior.describe());
    }
    Ok(())
}
