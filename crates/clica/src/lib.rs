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

/// Stack of [`in_pool`]'s threads: the main thread's usual 8 MiB.
const POOL_STACK_BYTES: usize = 8 << 20;

/// Runs `f` on a worker of a new rayon pool of the default size (RAYON_NUM_THREADS, else the
/// CPUs), or on this thread if no pool can be built. A training run started this way begins
/// each parallel region of its step from inside the pool, instead of waking the pool from
/// outside and sleeping until it is done: on the fast protocol, a quarter of the context
/// switches and 0.4–0.9 ms less per step (docs/performance.md). Results do not depend on it.
/// The `clica` binary runs every command this way, and so does the Python package's `train`.
pub fn in_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new()
        .stack_size(POOL_STACK_BYTES)
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// The types most programs need.
pub mod prelude {
    pub use clica_core::{Generator, LatentPrior, Metric, RunSeed};
    pub use clica_eval::{self, Correlation, Scores};
    pub use clica_generators::{Activation, InvertibleMlp, MlpConfig};
    pub use clica_priors::{Conditional, Marginal, Prior, Space};
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_pool_runs_on_a_worker_of_a_pool_of_the_default_size() {
        let outside = rayon::current_num_threads();
        let inside = super::in_pool(|| {
            (
                rayon::current_thread_index().is_some(),
                rayon::current_num_threads(),
            )
        });
        assert_eq!(inside, (true, outside));
        assert_eq!(rayon::current_thread_index(), None);
    }
}
