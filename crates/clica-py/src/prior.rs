//! `clica.Prior`: the latent priors of `clica sample`, built from the same flags.

use crate::arrays::{count, floats, unsigned};
use crate::errors::{core_err, param};
use clap::ValueEnum;
use clica::cli::{ConditionalFlag, MarginalFlag, PriorFlags, SpaceFlag};
use clica_core::{LatentPrior, RunSeed};
use clica_priors::Space;
use ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Parses `value` as a variant of a flag enum, with clap's wording of a bad value.
pub fn variant<T: ValueEnum>(name: &str, value: &str) -> PyResult<T> {
    T::from_str(value, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        param(
            name,
            format!(
                "invalid value '{value}' [possible values: {}]",
                names.join(", ")
            ),
        )
    })
}

/// A latent distribution: a space (sphere, box or Rⁿ), a marginal p(z) and a conditional
/// p(z̃ | z), with the parameters and defaults of `clica sample`.
///
/// `Prior(space="sphere", dim=10, *, marginal="uniform", conditional="vmf",
/// concentration=1.0, radius=1.0, low=0.0, high=1.0, marginal_scale=1.0, beta=3.0)`:
/// `concentration` is κ for vMF, σ for normal and λ for Laplace and gennorm conditionals;
/// `marginal_scale` the σ or λ of a non-uniform marginal; `beta` the shape of gennorm laws.
///
/// Raises ValueError for impossible parameters (κ ≤ 0, radius ≤ 0, low ≥ high, dim 0, a
/// uniform marginal on Rⁿ, vMF off the sphere) with the message `clica sample` prints.
#[pyclass(frozen, module = "clica")]
pub struct Prior {
    flags: PriorFlags,
    prior: clica_priors::Prior,
}

impl Prior {
    /// The prior itself.
    pub fn inner(&self) -> &clica_priors::Prior {
        &self.prior
    }

    /// Checks anchors for [`LatentPrior::sample_conditional`], which panics on what this
    /// refuses: the wrong width, non-finite entries, points outside the box, points of the
    /// sphere's space without a direction.
    fn check_anchors(&self, z: ArrayView2<'_, f64>) -> PyResult<()> {
        if z.ncols() != self.flags.dim {
            return Err(core_err(clica_core::Error::Shape(format!(
                "z has {} columns but the prior's dimension is {}",
                z.ncols(),
                self.flags.dim
            ))));
        }
        // One pass in the common case (every row fine); the checks below name a problem.
        let (low, high, sphere) = match self.prior.space() {
            Space::Box { low, high } => (low, high, false),
            Space::Sphere { .. } => (f64::NEG_INFINITY, f64::INFINITY, true),
            Space::Unbounded => (f64::NEG_INFINITY, f64::INFINITY, false),
        };
        let fine = match z.as_slice() {
            Some(all) => all
                .chunks_exact(z.ncols().max(1))
                .all(|row| row_fine(row.iter().copied(), low, high, sphere)),
            None => z
                .rows()
                .into_iter()
                .all(|row| row_fine(row.iter().copied(), low, high, sphere)),
        };
        if fine {
            return Ok(());
        }
        clica_core::check::finite("z", z).map_err(core_err)?;
        match self.prior.space() {
            Space::Box { low, high } => {
                if let Some(((r, c), v)) =
                    z.indexed_iter().find(|(_, v)| !(low..=high).contains(*v))
                {
                    return Err(param(
                        "z",
                        format!("row {r}, column {c} is {v}, outside the box [{low}, {high}]"),
                    ));
                }
            }
            Space::Sphere { .. } => {
                for (r, row) in z.rows().into_iter().enumerate() {
                    let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                    if !(norm > 0.0 && norm.is_finite()) {
                        return Err(param(
                            "z",
                            format!("row {r} has norm {norm}; anchors must lie on the sphere"),
                        ));
                    }
                }
            }
            Space::Unbounded => {}
        }
        Ok(())
    }

    fn marginal_array(&self, n: usize, seed: u64) -> Array2<f64> {
        self.prior
            .marginal(&mut RunSeed::new(seed).stream("prior.marginal"), n)
    }

    fn conditional_array(&self, z: ArrayView2<'_, f64>, seed: u64) -> Array2<f64> {
        self.prior
            .conditional(&mut RunSeed::new(seed).stream("prior.conditional"), z)
    }
}

/// Whether every entry of `row` is finite and in `[low, high]`, and (for the sphere) the row
/// has a finite, non-zero norm.
#[inline]
fn row_fine(row: impl Iterator<Item = f64>, low: f64, high: f64, sphere: bool) -> bool {
    let (mut squares, mut ok) = (0.0, true);
    for v in row {
        squares += v * v;
        // `&`, not `&&`: no branch per entry.
        ok &= v.is_finite() & (v >= low) & (v <= high);
    }
    ok && (!sphere || (squares > 0.0 && squares.is_finite()))
}

/// `n` for sampling: at least 1, as `clica sample` requires.
fn sample_count(n: &Bound<'_, PyAny>) -> PyResult<usize> {
    let n = count("n", n)?;
    if n == 0 {
        return Err(param("n", "must be at least 1"));
    }
    Ok(n)
}

#[pymethods]
impl Prior {
    #[new]
    #[pyo3(signature = (
        space = "sphere", dim = None, *, marginal = "uniform", conditional = "vmf",
        concentration = 1.0, radius = 1.0, low = 0.0, high = 1.0, marginal_scale = 1.0,
        beta = 3.0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        space: &str,
        dim: Option<&Bound<'_, PyAny>>,
        marginal: &str,
        conditional: &str,
        concentration: f64,
        radius: f64,
        low: f64,
        high: f64,
        marginal_scale: f64,
        beta: f64,
    ) -> PyResult<Self> {
        let flags = PriorFlags {
            space: variant::<SpaceFlag>("space", space)?,
            dim: dim.map_or(Ok(10), |d| count("dim", d))?,
            radius,
            low,
            high,
            marginal: variant::<MarginalFlag>("marginal", marginal)?,
            marginal_scale,
            conditional: variant::<ConditionalFlag>("conditional", conditional)?,
            concentration,
            beta,
        };
        let prior = flags.prior().map_err(core_err)?;
        Ok(Prior { flags, prior })
    }

    /// Latent dimension n.
    #[getter]
    fn dim(&self) -> usize {
        self.flags.dim
    }

    /// `sample_marginal(n, seed=0)`: n independent draws z ~ p(z) (float64, n × dim), from
    /// the seed's `prior.marginal` stream: the `z.npy` of `clica sample --n n --seed seed`.
    #[pyo3(signature = (n, seed = None))]
    fn sample_marginal<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'py, PyAny>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let n = sample_count(n)?;
        let seed = seed.map_or(Ok(0), |s| unsigned("seed", s))?;
        Ok(py.detach(|| self.marginal_array(n, seed)).into_pyarray(py))
    }

    /// `sample_conditional(z, seed=0)`: one draw z̃ ~ p(z̃ | z) per row of `z` (float64, the
    /// shape of z), from the seed's `prior.conditional` stream: for the `z` of
    /// `sample_marginal(n, seed)`, the `z_tilde.npy` of `clica sample`.
    ///
    /// Raises ValueError when `z` has the wrong width, a non-finite entry, a point outside
    /// the box, or (on the sphere) a row without a direction.
    #[pyo3(signature = (z, seed = None))]
    fn sample_conditional<'py>(
        &self,
        py: Python<'py>,
        z: &Bound<'py, PyAny>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let z = floats("z", z)?;
        let seed = seed.map_or(Ok(0), |s| unsigned("seed", s))?;
        let view = z.view();
        if view.nrows() == 0 {
            return Err(param("z", "has no rows"));
        }
        self.check_anchors(view)?;
        Ok(py
            .detach(|| self.conditional_array(view, seed))
            .into_pyarray(py))
    }

    /// `sample(n, seed=0) -> (z, z_tilde)`: both files of `clica sample --n n --seed seed`.
    #[pyo3(signature = (n, seed = None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'py, PyAny>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let n = sample_count(n)?;
        let seed = seed.map_or(Ok(0), |s| unsigned("seed", s))?;
        let (z, z_tilde) = py.detach(|| {
            let z = self.marginal_array(n, seed);
            let z_tilde = self.conditional_array(z.view(), seed);
            (z, z_tilde)
        });
        PyTuple::new(py, [z.into_pyarray(py), z_tilde.into_pyarray(py)])
    }

    /// The parameters, as `clica sample` records them in `meta.json` (`config`).
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::to_python(py, &self.flags)
    }

    /// The prior in words, as result files record it.
    fn describe(&self) -> String {
        self.prior.describe()
    }

    fn __repr__(&self) -> String {
        format!("clica.Prior({})", self.prior.describe())
    }
}

/// Seconds of each of `repeats` marginal draws of `n` rows, in Rust alone (for the overhead
/// measurement).
pub fn time_marginal(prior: &Prior, n: usize, seed: u64, repeats: usize) -> Vec<f64> {
    time_repeats(repeats, || prior.marginal_array(n, seed))
}

/// Seconds of each of `repeats` conditional draws around `z` in Rust alone (anchors checked
/// once, as `sample_conditional` checks them), or with `check_only` of the check alone (what
/// `sample_conditional` adds to the Rust function, which asserts instead).
pub fn time_conditional(
    prior: &Prior,
    z: ArrayView2<'_, f64>,
    seed: u64,
    repeats: usize,
    check_only: bool,
) -> PyResult<Vec<f64>> {
    prior.check_anchors(z)?;
    Ok(if check_only {
        time_repeats(repeats, || prior.check_anchors(z).is_ok())
    } else {
        time_repeats(repeats, || prior.conditional_array(z, seed))
    })
}

/// Seconds of each of `repeats` calls of `f`.
pub fn time_repeats<T>(repeats: usize, mut f: impl FnMut() -> T) -> Vec<f64> {
    (0..repeats)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect()
}
