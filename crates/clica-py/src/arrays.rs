//! numpy arrays in: a 2-D `float64` array of any memory order is viewed where it lies (no
//! copy); `float32` is widened to `float64` (one copy, as `clica` widens `.npy` files);
//! anything else numpy can turn into a real 2-D array (integers, lists) is converted first.
//! The scores take their inputs in C order ([`Floats::standard`]: a copy of the others), the
//! samplers and the mixing any layout.

use crate::errors::{param, type_error};
use ndarray::{Array2, ArrayView2};
use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A 2-D array of `f64` read from Python.
pub enum Floats<'py> {
    /// A `float64` array, borrowed as it is (any strides).
    Borrowed(PyReadonlyArray2<'py, f64>),
    /// A copy: widened from `float32`, or converted by numpy.
    Owned(Array2<f64>),
}

impl Floats<'_> {
    /// The same values in standard (C) layout, copied only when they are in another one.
    /// The scores depend on the layout in their last bits; the `clica` tool reads every
    /// `.npy` file into standard layout, so this gives its numbers.
    pub fn standard(self) -> Self {
        if self.view().is_standard_layout() {
            self
        } else {
            Floats::Owned(self.view().as_standard_layout().into_owned())
        }
    }

    /// The values.
    pub fn view(&self) -> ArrayView2<'_, f64> {
        match self {
            Floats::Borrowed(a) => a.as_array(),
            Floats::Owned(a) => a.view(),
        }
    }
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads argument `name` as a 2-D array of `f64`, copying only when it is not `float64`.
///
/// # Errors
/// `ValueError` for a number of dimensions other than 2; `TypeError` for a dtype that is not
/// real (complex, strings, objects) or an object numpy cannot convert.
pub fn floats<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Floats<'py>> {
    if let Ok(a) = obj.cast::<PyArray2<f64>>() {
        return Ok(Floats::Borrowed(a.readonly()));
    }
    if let Ok(a) = obj.cast::<PyArray2<f32>>() {
        return Ok(Floats::Owned(a.readonly().as_array().mapv(f64::from)));
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = if obj.cast::<PyUntypedArray>().is_ok() {
        obj.clone()
    } else {
        np.call_method1("asarray", (obj,)).map_err(|e| {
            let msg = format!(
                "{name}: expected a 2-D float32 or float64 array, got an object numpy cannot convert ({e})"
            );
            // A ragged list is a shape problem (numpy's ValueError); the rest are types.
            if e.is_instance_of::<pyo3::exceptions::PyValueError>(py) {
                pyo3::exceptions::PyValueError::new_err(msg)
            } else {
                type_error(msg)
            }
        })?
    };
    let untyped = arr.cast::<PyUntypedArray>()?;
    let kind: String = untyped.dtype().getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "f" | "i" | "u" | "b") {
        let dtype = untyped.dtype().str()?.to_string();
        return Err(type_error(format!(
            "{name}: unsupported dtype '{dtype}': expected float32 or float64"
        )));
    }
    if untyped.ndim() != 2 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{name}: expected a 2-D array, found {} dimension(s) with shape {}",
            untyped.ndim(),
            shape_text(untyped.shape())
        )));
    }
    // Other byte orders, float16, integers, booleans: numpy converts to native float64.
    let converted = arr.call_method1("astype", (np.getattr("float64")?,))?;
    let a = converted.cast::<PyArray2<f64>>()?;
    Ok(Floats::Owned(a.readonly().as_array().to_owned()))
}

/// A non-negative integer argument below 2⁶⁴ (`ValueError` naming `name` for a negative or
/// too large one; `TypeError` for a non-integer).
pub fn unsigned(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if !obj.is_instance_of::<pyo3::types::PyInt>() {
        return Err(type_error(format!(
            "{name}: expected an integer, got {}",
            obj.get_type().name()?
        )));
    }
    obj.extract::<u64>()
        .map_err(|_| param(name, format!("must be an integer in [0, 2^64), got {obj}")))
}

/// [`unsigned`] as a `usize`.
pub fn count(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let v = unsigned(name, obj)?;
    usize::try_from(v).map_err(|_| param(name, format!("is too large, got {v}")))
}
