//! Mean correlation coefficient under the optimal one-to-one matching.

use crate::correlation::{correlation_matrix, Correlation};
use crate::hungarian::hungarian_max;
use crate::validate::check_data;
use clica_core::{Error, Result};
use ndarray::ArrayView2;
use serde::Serialize;

/// The mean correlation coefficient and the matching behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mcc {
    /// Mean of `matched`: the mean |ρ| over the matched pairs, in `[0, 1]`.
    pub score: f64,
    /// `assignment[i]` is the index of the `z_hat` column matched to latent `z[:, i]`
    /// (length `d_z`, distinct entries in `0..d_hat`). This is SciPy's
    /// `linear_sum_assignment(-|ρ|)[1]` with `ρ` indexed `[latent, z_hat column]`.
    pub assignment: Vec<usize>,
    /// `matched[i] = |ρ(z[:, i], z_hat[:, assignment[i]])|`.
    pub matched: Vec<f64>,
}

/// MCC of `z_hat` for `z`: the correlation matrix `ρ` (`d_z × d_hat`, see
/// [`correlation_matrix`]), the one-to-one assignment of latents to `z_hat` columns maximising
/// `Σ |ρ|` ([`hungarian_max`]), and the mean |ρ| of the matched pairs.
///
/// # Errors
/// [`Error::Shape`] if `z_hat` has fewer columns than `z`, the row counts differ, either input
/// has no columns or fewer than 2 rows; [`Error::NonFinite`] naming `"z"` or `"z_hat"`.
pub fn mcc(z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>, kind: Correlation) -> Result<Mcc> {
    check_data(z, z_hat, 2)?;
    if z_hat.ncols() < z.ncols() {
        return Err(Error::Shape(format!(
            "z_hat has {} columns but z has {}; MCC needs z_hat to be at least as wide as z",
            z_hat.ncols(),
            z.ncols()
        )));
    }
    let abs = correlation_matrix(z, z_hat, kind)?.mapv(f64::abs);
    let (assignment, _) = hungarian_max(abs.view())?;
    let matched: Vec<f64> = assignment
        .iter()
        .enumerate()
        .map(|(i, &j)| abs[[i, j]])
        .collect();
    let score = matched.iter().sum::<f64>() / matched.len() as f64;
    Ok(Mcc {
        score,
        assignment,
        matched,
    })
}
