//! `clica.Encoder`: a finished run's encoder, rebuilt from its folder as `clica encode`
//! rebuilds it ([`clica::encode::TrainedEncoder`]).

use crate::arrays::{count, floats};
use crate::errors::clica_err;
use clica::encode::TrainedEncoder;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The encoder of a run folder written by `clica train` (or `clica.train`).
///
/// `Encoder(run)`: reads `run/config.toml` and `run/encoder.safetensors`, rebuilds the
/// architecture and its input normalisation from the run's configuration and seed, and
/// checks that the configuration still builds the run's data-generating process. Raises
/// ValueError (with the text `clica encode` prints) for a folder that is not a finished run.
#[pyclass(frozen, module = "clica")]
pub struct Encoder {
    // The encoders are `Send`, not `Sync`: calls take turns.
    inner: Mutex<TrainedEncoder>,
}

impl Encoder {
    /// The wrapped encoder (a poisoned lock is taken over: encoding leaves no partial state).
    fn get(&self) -> MutexGuard<'_, TrainedEncoder> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl Encoder {
    #[new]
    fn new(py: Python<'_>, run: PathBuf) -> PyResult<Self> {
        let enc = py
            .detach(|| TrainedEncoder::load(&run))
            .map_err(clica_err)?;
        Ok(Encoder {
            inner: Mutex::new(enc),
        })
    }

    /// Shape of one observation: `[d]`, or `[channels, height, width]` for images.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.get().input_shape()
    }

    /// Dimension of the representation.
    #[getter]
    fn output_dim(&self) -> usize {
        self.get().output_dim()
    }

    /// The encoder's description, as the run's `summary.json` records it.
    #[getter]
    fn describe(&self) -> String {
        self.get().describe()
    }

    /// The fingerprint of the run's data-generating process.
    #[getter]
    fn fingerprint(&self) -> String {
        self.get().fingerprint().to_string()
    }

    /// `encode(x, batch=512) -> h`: the representation (float32, rows × `output_dim`) of
    /// rows of observations (each the flattened `input_shape`; images channel-first with
    /// values in [0, 1]), `batch` rows per forward pass (0: all at once): what `clica encode --x` writes
    /// (as float64). Raises ValueError for the wrong width or non-finite entries.
    #[pyo3(signature = (x, batch = None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        batch: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let batch = batch.map_or(Ok(512), |b| count("batch", b))?;
        let x = floats("x", x)?.view().mapv(|v| v as f32);
        let h = py
            .detach(move || self.get().encode(x.view(), batch))
            .map_err(clica_err)?;
        Ok(h.into_pyarray(py))
    }

    fn __repr__(&self) -> String {
        let enc = self.get();
        format!(
            "clica.Encoder({:?}, input_shape={:?}, output_dim={})",
            enc.dir().display().to_string(),
            enc.input_shape(),
            enc.output_dim()
        )
    }
}
