//! Latent spaces, marginals and conditionals of the clica data-generating process.
//!
//! A [`Prior`] is a [`Space`] (sphere of radius r, box [a, b]ⁿ, or ℝⁿ), a [`Marginal`] p(z)
//! (uniform, normal, Laplace, generalized normal) and a [`Conditional`] p(z̃ | z)
//! (von Mises–Fisher on the sphere; normal, Laplace, generalized normal centred at z, projected
//! back onto the sphere or truncated to the box). [`ProductPrior`] concatenates priors. Both
//! implement [`clica_core::LatentPrior`]: rows are samples, batches are written into the
//! caller's buffer, in parallel, bit-identically for any number of threads.
//!
//! Every parameter is validated once, in [`Prior::new`]; sampling never fails.
//!
//! # Example
//!
//! ```
//! use clica_core::RunSeed;
//! use clica_priors::{Conditional, LatentPrior, Marginal, Prior, Space};
//!
//! // Uniform latents on the sphere of radius 2 in R^10, vMF(κ = 10) positives.
//! let prior = Prior::new(
//!     Space::Sphere { radius: 2.0 },
//!     10,
//!     Marginal::Uniform,
//!     Conditional::VonMisesFisher { kappa: 10.0 },
//! )?;
//! let mut rng = RunSeed::new(0).stream("prior");
//! let z = prior.marginal(&mut rng, 1000);
//! let z_pos = prior.conditional(&mut rng, z.view());
//! assert_eq!(z_pos.dim(), (1000, 10));
//! for (a, p) in z.rows().into_iter().zip(z_pos.rows()) {
//!     assert!((a.dot(&a).sqrt() - 2.0).abs() < 1e-12);
//!     assert!((p.dot(&p).sqrt() - 2.0).abs() < 1e-12);
//! }
//! // Positives are concentrated around their anchors: E[cos] = I_5(10)/I_4(10) ≈ 0.634.
//! let mean_cos = z.rows().into_iter().zip(z_pos.rows())
//!     .map(|(a, p)| a.dot(&p) / 4.0)
//!     .sum::<f64>() / 1000.0;
//! assert!((mean_cos - 0.634).abs() < 0.05);
//!
//! // Invalid parameters are errors that name the parameter.
//! let err = Prior::new(Space::Unbounded, 3, Marginal::Uniform, Conditional::Normal { sigma: 1.0 });
//! assert!(err.unwrap_err().to_string().contains("marginal"));
//! # Ok::<(), clica_priors::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chunks;
mod noise;
mod params;
mod prior;
mod product;
mod vmf;

pub use clica_core::{Error, LatentPrior, Result};
pub use params::{Conditional, Marginal, Space, MIN_GENNORM_BETA};
pub use prior::Prior;
pub use product::ProductPrior;
