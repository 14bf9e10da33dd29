//! The shared vocabulary of **clica**: the traits through which latent priors, generator
//! networks, data sources ([`PairSource`]), encoders ([`Encoder`], [`TrainableEncoder`])
//! and metrics compose, the named tensors optimisers and checkpoints exchange, the error type they share, and the seeded,
//! portable random-number streams that make every run reproducible from one seed.
//!
//! Nothing in this crate does numerics beyond hashing and seeding; the algorithm crates
//! (`clica-priors`, `clica-generators`, `clica-eval`, `clica-objectives`, `clica-optim`)
//! depend on it and never on each other; `clica-encoders` also uses `clica-optim`.
//!
//! # Example
//!
//! ```
//! use clica_core::{RunSeed, Fingerprint};
//! use rand::Rng;
//!
//! // One run seed; every consumer asks for its own named stream.
//! let seed = RunSeed::new(42);
//! let mut a = seed.stream("prior.marginal");
//! let mut b = seed.stream("generator");
//! let (x, y): (u64, u64) = (a.random(), b.random());
//! assert_ne!(x, y);
//! // The same name always gives the same stream.
//! assert_eq!(x, seed.stream("prior.marginal").random::<u64>());
//!
//! // A stable 64-bit fingerprint of numbers (e.g. generator weights).
//! let mut fp = Fingerprint::new();
//! fp.write_f64s(&[1.0, 2.0]);
//! assert_eq!(fp.hex().len(), 16);
//! ```
// One audited `unsafe` block: `simd::clear_upper_state` (vzeroupper); everything else is safe.
#![deny(unsafe_code)]

pub mod check;
mod error;
mod mirror;
mod rng;
pub mod simd;
mod tensor;
mod traits;

pub use error::{Error, Result};
pub use mirror::{Mirror, Reflection};
pub use rng::{chunk_rng, ClicaRng, Fingerprint, RunSeed};
pub use tensor::{lend_flat, NamedTensor, ParamGrad};
pub use traits::{
    Encoder, Generator, LatentPrior, Metric, Observations, PairSource, Sample, TrainableEncoder,
};

/// Re-export of `ndarray` so downstream users get the exact version the traits use.
pub use ndarray;
