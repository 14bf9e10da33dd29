//! Run configurations from Python: TOML files, dicts or lists of them (layered like repeated
//! `--config`), and overrides as `"key=value"` strings or a dict (like `--set`).

use crate::errors::{clica_err, type_error};
use clica::config::TrainConfig;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::path::PathBuf;

/// One configuration layer: its name (for error messages) and its TOML text.
pub type Layer = (String, String);

/// A Python value as a TOML value; `key` names it in errors.
fn toml_value(obj: &Bound<'_, PyAny>, key: &str) -> PyResult<toml::Value> {
    let bad = || {
        let ty = obj
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        type_error(format!(
            "config entry `{key}`: a {ty} has no TOML form (use a bool, int, float, str, list or dict)"
        ))
    };
    if obj.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        let v: i64 = obj.extract().map_err(|_| {
            PyValueError::new_err(format!(
                "config: invalid value for `{key}`: {obj} does not fit in 64 bits"
            ))
        })?;
        return Ok(toml::Value::Integer(v));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(obj.extract()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut table = toml::Table::new();
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| type_error(format!("config entry `{key}`: keys must be strings")))?;
            let path = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            table.insert(k, toml_value(&v, &path)?);
        }
        return Ok(toml::Value::Table(table));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items = obj
            .try_iter()?
            .enumerate()
            .map(|(i, v)| toml_value(&v?, &format!("{key}[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(toml::Value::Array(items));
    }
    Err(bad())
}

/// One layer from a path (str or os.PathLike) or a dict.
fn layer(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<Layer> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let value = toml_value(d.as_any(), "")?;
        let text = toml::to_string(&value).map_err(|e| type_error(format!("config: {e}")))?;
        return Ok((format!("config dict {index}"), text));
    }
    let path: PathBuf = obj.extract().map_err(|_| {
        type_error("config: expected a TOML file path, a dict, or a list of them".to_string())
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        pyo3::exceptions::PyOSError::new_err(format!("cannot read config {}: {e}", path.display()))
    })?;
    Ok((path.display().to_string(), text))
}

/// The layers of `config`: None (the defaults), a path, a dict, or a list of those.
pub fn layers(config: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Layer>> {
    let Some(config) = config else {
        return Ok(Vec::new());
    };
    if config.is_instance_of::<PyList>() || config.is_instance_of::<PyTuple>() {
        config
            .try_iter()?
            .enumerate()
            .map(|(i, c)| layer(&c?, i))
            .collect()
    } else {
        Ok(vec![layer(config, 0)?])
    }
}

/// The overrides: None, a list of `"key=value"` strings, or a dict `{key: value}`.
pub fn overrides(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        return d
            .iter()
            .map(|(k, v)| {
                let k: String = k
                    .extract()
                    .map_err(|_| type_error("overrides: keys must be strings".to_string()))?;
                let value = toml_value(&v, &k)?;
                Ok(format!("{k}={value}"))
            })
            .collect();
    }
    if obj.is_instance_of::<PyString>() {
        return Err(type_error(
            "overrides: expected a list of \"key=value\" strings or a dict, got a str".into(),
        ));
    }
    obj.try_iter()
        .map_err(|_| {
            type_error("overrides: expected a list of \"key=value\" strings or a dict".into())
        })?
        .map(|s| {
            s?.extract::<String>().map_err(|_| {
                type_error("overrides: expected a list of \"key=value\" strings".into())
            })
        })
        .collect()
}

/// Borrowed form of [`Layer`]s, as [`TrainConfig::from_layers`] takes them.
pub fn borrowed(layers: &[Layer]) -> Vec<(&str, &str)> {
    layers
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect()
}

/// The validated configuration of `config` with `overrides` applied.
pub fn resolve(
    config: Option<&Bound<'_, PyAny>>,
    overrides_obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<TrainConfig> {
    let layers = layers(config)?;
    let set = overrides(overrides_obj)?;
    TrainConfig::from_layers(&borrowed(&layers), &set).map_err(clica_err)
}
