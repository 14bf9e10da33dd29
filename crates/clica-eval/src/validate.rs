//! Input checks shared by the scores.

use clica_core::{check, Error, Result};
use ndarray::ArrayView2;

/// Both inputs non-empty in columns, same row count, at least `min_rows` rows, all finite.
pub(crate) fn check_pair(
    a_name: &str,
    a: ArrayView2<'_, f64>,
    b_name: &str,
    b: ArrayView2<'_, f64>,
    min_rows: usize,
) -> Result<()> {
    for (name, ncols) in [(a_name, a.ncols()), (b_name, b.ncols())] {
        if ncols == 0 {
            return Err(Error::Shape(format!("{name} has no columns")));
        }
    }
    check::same_rows(a_name, a, b_name, b)?;
    if a.nrows() < min_rows {
        return Err(Error::Shape(format!(
            "{a_name} and {b_name} have {} rows; at least {min_rows} are needed",
            a.nrows()
        )));
    }
    check::finite(a_name, a)?;
    check::finite(b_name, b)?;
    Ok(())
}

/// [`check_pair`] for the latents `z` and the representation `z_hat`.
pub(crate) fn check_data(
    z: ArrayView2<'_, f64>,
    z_hat: ArrayView2<'_, f64>,
    min_rows: usize,
) -> Result<()> {
    check_pair("z", z, "z_hat", z_hat, min_rows)
}
