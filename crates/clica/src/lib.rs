//! **clica** — *Contrastive Learning Inverts the Data Generating Process*, in Rust.
//!
//! This is the composing crate: from one configuration ([`config`], [`registry`]) it builds a
//! run out of the priors (`clica-priors`), the generator networks (`clica-generators`), an
//! encoder (`clica-encoders`), an objective (`clica-objectives`), the optimiser
//! (`clica-optim`) and the scores (`clica-eval`). It trains through the traits with exact
//! checkpoint/resume ([`train`], [`source`], [`checkpoint`], [`lock`]), and owns `.npy`
//! input/output ([`npy`]), crash-safe result files ([`io`], typed by `clica-records`) and
//! the `clica` command-line tool ([`cli`]). Each of the other crates is usable on its own.
//!
//! # Example: the identity baseline of the paper's sphere setting
//!
//! ```
//! use clica::prelude::*;
//!
//! let seed = RunSeed::new(1);
//! let prior = Prior::new(
//!     Space::Sphere { radius: 1.0 },
//!     10,
//!     Marginal::Uniform,
//!     Conditional::VonMisesFisher { kappa: 1.0 },
//! )?;
//! let z = prior.marginal(&mut seed.stream("prior.marginal"), 2000);
//! let mut cfg = MlpConfig::new(10);
//! cfg.cond_pool_size = 500; // the paper uses 25 000; smaller keeps the example quick
//! let g = InvertibleMlp::build(&cfg, &mut seed.stream("generator"))?;
//! let x = g.forward(z.view());
//! let scores = clica_eval::identity_baseline(z.view(), x.view())?;
//! // The mixing is far from affine: x explains only part of z's variance.
//! assert!(scores.r2 > 0.3 && scores.r2 < 0.95);
//! // And it is exactly invertible.
//! let back = g.inverse(x.view())?;
//! assert!((&back - &z).iter().all(|d| d.abs() < 1e-10));
//! # Ok::<(), clica_core::Error>(())
//! ```
// No `s!` here: ndarray's macro expands to an `unsafe` block that `forbid` rejects.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod encode;
mod error;
pub mod images;
pub mod imageset;
pub mod io;
pub mod lock;
pub mod npy;
pub mod registry;
pub mod source;
pub mod train;

pub use error::{Error, Result};

/// The types most programs need.
pub mod prelude {
    pub use clica_core::{Generator, LatentPrior, Metric, RunSeed};
    pub use clica_eval::{self, Correlation, Scores};
    pub use clica_generators::{Activation, InvertibleMlp, MlpConfig};
    pub use clica_priors::{Conditional, Marginal, Prior, Space};
}
