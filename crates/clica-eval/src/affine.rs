//! Ordinary least squares with intercept and the coefficient of determination.

use crate::validate::{check_data, check_pair};
use clica_core::{Error, Result};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// An affine map `y ≈ x·B + c` fitted by ordinary least squares.
///
/// Like scikit-learn's `LinearRegression` (which centres the data and calls an SVD-based,
/// minimum-norm `lstsq`), the fit centres `x` and `y`, takes the thin SVD
/// `x_c = U Σ Vᵀ` of the centred `x` and keeps only singular values above
/// `σ_max · ε · max(n, p)`; hence rank-deficient or constant columns of `x` are fine and
/// receive the minimum-norm coefficients (a constant column gets coefficient 0).
/// The intercept is `c = ȳ − x̄·B`.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineFit {
    coef: Array2<f64>,
    intercept: Array1<f64>,
    rank: usize,
}

impl AffineFit {
    /// Fits `y ≈ x·B + c` on all rows (rows are samples). `x` and `y` may differ in width.
    ///
    /// # Errors
    /// [`Error::Shape`] if the row counts differ, either input has no columns or fewer than
    /// one row; [`Error::NonFinite`] naming `"x"` or `"y"`; [`Error::Numerical`] if the SVD
    /// does not converge.
    pub fn fit(x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>) -> Result<AffineFit> {
        check_pair("x", x, "y", y, 1)?;
        let (n, p) = x.dim();
        let q = y.ncols();
        let x_mean = column_means(x);
        let y_mean = column_means(y);
        let xc = &x - &x_mean;
        let yc = &y - &y_mean;

        let xf = faer::Mat::<f64>::from_fn(n, p, |i, j| xc[[i, j]]);
        let svd = xf
            .thin_svd()
            .map_err(|e| Error::Numerical(format!("SVD of the centred x failed: {e:?}")))?;
        let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
        let k = n.min(p);
        let s_max = (0..k).map(|i| s[i]).fold(0.0_f64, f64::max);
        let cutoff = s_max * f64::EPSILON * (n.max(p) as f64);
        let kept: Vec<usize> = (0..k).filter(|&i| s[i] > cutoff && s[i] > 0.0).collect();

        // B = V_r Σ_r⁻¹ U_rᵀ y_c, computed one kept singular triplet at a time.
        let mut coef = Array2::<f64>::zeros((p, q));
        for &r in &kept {
            // w = U_rᵀ y_c / σ_r (length q)
            let mut w = vec![0.0; q];
            for i in 0..n {
                let ui = u[(i, r)];
                for (wj, &yv) in w.iter_mut().zip(yc.row(i)) {
                    *wj += ui * yv;
                }
            }
            let inv = 1.0 / s[r];
            for (row, mut out) in coef.rows_mut().into_iter().enumerate() {
                let vr = v[(row, r)] * inv;
                for (o, &wj) in out.iter_mut().zip(&w) {
                    *o += vr * wj;
                }
            }
        }
        let intercept = &y_mean - &x_mean.dot(&coef);
        Ok(AffineFit {
            coef,
            intercept,
            rank: kept.len(),
        })
    }

    /// Predicts `x·B + c` for each row of `x`.
    ///
    /// # Panics
    /// If `x` does not have as many columns as the `x` the map was fitted on.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        assert_eq!(
            x.ncols(),
            self.coef.nrows(),
            "AffineFit::predict: x has {} columns, the fit expects {}",
            x.ncols(),
            self.coef.nrows()
        );
        x.dot(&self.coef) + &self.intercept
    }

    /// The coefficient matrix `B` (`p × q`: input columns × output columns).
    pub fn coefficients(&self) -> ArrayView2<'_, f64> {
        self.coef.view()
    }

    /// The intercept `c` (length `q`).
    pub fn intercept(&self) -> ArrayView1<'_, f64> {
        self.intercept.view()
    }

    /// The numerical rank of the centred `x` (number of singular values kept).
    pub fn rank(&self) -> usize {
        self.rank
    }
}

pub(crate) fn column_means(a: ArrayView2<'_, f64>) -> Array1<f64> {
    let n = a.nrows() as f64;
    a.sum_axis(Axis(0)) / n
}

/// The coefficient of determination of `y_pred` for `y_true`, per column and averaged
/// uniformly over columns: scikit-learn's `r2_score(y_true, y_pred)` with
/// `multioutput='uniform_average'` and `force_finite=True`.
///
/// Per column, `R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²`; for a constant `y_true` column the score is
/// 1 if it is predicted exactly and 0 otherwise (never NaN or −∞).
///
/// # Errors
/// [`Error::Shape`] if the shapes differ, there are no columns or fewer than 2 rows;
/// [`Error::NonFinite`] naming `"y_true"` or `"y_pred"`.
pub fn r2_score(y_true: ArrayView2<'_, f64>, y_pred: ArrayView2<'_, f64>) -> Result<f64> {
    r2_mean(&r2_per_column(y_true, y_pred)?)
}

/// The uniform average of per-column scores ([`r2_per_column`], [`r2_per_latent`]): what
/// [`r2_score`] and [`r2_in_sample`] return, bit for bit, for the same columns.
///
/// # Errors
/// [`Error::Numerical`] when the mean is not finite (no columns, or huge inputs).
pub fn r2_mean(per: &[f64]) -> Result<f64> {
    let r2 = per.iter().sum::<f64>() / per.len() as f64;
    if r2.is_finite() {
        Ok(r2)
    } else {
        Err(Error::Numerical(format!(
            "R² is not finite ({r2}); the inputs are too large in magnitude"
        )))
    }
}

/// The coefficient of determination of `y_pred` for `y_true`, column by column:
/// scikit-learn's `r2_score(y_true, y_pred, multioutput='raw_values', force_finite=True)`.
/// [`r2_score`] is their mean.
///
/// # Errors
/// As [`r2_score`].
pub fn r2_per_column(y_true: ArrayView2<'_, f64>, y_pred: ArrayView2<'_, f64>) -> Result<Vec<f64>> {
    check_pair("y_true", y_true, "y_pred", y_pred, 2)?;
    clica_core::check::cols("y_pred", y_pred, y_true.ncols())?;
    let mean = column_means(y_true);
    let scores: Vec<f64> = (0..y_true.ncols())
        .map(|j| {
            let (t, p) = (y_true.column(j), y_pred.column(j));
            let num: f64 = t.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
            let den: f64 = t.iter().map(|a| (a - mean[j]) * (a - mean[j])).sum();
            if den != 0.0 {
                1.0 - num / den
            } else if num == 0.0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    if let Some(bad) = scores.iter().find(|v| !v.is_finite()) {
        return Err(Error::Numerical(format!(
            "R² is not finite ({bad}); the inputs are too large in magnitude"
        )));
    }
    Ok(scores)
}

/// [`r2_in_sample`] latent by latent: entry i is the R² of the affine fit `z_hat → z[:, i]`
/// (one joint least-squares fit; its columns are the per-latent fits). Their mean is
/// [`r2_in_sample`]. Shows which latents a representation recovers and which it does not.
///
/// # Errors
/// As [`r2_in_sample`].
pub fn r2_per_latent(z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<Vec<f64>> {
    check_data(z, z_hat, 2)?;
    let fit = AffineFit::fit(z_hat, z)?;
    r2_per_column(z, fit.predict(z_hat).view())
}

/// R² of the affine fit `z_hat → z`, fitted and scored on the same rows (the reference's way).
///
/// # Errors
/// As [`AffineFit::fit`] and [`r2_score`], with the inputs named `"z"` and `"z_hat"`;
/// at least 2 rows are needed.
pub fn r2_in_sample(z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64> {
    check_data(z, z_hat, 2)?;
    let fit = AffineFit::fit(z_hat, z)?;
    r2_score(z, fit.predict(z_hat).view())
}

/// R² of the affine fit `z_hat → z` fitted on the first `n_fit` rows and scored on the rest.
///
/// # Errors
/// [`Error::InvalidParameter`] (`n_fit`) unless `2 ≤ n_fit ≤ nrows − 2`; otherwise as
/// [`r2_in_sample`].
pub fn r2_held_out(
    z: ArrayView2<'_, f64>,
    z_hat: ArrayView2<'_, f64>,
    n_fit: usize,
) -> Result<f64> {
    check_data(z, z_hat, 4)?;
    let n = z.nrows();
    if n_fit < 2 || n_fit > n - 2 {
        return Err(Error::param(
            "n_fit",
            format!(
                "must leave at least 2 rows to fit and 2 to score; got n_fit = {n_fit} of {n} rows"
            ),
        ));
    }
    let (z_fit, z_test) = z.split_at(Axis(0), n_fit);
    let (h_fit, h_test) = z_hat.split_at(Axis(0), n_fit);
    let fit = AffineFit::fit(h_fit, z_fit)?;
    r2_score(z_test, fit.predict(h_test).view())
}

/// [`r2_held_out`] with `n_fit = nrows / 2` (integer division): fit on the first half, score
/// on the second. Needs at least 4 rows.
pub fn r2_held_out_half(z: ArrayView2<'_, f64>, z_hat: ArrayView2<'_, f64>) -> Result<f64> {
    check_data(z, z_hat, 4)?;
    r2_held_out(z, z_hat, z.nrows() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn per_column_scores_are_the_single_column_scores_and_average_to_r2_score() {
        let y = array![
            [1.0, 0.0, 5.0],
            [2.0, 1.0, 5.0],
            [4.0, -1.0, 5.0],
            [3.0, 2.0, 5.0]
        ];
        let p = array![
            [1.5, 0.5, 5.0],
            [2.0, 0.0, 5.0],
            [3.5, -1.0, 5.0],
            [3.0, 1.0, 5.0]
        ];
        let per = r2_per_column(y.view(), p.view()).unwrap();
        assert_eq!(per.len(), 3);
        for (j, &score) in per.iter().enumerate() {
            let col =
                |a: &ndarray::Array2<f64>| a.column(j).to_owned().insert_axis(ndarray::Axis(1));
            let one = r2_score(col(&y).view(), col(&p).view()).unwrap();
            assert_eq!(score, one, "column {j}");
        }
        // Column 0 by hand: Σ(y − ŷ)² = 0.5, Σ(y − ȳ)² = 5.
        assert!((per[0] - 0.9).abs() < 1e-15);
        // A constant column predicted exactly scores 1 (force_finite).
        assert_eq!(per[2], 1.0);
        let mean = per.iter().sum::<f64>() / 3.0;
        assert!((r2_score(y.view(), p.view()).unwrap() - mean).abs() < 1e-15);
    }

    #[test]
    fn per_latent_r2_finds_the_latent_a_representation_misses() {
        // h recovers z0 exactly and z1 not at all (h1 is a function of z0 only).
        let n = 200;
        let z = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| {
            let t = i as f64 / n as f64;
            if j == 0 {
                t
            } else {
                (37.0 * t).sin()
            }
        });
        let h = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| {
            let t = i as f64 / n as f64;
            if j == 0 {
                2.0 * t + 1.0
            } else {
                t * t
            }
        });
        let per = r2_per_latent(z.view(), h.view()).unwrap();
        assert!((per[0] - 1.0).abs() < 1e-12, "{per:?}");
        assert!(per[1] < 0.2, "{per:?}");
        let all = r2_in_sample(z.view(), h.view()).unwrap();
        assert!((all - (per[0] + per[1]) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn constant_columns_follow_sklearn_force_finite() {
        let t = array![[1.0, 2.0], [1.0, 3.0]];
        assert_eq!(r2_score(t.view(), t.view()).unwrap(), 1.0);
        let p = array![[1.0, 2.0], [1.5, 3.0]];
        assert_eq!(r2_score(t.view(), p.view()).unwrap(), 0.5);
    }

    #[test]
    fn single_row_fit_predicts_the_mean() {
        let x = array![[3.0, 4.0]];
        let y = array![[5.0]];
        let f = AffineFit::fit(x.view(), y.view()).unwrap();
        assert_eq!(f.rank(), 0);
        assert_eq!(f.predict(x.view())[[0, 0]], 5.0);
    }
}
