//! clica's errors as Python exceptions, with the text the `clica` tool prints (after its
//! `error: ` prefix): the error and its causes joined by `": "`.

use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

/// The exception for an error of the `clica` crates:
///
/// * `ValueError`: invalid parameters, shapes, non-finite input, invalid configurations,
///   checkpoints that cannot be resumed;
/// * `OSError`: files that cannot be read or written;
/// * `KeyboardInterrupt`: a run stopped by Ctrl-C (its checkpoint written);
/// * `RuntimeError`: a diverged run, a run folder locked by another process, a numerical
///   failure.
pub fn to_py(e: anyhow::Error) -> PyErr {
    let msg = e
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<clica::Error>() {
            return match c {
                clica::Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(msg),
                clica::Error::Io { .. } => PyOSError::new_err(msg),
                clica::Error::Diverged { .. } | clica::Error::Locked(_) => {
                    PyRuntimeError::new_err(msg)
                }
                clica::Error::Core(core) => core_error(core, msg),
                _ => PyValueError::new_err(msg),
            };
        }
        if let Some(c) = cause.downcast_ref::<clica_core::Error>() {
            return core_error(c, msg);
        }
        if let Some(clica::npy::NpyError::Io { .. }) = cause.downcast_ref() {
            return PyOSError::new_err(msg);
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return PyOSError::new_err(msg);
        }
    }
    PyValueError::new_err(msg)
}

fn core_error(e: &clica_core::Error, msg: String) -> PyErr {
    match e {
        clica_core::Error::Numerical(_) => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// [`to_py`] for the composing crate's error.
pub fn clica_err(e: clica::Error) -> PyErr {
    to_py(e.into())
}

/// [`to_py`] for the shared error of the algorithm crates.
pub fn core_err(e: clica_core::Error) -> PyErr {
    to_py(e.into())
}

/// `ValueError("invalid parameter `name`: reason")`, worded as clica words its own.
pub fn param(name: &str, reason: impl Into<String>) -> PyErr {
    core_err(clica_core::Error::param(name, reason))
}

/// `TypeError(msg)`.
pub fn type_error(msg: String) -> PyErr {
    PyTypeError::new_err(msg)
}
