//! Continuing a run from its checkpoint, after checking that the checkpoint, the folder's
//! `config.toml`, the configuration the caller expects and the data source all agree.

use super::{execute, supervised_steps, Observer, Setup, Summary, TrainOptions};
use crate::checkpoint::{Checkpoint, Phase};
use crate::config::TrainConfig;
use crate::{Error, Result};
use std::path::Path;

fn describe(d: Vec<(String, String, String)>, a: &str, b: &str) -> String {
    d.iter()
        .map(|(k, x, y)| format!("{k}: {a} {x}, {b} {y}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Continues the run in folder `dir` from its checkpoint and finishes it; the results equal
/// those of an uninterrupted run bit for bit (timings aside).
///
/// `layers` and `overrides` (as in [`TrainConfig::from_layers`], applied on top of the
/// checkpoint's configuration) let the caller state the configuration it expects: if the
/// result differs from the checkpoint's, the resume is refused and the error names every
/// differing field. The folder's `config.toml` must match the checkpoint too.
///
/// # Errors
/// [`Error::Checkpoint`] for a missing, malformed, truncated or foreign checkpoint (other
/// format version, other data source), [`Error::ConfigMismatch`],
/// [`Error::AlreadyComplete`], and the errors of [`super::train_with`].
pub fn resume(
    dir: &Path,
    layers: &[(&str, &str)],
    overrides: &[String],
    observer: &mut dyn Observer,
    options: &TrainOptions,
) -> Result<Summary> {
    let path = Checkpoint::path(dir);
    let ck = Checkpoint::read(dir)?;
    let bad = |reason: String| Error::Checkpoint {
        path: path.clone(),
        reason,
    };
    let config = TrainConfig::from_toml_with_overrides(&ck.config_toml, &[])
        .map_err(|e| bad(format!("its configuration is not valid here: {e}")))?;
    let folder_cfg = dir.join("config.toml");
    if let Ok(text) = std::fs::read_to_string(&folder_cfg) {
        let on_disk = TrainConfig::from_run_config(&text).map_err(|e| {
            Error::ConfigMismatch(format!("{}: {e}; refusing to resume", folder_cfg.display()))
        })?;
        let d = config.differences(&on_disk);
        if !d.is_empty() {
            return Err(Error::ConfigMismatch(format!(
                "{} no longer matches the checkpoint, refusing to resume: {}",
                folder_cfg.display(),
                describe(d, "checkpoint", "config.toml")
            )));
        }
    }
    if !layers.is_empty() || !overrides.is_empty() {
        let mut all = vec![("checkpoint", ck.config_toml.as_str())];
        all.extend_from_slice(layers);
        let now = TrainConfig::from_layers(&all, overrides)?;
        let d = config.differences(&now);
        if !d.is_empty() {
            return Err(Error::ConfigMismatch(format!(
                "the configuration given differs from the checkpoint's, refusing to resume: {}",
                describe(d, "checkpoint", "now")
            )));
        }
    }
    if ck.phase == Phase::Done {
        return Err(Error::AlreadyComplete(dir.to_path_buf()));
    }
    let setup = Setup::new(&config)?;
    let fingerprint = setup.fingerprint();
    if fingerprint != ck.generator_fingerprint {
        return Err(bad(format!(
            "it was written for generator {} but this configuration builds generator {fingerprint} (another clica version?)",
            ck.generator_fingerprint
        )));
    }
    let total = match ck.phase {
        Phase::Supervised => supervised_steps(&config),
        _ => config.train.steps,
    };
    if ck.step > total {
        return Err(bad(format!(
            "it is at step {} of a {}-step {} phase",
            ck.step,
            total,
            ck.phase.name()
        )));
    }
    execute(&setup, dir, observer, options, Some(ck))
}
