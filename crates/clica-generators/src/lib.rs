//! The paper's invertible "mixing" networks g: ℝⁿ → ℝⁿ, with exact inverses and stable
//! fingerprints.
//!
//! An [`InvertibleMlp`] has `L` bias-free `n × n` layers with an elementwise [`Activation`]
//! between them and none after the last: `x_{l+1} = act(W_l x_l)`. Each `W_l` has
//! Uniform(−1, 1) entries with every column scaled to unit L2 norm, and is redrawn until its
//! condition number is at most a threshold: the `cond_ratio` quantile of the condition numbers
//! of a pool of `cond_pool_size` such random matrices (defaults: 3 layers, LeakyReLU(0.2),
//! pool 25,000, ratio 0 = the pool's minimum).
//!
//! The network is built once per run from a seeded stream; the weight search runs in parallel
//! but its result depends only on the seed, never on the number of threads.
//! [`InvertibleMlp::fingerprint`] identifies the weights bit for bit.
//!
//! # Example
//!
//! ```
//! use clica_core::{Generator, RunSeed};
//! use clica_generators::{Activation, InvertibleMlp, MlpConfig};
//! use ndarray::Array2;
//! use rand::Rng;
//!
//! // A small pool keeps the example fast; runs use the default 25,000.
//! let config = MlpConfig::new(4)
//!     .with_layers(3)
//!     .with_activation(Activation::LeakyRelu { slope: 0.2 })
//!     .with_cond_pool_size(100);
//! let g = InvertibleMlp::build(&config, &mut RunSeed::new(0).stream("generator"))?;
//!
//! // Forward a batch (rows are samples) and invert it.
//! let mut rng = RunSeed::new(0).stream("latents");
//! let z = Array2::from_shape_fn((8, 4), |_| rng.random::<f64>() * 2.0 - 1.0);
//! let x = g.forward(z.view());
//! let z_back = g.inverse(x.view())?;
//! let err = (&z_back - &z).iter().fold(0.0f64, |m, v| m.max(v.abs()));
//! assert!(err < 1e-10);
//!
//! // Same seed, same network.
//! let again = InvertibleMlp::build(&config, &mut RunSeed::new(0).stream("generator"))?;
//! assert_eq!(g.fingerprint().hex(), again.fingerprint().hex());
//! # Ok::<(), clica_generators::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod activation;
mod cond;
mod mlp;

pub use activation::{Activation, DEFAULT_LEAKY_SLOPE};
pub use clica_core::{Error, Result};
pub use cond::{
    cond_pool, cond_threshold, condition_number, quantile_linear, random_unit_column_matrix,
    CHUNK_SIZE, MAX_INVERTIBLE_COND, SEARCH_CAP_FACTOR,
};
pub use mlp::{
    InvertibleMlp, MlpConfig, DEFAULT_COND_POOL_SIZE, DEFAULT_COND_RATIO, DEFAULT_LAYERS,
};
