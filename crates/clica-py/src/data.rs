//! `clica.Data` and its batch iterator: a configuration's data-generating process (prior and
//! mixing, built once from the seed as `clica train` builds them), for training encoders in
//! Python.

use crate::arrays::{count, unsigned};
use crate::config::resolve;
use crate::errors::{clica_err, param};
use clica::config::TrainConfig;
use clica::registry::Components;
use clica_core::{ClicaRng, PairSource, RunSeed};
use ndarray::{Array2, Axis};
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Arc;

/// The data-generating process of a run configuration: latents z from its prior, positives
/// z̃ from the conditional, observations x = g(z) through the mixing g built from the seed's
/// `generator` stream (the network `clica train` trains on, with the same fingerprint).
///
/// `Data(config=None, overrides=None)` takes `config` and `overrides` as `clica.train` does
/// (a TOML path, a dict, or a list of them; `"key=value"` strings or a dict) and validates
/// them the same way.
#[pyclass(frozen, module = "clica")]
pub struct Data {
    source: Arc<dyn PairSource>,
    config: TrainConfig,
}

#[pymethods]
impl Data {
    #[new]
    #[pyo3(signature = (config = None, overrides = None))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        overrides: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = resolve(config, overrides)?;
        let seed = RunSeed::new(config.seed);
        let components = py
            .detach(|| Components::build(&config, &seed))
            .map_err(clica_err)?;
        Ok(Data {
            source: Arc::from(components.source),
            config,
        })
    }

    /// `batches(steps=None, batch=None)`: an iterator of `(x, x_tilde, z)` for `steps`
    /// steps (default: the configuration's `train.steps`), `batch` anchors each (default:
    /// `train.batch`). `x` and `x_tilde` are the observations of the anchors and of their
    /// positives (float32, batch × observation width, as the trainer feeds its encoder);
    /// `z` the anchors' latents (float64, batch × latent dim). With the defaults these are
    /// exactly the batches `clica train` draws, in order (the seed's `train.data` stream).
    #[pyo3(signature = (steps = None, batch = None))]
    fn batches(
        &self,
        steps: Option<&Bound<'_, PyAny>>,
        batch: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Batches> {
        let steps = match steps {
            Some(s) => unsigned("steps", s)?,
            None => self.config.train.steps,
        };
        let batch = match batch {
            Some(b) => count("batch", b)?,
            None => self.config.train.batch,
        };
        if batch == 0 {
            return Err(param("batch", "must be at least 1"));
        }
        Ok(Batches {
            source: Arc::clone(&self.source),
            rng: std::sync::Mutex::new(RunSeed::new(self.config.seed).stream("train.data")),
            remaining: std::sync::atomic::AtomicU64::new(steps),
            batch,
        })
    }

    /// `sample(n, stream="eval") -> (x, z)`: n fresh latents z ~ p(z) and their observations
    /// x = g(z), both float64, from the seed's named stream (`eval` is the one the trainer
    /// scores the identity baseline and the final encoder on).
    #[pyo3(signature = (n, stream = "eval"))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'py, PyAny>,
        stream: &str,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let n = count("n", n)?;
        if n == 0 {
            return Err(param("n", "must be at least 1"));
        }
        let mut rng = RunSeed::new(self.config.seed).stream(stream);
        let sample = py.detach(|| self.source.sample(&mut rng, n));
        PyTuple::new(
            py,
            [
                sample.x.to_f64().into_pyarray(py),
                sample.z.into_pyarray(py),
            ],
        )
    }

    /// The mixing's fingerprint, as `clica.Mixing` and result files give it.
    #[getter]
    fn fingerprint(&self) -> String {
        self.source.fingerprint().hex()
    }

    /// Latent dimension.
    #[getter]
    fn latent_dim(&self) -> usize {
        self.source.latent_dim()
    }

    /// Width of one observation.
    #[getter]
    fn observation_dim(&self) -> usize {
        self.source.observation_len()
    }

    /// The run seed.
    #[getter]
    fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The resolved configuration as TOML (what `clica train --dry-run` prints).
    fn config_toml(&self) -> String {
        self.config.to_toml()
    }

    fn __repr__(&self) -> String {
        format!(
            "clica.Data({}, seed={}, fingerprint={:?})",
            self.source.describe(),
            self.config.seed,
            self.source.fingerprint().hex()
        )
    }
}

/// The iterator of [`Data::batches`].
#[pyclass(frozen, module = "clica")]
pub struct Batches {
    source: Arc<dyn PairSource>,
    rng: std::sync::Mutex<ClicaRng>,
    remaining: std::sync::atomic::AtomicU64,
    batch: usize,
}

type Triple<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f64>>,
);

#[pymethods]
impl Batches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Triple<'py>>> {
        use std::sync::atomic::Ordering;
        let taken = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1));
        if taken.is_err() {
            return Ok(None);
        }
        let b = self.batch;
        let (x, z) = py.detach(|| {
            let mut x = Array2::<f32>::zeros((2 * b, self.source.observation_len()));
            let mut z = Array2::<f64>::zeros((2 * b, self.source.latent_dim()));
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            self.source
                .draw_pairs(&mut *rng, 1, x.view_mut(), z.view_mut());
            (x, z)
        });
        let (x, x_tilde) = x.view().split_at(Axis(0), b);
        let anchors = z.slice_axis(Axis(0), (..b).into()).to_owned();
        Ok(Some((
            x.to_owned().into_pyarray(py),
            x_tilde.to_owned().into_pyarray(py),
            anchors.into_pyarray(py),
        )))
    }

    fn __len__(&self) -> usize {
        let r = self.remaining.load(std::sync::atomic::Ordering::SeqCst);
        usize::try_from(r).unwrap_or(usize::MAX)
    }
}
