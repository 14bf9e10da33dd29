//! `clica.train` and `clica.resume`: the trainer of `clica train`, with its run-folder lock,
//! stopped cleanly by Ctrl-C.
//!
//! The run goes on a worker thread with the GIL released; the calling thread wakes every
//! 50 ms to let Python handle signals (`PyErr_CheckSignals`). When a handler raises (Ctrl-C
//! raises `KeyboardInterrupt`), the run is asked to stop through the trainer's stop flag: it
//! finishes its step, writes a checkpoint and an `interrupted` summary, and the exception is
//! raised with the trainer's message, which says how to continue.

use crate::config::{borrowed, layers, overrides, resolve};
use crate::errors::{clica_err, to_py};
use clica::train::{Observer, Progress, Silent, Summary, TrainOptions};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The summary as a Python dict: the JSON `clica train` prints, parsed.
fn summary_dict<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyAny>> {
    crate::to_python(py, s)
}

/// Runs `work` (given the stop flag and an observer) on a worker thread with the GIL
/// released, handling Python's signals meanwhile; see the module documentation.
fn run_interruptible<T: Send>(
    py: Python<'_>,
    progress: bool,
    work: impl FnOnce(&TrainOptions, &mut dyn Observer) -> clica::Result<T> + Send,
) -> PyResult<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let options = TrainOptions {
        stop: Some(Arc::clone(&stop)),
    };
    let (result, raised) = py.detach(|| {
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                clica::in_pool(|| {
                    let mut observer: Box<dyn Observer> = if progress {
                        Box::new(Progress::default())
                    } else {
                        Box::new(Silent)
                    };
                    work(&options, observer.as_mut())
                })
            });
            let mut raised: Option<PyErr> = None;
            while !worker.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
                if raised.is_none() {
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        stop.store(true, Ordering::SeqCst);
                        raised = Some(e);
                    }
                }
            }
            (worker.join(), raised)
        })
    });
    let result = match result {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    match (result, raised) {
        // A run stopped by the flag: the trainer's message for Ctrl-C, the handler's own
        // exception otherwise.
        (Err(e @ clica::Error::Interrupted { .. }), Some(raised)) => {
            if raised.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
                Err(clica_err(e))
            } else {
                Err(raised)
            }
        }
        (Err(e), _) => Err(clica_err(e)),
        // The run ended before it saw the flag: the signal's exception stands.
        (Ok(_), Some(raised)) => Err(raised),
        (Ok(v), None) => Ok(v),
    }
}

/// A fresh folder under the system's temporary directory.
fn temporary_folder() -> PyResult<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("clica-train-{}-{nanos:09}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| clica_err(clica::Error::io(&dir, e)))?;
    Ok(dir)
}

/// `train(config=None, out=None, overrides=None, *, progress=True) -> dict`: trains as
/// `clica train --config … --set … --out out` does and returns its summary (the
/// `summary.json` it writes, as a dict).
///
/// * `config`: a TOML file path, a dict of the same tables (`{"data": {"dim": 5}}`), or a
///   list of them layered in order (later ones win, table by table); None: the defaults.
/// * `out`: the run folder (created; locked while the run goes on, as `clica train` locks
///   it). None: a new temporary folder, removed after a completed run and kept when it
///   stops early (a Ctrl-C message names it).
/// * `overrides`: `["train.steps=500", …]` or `{"train.steps": 500, …}`, as `--set`.
/// * `progress`: print progress on stderr as `clica train` does.
///
/// Ctrl-C stops the run after its current step with a checkpoint and an `interrupted`
/// summary, then raises KeyboardInterrupt saying how to continue (`clica.resume(out)` or
/// `clica train --resume out`). Raises ValueError for an invalid configuration (naming the
/// key), RuntimeError when the run diverges or another process holds the folder, OSError
/// when files cannot be written.
#[pyfunction]
#[pyo3(signature = (config = None, out = None, overrides = None, *, progress = true))]
pub fn train<'py>(
    py: Python<'py>,
    config: Option<&Bound<'py, PyAny>>,
    out: Option<PathBuf>,
    overrides: Option<&Bound<'py, PyAny>>,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = resolve(config, overrides)?;
    let (dir, temporary) = match out {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| {
                to_py(
                    anyhow::Error::from(e)
                        .context(format!("cannot create output folder {}", d.display())),
                )
            })?;
            (d, false)
        }
        None => (temporary_folder()?, true),
    };
    let summary = run_interruptible(py, progress, |options, observer| {
        let _lock = clica::lock::lock_run_folder(&dir)?;
        clica::train::train_with(&cfg, &dir, observer, options)
    })?;
    if temporary {
        // The results were returned; a failure to tidy up is not the caller's problem.
        let _ = std::fs::remove_dir_all(&dir);
    }
    summary_dict(py, &summary)
}

/// `resume(dir, config=None, overrides=None, *, progress=True) -> dict`: continues the run in
/// `dir` from its checkpoint, as `clica train --resume dir` does, and returns its summary;
/// the results equal an uninterrupted run's. `config` and `overrides` (as for `train`)
/// state the configuration the caller expects: a difference from the checkpoint's is
/// refused (ValueError) naming the field. A run that is already complete returns its
/// summary.
#[pyfunction]
#[pyo3(signature = (dir, config = None, overrides = None, *, progress = true))]
pub fn resume<'py>(
    py: Python<'py>,
    dir: PathBuf,
    config: Option<&Bound<'py, PyAny>>,
    overrides: Option<&Bound<'py, PyAny>>,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let texts = layers(config)?;
    let set = self::overrides(overrides)?;
    let result = run_interruptible(py, progress, |options, observer| {
        // A folder that does not exist has no checkpoint either; `resume` says so.
        let _lock = if dir.is_dir() {
            Some(clica::lock::lock_run_folder(&dir)?)
        } else {
            None
        };
        match clica::train::resume(&dir, &borrowed(&texts), &set, observer, options) {
            Err(clica::Error::AlreadyComplete(_)) => Ok(None),
            r => r.map(Some),
        }
    })?;
    match result {
        Some(summary) => summary_dict(py, &summary),
        None => read_summary(py, &dir),
    }
}

/// The `summary.json` of a completed run, as a dict.
fn read_summary<'py>(py: Python<'py>, dir: &Path) -> PyResult<Bound<'py, PyAny>> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| clica_err(clica::Error::io(&path, e)))?;
    py.import("json")?.call_method1("loads", (text,))
}
