//! Pearson and Spearman correlation matrices between the columns of two arrays.

use crate::validate::check_data;
use clica_core::Result;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis};
use serde::Serialize;

/// Which correlation coefficient to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Correlation {
    /// Pearson's linear correlation.
    Pearson,
    /// Spearman's rank correlation: Pearson's correlation of the ranks, ties getting their
    /// average rank (as `scipy.stats.spearmanr`).
    Spearman,
}

impl Correlation {
    /// `"pearson"` or `"spearman"`.
    pub fn name(self) -> &'static str {
        match self {
            Correlation::Pearson => "pearson",
            Correlation::Spearman => "spearman",
        }
    }
}

/// The `d_z × d_hat` matrix of correlations between each column of `z` and each column of
/// `z_hat` (rows are samples): entry `[i, j]` is `corr(z[:, i], z_hat[:, j])`.
///
/// A column with zero variance (all entries equal, or all ranks equal) has correlation **0**
/// with every column, where NumPy/SciPy would give NaN; entries are clamped to `[−1, 1]`.
/// Columns are centred and rescaled by their largest absolute deviation before the products,
/// so values of any finite magnitude neither overflow nor underflow.
///
/// # Errors
/// [`clica_core::Error::Shape`] if the row counts differ, either input has no columns or fewer
/// than 2 rows; [`clica_core::Error::NonFinite`] naming `"z"` or `"z_hat"`.
pub fn correlation_matrix(
    z: ArrayView2<'_, f64>,
    z_hat: ArrayView2<'_, f64>,
    kind: Correlation,
) -> Result<Array2<f64>> {
    check_data(z, z_hat, 2)?;
    let (a, b) = match kind {
        Correlation::Pearson => (standardise(z), standardise(z_hat)),
        Correlation::Spearman => (
            standardise(ranks(z).view()),
            standardise(ranks(z_hat).view()),
        ),
    };
    Ok(a.t().dot(&b).mapv(|r| r.clamp(-1.0, 1.0)))
}

/// Centres each column and scales it to unit Euclidean norm; constant columns become zero.
fn standardise(a: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut out = a.to_owned();
    for mut col in out.axis_iter_mut(Axis(1)) {
        let first = col[0];
        if col.iter().all(|&x| x == first) {
            col.fill(0.0);
            continue;
        }
        let mean = col.sum() / col.len() as f64;
        col.mapv_inplace(|x| x - mean);
        let scale = col.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        if scale == 0.0 || !scale.is_finite() {
            col.fill(0.0);
            continue;
        }
        col.mapv_inplace(|x| x / scale);
        let norm = col.dot(&col).sqrt();
        if norm == 0.0 {
            col.fill(0.0);
        } else {
            col.mapv_inplace(|x| x / norm);
        }
    }
    out
}

/// Average ranks (1-based, ties averaged) of each column.
fn ranks(a: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut out = Array2::zeros(a.raw_dim());
    let mut order: Vec<usize> = Vec::with_capacity(a.nrows());
    for (j, col) in a.axis_iter(Axis(1)).enumerate() {
        rank_into(col, &mut order, out.column_mut(j));
    }
    out
}

fn rank_into(col: ArrayView1<'_, f64>, order: &mut Vec<usize>, mut out: ArrayViewMut1<'_, f64>) {
    let n = col.len();
    order.clear();
    order.extend(0..n);
    // Finite inputs: partial_cmp never fails; -0.0 and 0.0 compare equal and tie.
    order.sort_unstable_by(|&p, &q| {
        col[p]
            .partial_cmp(&col[q])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && col[order[end]] == col[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share the average 1-based rank.
        let rank = (start + end + 1) as f64 / 2.0;
        for &idx in &order[start..end] {
            out[idx] = rank;
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn average_ranks_for_ties() {
        let a = array![[3.0], [1.0], [3.0], [2.0], [-0.0], [0.0]];
        let r = ranks(a.view());
        assert_eq!(r.column(0).to_vec(), vec![5.5, 3.0, 5.5, 4.0, 1.5, 1.5]);
    }

    #[test]
    fn constant_column_correlates_zero() {
        let z = array![[1.0, 0.1], [2.0, 0.1], [3.0, 0.1]];
        let c = correlation_matrix(z.view(), z.view(), Correlation::Pearson).unwrap();
        assert!((c[[0, 0]] - 1.0).abs() < 1e-15);
        assert_eq!([c[[0, 1]], c[[1, 0]], c[[1, 1]]], [0.0; 3]);
    }
}
