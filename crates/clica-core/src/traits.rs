//! The traits through which the clica crates compose.
//!
//! Runtime dimensions, `f64` data, rows are samples. Randomness is passed as
//! `&mut dyn RngCore` so the traits stay object-safe (`Box<dyn LatentPrior>`).

use crate::{Fingerprint, Result};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::RngCore;

/// A distribution over latents: a marginal p(z) and a conditional p(z̃ | z).
pub trait LatentPrior: Send + Sync {
    /// Dimension n of a latent vector.
    fn dim(&self) -> usize;

    /// Fills every row of `out` (shape `k × dim`) with an independent draw from p(z).
    ///
    /// # Panics
    /// If `out` does not have `dim()` columns.
    fn sample_marginal(&self, rng: &mut dyn RngCore, out: ArrayViewMut2<'_, f64>);

    /// Fills row i of `out` with a draw from p(z̃ | z = `anchors[i]`).
    ///
    /// # Panics
    /// If `anchors` and `out` differ in shape or do not have `dim()` columns.
    fn sample_conditional(
        &self,
        rng: &mut dyn RngCore,
        anchors: ArrayView2<'_, f64>,
        out: ArrayViewMut2<'_, f64>,
    );

    /// A short human-readable description (recorded in result files).
    fn describe(&self) -> String;

    /// Allocating convenience wrapper around [`LatentPrior::sample_marginal`].
    fn marginal(&self, rng: &mut dyn RngCore, k: usize) -> Array2<f64> {
        let mut out = Array2::zeros((k, self.dim()));
        self.sample_marginal(rng, out.view_mut());
        out
    }

    /// Allocating convenience wrapper around [`LatentPrior::sample_conditional`].
    fn conditional(&self, rng: &mut dyn RngCore, anchors: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut out = Array2::zeros(anchors.raw_dim());
        self.sample_conditional(rng, anchors, out.view_mut());
        out
    }
}

/// A fixed generator g: Z → X ("the mixing"), built once per run.
pub trait Generator: Send + Sync {
    /// Dimension of z.
    fn input_dim(&self) -> usize;
    /// Dimension of x.
    fn output_dim(&self) -> usize;
    /// Maps a batch of latents (rows) to observations.
    ///
    /// # Panics
    /// If `z` does not have `input_dim()` columns.
    fn forward(&self, z: ArrayView2<'_, f64>) -> Array2<f64>;
    /// A stable identity of the generator (hash of its weights and structure).
    fn fingerprint(&self) -> Fingerprint;
}

/// The inference face of an encoder f: X → representation ĥ.
pub trait Encoder {
    /// Dimension of x.
    fn input_dim(&self) -> usize;
    /// Dimension of ĥ.
    fn output_dim(&self) -> usize;
    /// Encodes a batch of observations (rows).
    ///
    /// # Panics
    /// If `x` does not have `input_dim()` columns.
    fn encode(&self, x: ArrayView2<'_, f64>) -> Array2<f64>;
}

/// A score of how well a representation ĥ recovers latents z (higher is better).
pub trait Metric {
    /// Name used in result files (e.g. `"r2"`, `"mcc_pearson"`).
    fn name(&self) -> &str;
    /// Scores ĥ (rows are samples) against z (same number of rows).
    fn score(&self, z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64>;
}
