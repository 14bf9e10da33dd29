//! Identifiability scores of a representation ĥ = z_hat against the true latents z.
//!
//! All functions take plain `ndarray` views of `f64` with **rows as samples** and validate
//! their inputs (equal row counts, enough rows, at least one column, all finite), returning
//! [`Error`] rather than panicking or producing NaN.
//!
//! * **R²** (identifiability up to affine maps): fit ordinary least squares with intercept
//!   from ĥ to z ([`AffineFit`]), predict z, and take the coefficient of determination per
//!   latent dimension averaged uniformly ([`r2_score`], scikit-learn's
//!   `r2_score(multioutput='uniform_average')`). [`r2_in_sample`] fits and scores on the same
//!   rows, as the reference does; [`r2_held_out`] / [`r2_held_out_half`] score rows not used
//!   in the fit.
//! * **MCC** (identifiability up to permutation, sign and scale): the Pearson or Spearman
//!   correlation matrix between z's and ĥ's dimensions ([`correlation_matrix`]), the
//!   one-to-one matching maximising `Σ|ρ|` ([`hungarian_max`]) and the mean `|ρ|` of the
//!   matched pairs ([`mcc`]).
//! * [`evaluate`] computes all of them into [`Scores`]; [`identity_baseline`] scores the
//!   observations x = g(z) themselves.
//!
//! # Example
//!
//! ```
//! use clica_eval::{evaluate, mcc, r2_in_sample, Correlation};
//! use ndarray::Array2;
//!
//! // 200 samples of a 3-dimensional latent (deterministic, roughly uniform values).
//! let z = Array2::from_shape_fn((200, 3), |(i, j)| {
//!     ((i * 3 + j) as f64 * 0.618_033_988_7).fract() * 2.0 - 1.0
//! });
//!
//! // A rotated, scaled and shifted representation: affinely identified, not axis-aligned.
//! let (c, s) = (0.6_f64, 0.8_f64);
//! let rot = ndarray::array![[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
//! let h = z.dot(&rot) * 3.0 + 1.0;
//! assert!((r2_in_sample(z.view(), h.view())? - 1.0).abs() < 1e-12);
//! assert!(mcc(z.view(), h.view(), Correlation::Pearson)?.score < 0.95);
//!
//! // A permuted, sign-flipped and scaled copy: identified up to permutation and sign.
//! let mut p = Array2::zeros((200, 3));
//! p.column_mut(0).assign(&(&z.column(2) * -2.0));
//! p.column_mut(1).assign(&z.column(0));
//! p.column_mut(2).assign(&(&z.column(1) * 0.5));
//! let m = mcc(z.view(), p.view(), Correlation::Pearson)?;
//! assert!((m.score - 1.0).abs() < 1e-12);
//! assert_eq!(m.assignment, vec![1, 2, 0]); // latent i ↔ column assignment[i] of p
//!
//! let scores = evaluate(z.view(), p.view())?;
//! assert!(scores.r2 > 0.999_999 && scores.mcc_spearman > 0.999_999);
//! # Ok::<(), clica_eval::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod affine;
mod correlation;
mod hungarian;
mod mcc;
mod validate;

pub use affine::{
    r2_held_out, r2_held_out_half, r2_in_sample, r2_mean, r2_per_column, r2_per_latent, r2_score,
    AffineFit,
};
pub use clica_core::{Error, Result};
pub use correlation::{correlation_matrix, Correlation};
pub use hungarian::hungarian_max;
pub use mcc::{mcc, Mcc};

use clica_core::Metric;
use ndarray::ArrayView2;
use serde::Serialize;

/// All identifiability scores of one representation.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Scores {
    /// In-sample R² of the affine fit ĥ → z ([`r2_in_sample`]).
    pub r2: f64,
    /// R² fitted on the first half of the rows, scored on the second ([`r2_held_out_half`]).
    pub r2_held_out: f64,
    /// MCC with Pearson correlations.
    pub mcc_pearson: f64,
    /// MCC with Spearman correlations.
    pub mcc_spearman: f64,
    /// The Pearson matching: `assignment[i]` is the ĥ column matched to latent i
    /// (see [`Mcc::assignment`]).
    pub assignment: Vec<usize>,
}

/// Computes every score of `z_hat` against `z` (rows are samples).
///
/// # Errors
/// Needs at least 4 rows (for the held-out R²) and `z_hat.ncols() >= z.ncols()` (for MCC);
/// otherwise as [`r2_in_sample`], [`r2_held_out`] and [`mcc`].
pub fn evaluate(z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<Scores> {
    validate::check_data(z, z_hat, 4)?;
    let pearson = mcc(z, z_hat, Correlation::Pearson)?;
    Ok(Scores {
        r2: r2_in_sample(z, z_hat)?,
        r2_held_out: r2_held_out_half(z, z_hat)?,
        mcc_pearson: pearson.score,
        mcc_spearman: mcc(z, z_hat, Correlation::Spearman)?.score,
        assignment: pearson.assignment,
    })
}

/// The identity baseline: the scores of the observations `x = g(z)` themselves, i.e.
/// [`evaluate`]`(z, x)`. It measures how far the mixing g is from affine (R²) and from a
/// scaled permutation (MCC).
///
/// # Errors
/// As [`evaluate`], with `x` reported under the name `"z_hat"`.
pub fn identity_baseline(z: ArrayView2<'_, f64>, x: ArrayView2<'_, f64>) -> Result<Scores> {
    evaluate(z, x)
}

/// [`Metric`] `"r2"`: [`r2_in_sample`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct R2InSample;

/// [`Metric`] `"r2_held_out"`: [`r2_held_out_half`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct R2HeldOut;

/// [`Metric`] `"mcc_pearson"` or `"mcc_spearman"`: the score of [`mcc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MccMetric(pub Correlation);

impl Metric for R2InSample {
    fn name(&self) -> &str {
        "r2"
    }
    fn score(&self, z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64> {
        r2_in_sample(z, z_hat)
    }
}

impl Metric for R2HeldOut {
    fn name(&self) -> &str {
        "r2_held_out"
    }
    fn score(&self, z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64> {
        r2_held_out_half(z, z_hat)
    }
}

impl Metric for MccMetric {
    fn name(&self) -> &str {
        match self.0 {
            Correlation::Pearson => "mcc_pearson",
            Correlation::Spearman => "mcc_spearman",
        }
    }
    fn score(&self, z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64> {
        mcc(z, z_hat, self.0).map(|m| m.score)
    }
}
