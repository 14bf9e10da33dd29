//! `clica.evaluate` and the single scores: those of `clica eval`, computed by the same code.

use crate::arrays::{floats, Floats};
use crate::errors::{core_err, to_py};
use crate::prior::variant;
use clica_eval::Correlation;
use ndarray::ArrayView2;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Reads both arguments and checks them as `clica eval` checks its files (non-empty, finite).
fn pair<'py>(
    z: &Bound<'py, PyAny>,
    z_hat: &Bound<'py, PyAny>,
) -> PyResult<(Floats<'py>, Floats<'py>)> {
    let (z, h) = (
        floats("z", z)?.standard(),
        floats("z_hat", z_hat)?.standard(),
    );
    clica::cli::check_input("z", z.view()).map_err(to_py)?;
    clica::cli::check_input("z_hat", h.view()).map_err(to_py)?;
    Ok((z, h))
}

/// `clica eval`'s scores, the inputs checked as it checks them.
pub fn eval_scores(
    z: ArrayView2<'_, f64>,
    h: ArrayView2<'_, f64>,
) -> anyhow::Result<clica::cli::EvalScores> {
    clica::cli::eval_scores("z", z, "z_hat", h)
}

/// `evaluate(z, z_hat) -> dict`: every score of representation `z_hat` (n × m) of latents
/// `z` (n × d), rows are samples, with the keys and values `clica eval` prints:
///
/// * `r2`: in-sample R² of the affine (least-squares) fit z_hat → z, averaged over z's
///   dimensions (scikit-learn's `r2_score` after `LinearRegression`);
/// * `r2_held_out`: the fit on the first half of the rows, scored on the second;
/// * `mcc_pearson`, `mcc_spearman`: the mean |correlation| under the best one-to-one
///   matching of z's dimensions to z_hat's columns;
/// * `assignment`: the Pearson matching, `assignment[i]` the column matched to latent i.
///
/// The MCC entries are None when z_hat has fewer columns than z. Arrays may be float32 or
/// float64 in any memory order (arrays not in C order are copied into it, which gives the
/// tool's numbers to the last bit). Raises ValueError for empty or non-finite inputs, different
/// row counts, or fewer than 4 rows.
#[pyfunction]
pub fn evaluate<'py>(
    py: Python<'py>,
    z: &Bound<'py, PyAny>,
    z_hat: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let (z, h) = (
        floats("z", z)?.standard(),
        floats("z_hat", z_hat)?.standard(),
    );
    let (zv, hv) = (z.view(), h.view());
    let s = py.detach(|| eval_scores(zv, hv)).map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("r2", s.r2)?;
    out.set_item("r2_held_out", s.r2_held_out)?;
    match s.mcc {
        Some((p, sp)) => {
            out.set_item("mcc_pearson", p.score)?;
            out.set_item("mcc_spearman", sp.score)?;
            out.set_item("assignment", p.assignment)?;
        }
        None => {
            for key in ["mcc_pearson", "mcc_spearman", "assignment"] {
                out.set_item(key, py.None())?;
            }
        }
    }
    Ok(out)
}

/// `r2(z, z_hat) -> float`: the in-sample R² of `evaluate` (the affine fit z_hat → z).
#[pyfunction]
pub fn r2(py: Python<'_>, z: &Bound<'_, PyAny>, z_hat: &Bound<'_, PyAny>) -> PyResult<f64> {
    let (z, h) = pair(z, z_hat)?;
    let (zv, hv) = (z.view(), h.view());
    py.detach(|| clica_eval::r2_in_sample(zv, hv))
        .map_err(core_err)
}

/// `r2_held_out(z, z_hat) -> float`: the R² of the affine fit on the first half of the rows,
/// scored on the second half (`r2_held_out` of `evaluate`).
#[pyfunction]
pub fn r2_held_out(
    py: Python<'_>,
    z: &Bound<'_, PyAny>,
    z_hat: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let (z, h) = pair(z, z_hat)?;
    let (zv, hv) = (z.view(), h.view());
    py.detach(|| clica_eval::r2_held_out_half(zv, hv))
        .map_err(core_err)
}

/// `mcc(z, z_hat, correlation="pearson") -> float`: the mean |correlation| under the best
/// one-to-one matching (`"pearson"` or `"spearman"`); z_hat needs at least z's columns.
#[pyfunction]
#[pyo3(signature = (z, z_hat, correlation = "pearson"))]
pub fn mcc(
    py: Python<'_>,
    z: &Bound<'_, PyAny>,
    z_hat: &Bound<'_, PyAny>,
    correlation: &str,
) -> PyResult<f64> {
    let kind = match variant::<CorrelationFlag>("correlation", correlation)? {
        CorrelationFlag::Pearson => Correlation::Pearson,
        CorrelationFlag::Spearman => Correlation::Spearman,
    };
    let (z, h) = pair(z, z_hat)?;
    let (zv, hv) = (z.view(), h.view());
    py.detach(|| clica_eval::mcc(zv, hv, kind))
        .map(|m| m.score)
        .map_err(core_err)
}

/// The names of the correlation coefficients.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CorrelationFlag {
    Pearson,
    Spearman,
}

/// Seconds of each of `repeats` runs of `clica eval`'s computation, in Rust alone (for the
/// overhead measurement).
pub fn time_evaluate(
    z: ArrayView2<'_, f64>,
    h: ArrayView2<'_, f64>,
    repeats: usize,
) -> anyhow::Result<Vec<f64>> {
    eval_scores(z, h)?;
    Ok(crate::prior::time_repeats(repeats, || eval_scores(z, h)))
}
