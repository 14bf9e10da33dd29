//! Small input checks shared by the crates: finiteness and shapes of 2-D arrays.

use crate::{Error, Result};
use ndarray::ArrayView2;

/// Fails with [`Error::NonFinite`] naming `what` and the first non-finite entry.
pub fn finite(what: &str, a: ArrayView2<'_, f64>) -> Result<()> {
    for ((row, col), v) in a.indexed_iter() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: what.to_string(),
                row,
                col,
            });
        }
    }
    Ok(())
}

/// Fails unless `a` has exactly `cols` columns.
pub fn cols(what: &str, a: ArrayView2<'_, f64>, cols: usize) -> Result<()> {
    if a.ncols() != cols {
        return Err(Error::Shape(format!(
            "{what} has {} columns, expected {cols}",
            a.ncols()
        )));
    }
    Ok(())
}

/// Fails unless `a` and `b` have the same number of rows.
pub fn same_rows(
    a_name: &str,
    a: ArrayView2<'_, f64>,
    b_name: &str,
    b: ArrayView2<'_, f64>,
) -> Result<()> {
    if a.nrows() != b.nrows() {
        return Err(Error::Shape(format!(
            "{a_name} has {} rows but {b_name} has {} rows",
            a.nrows(),
            b.nrows()
        )));
    }
    Ok(())
}
