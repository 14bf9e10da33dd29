//! **clica-py**: the Python package `clica`, built with maturin (`pip install
//! ./crates/clica-py`). numpy arrays in and out, the same numbers as the `clica` tool for the
//! same arguments and seeds, because the same Rust code computes them:
//!
//! * `clica.evaluate(z, z_hat)` — the scores of `clica eval` (`r2`, `r2_held_out`,
//!   `mcc_pearson`, `mcc_spearman`, `assignment`); `clica.r2`, `clica.r2_held_out`,
//!   `clica.mcc` alone;
//! * `clica.Prior(...)` — the priors of `clica sample` (`sample_marginal`,
//!   `sample_conditional`, `sample`);
//! * `clica.Mixing(dim, layers, seed)` — the network of `clica mix` (`forward`, `inverse`,
//!   `fingerprint`, `weights`);
//! * `clica.train(config, out, overrides)` / `clica.resume(dir)` — `clica train`, Ctrl-C
//!   stopping it cleanly with a checkpoint;
//! * `clica.Data(config).batches()` — the `(x, x_tilde, z)` batches of a configuration's
//!   data-generating process, for encoders trained in Python;
//! * `clica.Encoder(run).encode(x)` — a finished run's encoder applied to new observations
//!   (`clica encode`).
//!
//! Inputs may be float32 or float64 in any memory order; float64 arrays are read where they
//! lie, except that the scores copy arrays not in C order first (their last bits depend on
//! the layout, and the `clica` tool reads files into C order). Long work runs with the GIL released. Bad input raises `ValueError` (bad parameters,
//! shapes, non-finite values) or `TypeError` (wrong types), with the messages the `clica`
//! tool prints; see `errors.rs` for the other exceptions.
//!
//! # Example
//!
//! ```python
//! import numpy as np
//! import clica
//!
//! prior = clica.Prior("sphere", 10, conditional="vmf", concentration=10.0)
//! z, z_tilde = prior.sample(4096, seed=1)         # = clica sample --n 4096 --seed 1
//! g = clica.Mixing(10, layers=3, seed=1)         # = clica mix --seed 1
//! x = g.forward(z)
//! assert np.allclose(g.inverse(x), z, atol=1e-10)
//! scores = clica.evaluate(z, x)                   # = clica eval --z z.npy --z-hat x.npy
//! print(scores["r2"], scores["mcc_pearson"], g.fingerprint)
//! ```
//!
//! The crate is a workspace member that `cargo clippy` and `cargo doc` check; its library
//! has no Rust tests (a test binary would link libpython; maturin sets
//! `PYO3_BUILD_EXTENSION_MODULE` so the extension links none). Its tests are the pytest
//! suite in `tests/`, which `cargo xtask ci` runs.
//!
// PyO3's macros expand to no `unsafe` this forbids (0.30); the crate writes none either.
#![forbid(unsafe_code)]

mod arrays;
mod config;
mod data;
mod encoder;
mod errors;
mod mixing;
mod prior;
mod scores;
mod train;

use pyo3::prelude::*;

/// `value` as a Python object, through its JSON form (the text `clica` would print).
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| errors::to_py(e.into()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// `_time_evaluate(z, z_hat, repeats) -> list[float]`: seconds of each of `repeats` runs of
/// the Rust computation behind `evaluate` on the same (already converted) arrays, without
/// any Python in between. For `benches/overhead.py`.
#[pyfunction]
fn _time_evaluate<'py>(
    py: Python<'py>,
    z: &Bound<'py, PyAny>,
    z_hat: &Bound<'py, PyAny>,
    repeats: &Bound<'py, PyAny>,
) -> PyResult<Vec<f64>> {
    let (z, h) = (
        arrays::floats("z", z)?.standard(),
        arrays::floats("z_hat", z_hat)?.standard(),
    );
    let repeats = arrays::count("repeats", repeats)?;
    let (zv, hv) = (z.view(), h.view());
    py.detach(|| scores::time_evaluate(zv, hv, repeats))
        .map_err(errors::to_py)
}

/// `_time_marginal(prior, n, seed, repeats) -> list[float]`: seconds of each of `repeats`
/// marginal draws of `n` rows in Rust alone. For `benches/overhead.py`.
#[pyfunction]
fn _time_marginal(
    py: Python<'_>,
    prior: &prior::Prior,
    n: usize,
    seed: u64,
    repeats: usize,
) -> Vec<f64> {
    py.detach(|| prior::time_marginal(prior, n, seed, repeats))
}

/// `_time_conditional(prior, z, seed, repeats, check_only=False) -> list[float]`: seconds of
/// each of `repeats` conditional draws around the rows of `z` in Rust alone, or of the check
/// of `z` that `sample_conditional` makes first. For `benches/overhead.py`.
#[pyfunction]
#[pyo3(signature = (prior, z, seed, repeats, check_only = false))]
fn _time_conditional(
    py: Python<'_>,
    prior: &prior::Prior,
    z: &Bound<'_, PyAny>,
    seed: u64,
    repeats: usize,
    check_only: bool,
) -> PyResult<Vec<f64>> {
    let z = arrays::floats("z", z)?;
    let view = z.view();
    py.detach(|| prior::time_conditional(prior, view, seed, repeats, check_only))
}

/// The Rust extension of the `clica` package; import `clica`, which re-exports it.
#[pymodule]
fn _clica(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(scores::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(scores::r2, m)?)?;
    m.add_function(wrap_pyfunction!(scores::r2_held_out, m)?)?;
    m.add_function(wrap_pyfunction!(scores::mcc, m)?)?;
    m.add_class::<prior::Prior>()?;
    m.add_class::<mixing::Mixing>()?;
    m.add_class::<data::Data>()?;
    m.add_class::<data::Batches>()?;
    m.add_class::<encoder::Encoder>()?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::resume, m)?)?;
    m.add_function(wrap_pyfunction!(_time_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(_time_marginal, m)?)?;
    m.add_function(wrap_pyfunction!(_time_conditional, m)?)?;
    Ok(())
}
