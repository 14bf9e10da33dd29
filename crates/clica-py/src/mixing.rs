//! `clica.Mixing`: the paper's invertible MLP mixing g, built as `clica mix` builds it.

use crate::arrays::{count, floats, unsigned};
use crate::errors::{core_err, to_py};
use clica::cli::MixingFlags;
use clica_core::RunSeed;
use clica_generators::InvertibleMlp;
use ndarray::ArrayView2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyList;

/// The paper's invertible mixing network g: Rⁿ → Rⁿ: `layers` bias-free n × n layers whose
/// weights are drawn with the condition-number selection, with `activation` between them,
/// built from the seed's `generator` stream.
///
/// `Mixing(dim, layers=3, seed=0, *, activation="leaky_relu", cond_pool=25000,
/// cond_ratio=0.0)`: the network `clica mix --seed seed` applies to `dim`-dimensional
/// latents (and `clica train` builds for a run with that seed and mixing table).
/// Building it draws and ranks `cond_pool` random matrices (the paper's 25,000 take about a
/// second); the GIL is released meanwhile.
#[pyclass(frozen, module = "clica")]
pub struct Mixing {
    flags: MixingFlags,
    g: InvertibleMlp,
}

impl Mixing {
    /// Checks `a` as the input of a `dim`-wide layer stack: width, finiteness.
    fn check(&self, what: &str, a: ArrayView2<'_, f64>) -> PyResult<()> {
        clica_core::check::cols(what, a, self.g.dim()).map_err(core_err)?;
        clica_core::check::finite(what, a).map_err(core_err)
    }
}

#[pymethods]
impl Mixing {
    #[new]
    #[pyo3(signature = (
        dim, layers = None, seed = None, *, activation = "leaky_relu", cond_pool = None,
        cond_ratio = 0.0
    ))]
    fn new(
        py: Python<'_>,
        dim: &Bound<'_, PyAny>,
        layers: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        activation: &str,
        cond_pool: Option<&Bound<'_, PyAny>>,
        cond_ratio: f64,
    ) -> PyResult<Self> {
        let dim = count("dim", dim)?;
        let flags = MixingFlags {
            layers: layers.map_or(Ok(3), |l| count("layers", l))?,
            activation: activation.to_string(),
            cond_pool: cond_pool.map_or(Ok(25_000), |c| count("cond_pool", c))?,
            cond_ratio,
        };
        let seed = RunSeed::new(seed.map_or(Ok(0), |s| unsigned("seed", s))?);
        let g = py
            .detach(|| clica::cli::build_mixing(&flags, dim, seed))
            .map_err(to_py)?;
        Ok(Mixing { flags, g })
    }

    /// Latent (and observation) dimension n.
    #[getter]
    fn dim(&self) -> usize {
        self.g.dim()
    }

    /// Number of layers.
    #[getter]
    fn layers(&self) -> usize {
        self.flags.layers
    }

    /// The stable identity of the network (FNV-1a of its structure and exact weights), as
    /// `clica mix` prints it and result files record it.
    #[getter]
    fn fingerprint(&self) -> String {
        self.g.fingerprint().hex()
    }

    /// The weight matrices (float64, n × n each), first layer first; layer i maps a row
    /// vector v to `activation(v @ weights[i])` (no activation after the last).
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.g.weights().iter().map(|w| w.clone().into_pyarray(py)),
        )
    }

    /// `forward(z) -> x`: x = g(z) for every row of z (float64, the shape of z): the
    /// `x.npy` of `clica mix`. Raises ValueError for the wrong width or non-finite entries.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        z: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let z = floats("z", z)?;
        let view = z.view();
        self.check("z", view)?;
        Ok(py.detach(|| self.g.forward(view)).into_pyarray(py))
    }

    /// `inverse(x) -> z`: the exact inverse g⁻¹ row by row. Raises ValueError for the wrong
    /// width, non-finite entries, or a non-invertible activation (relu).
    fn inverse<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let x = floats("x", x)?;
        let view = x.view();
        self.check("x", view)?;
        let z = py.detach(|| self.g.inverse(view)).map_err(core_err)?;
        Ok(z.into_pyarray(py))
    }

    /// The parameters, as `clica mix` prints them (`mixing`).
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::to_python(py, &self.flags)
    }

    fn __repr__(&self) -> String {
        format!(
            "clica.Mixing(dim={}, layers={}, activation={:?}, fingerprint={:?})",
            self.g.dim(),
            self.flags.layers,
            self.flags.activation,
            self.g.fingerprint().hex()
        )
    }
}
