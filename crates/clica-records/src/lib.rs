//! The record types of clica's result files, shared by the trainer that writes them and by
//! the tools that read them (`cargo xtask reproduce`, scripts).
//!
//! This crate depends on `serde` only: a reader links no numerics. Every type derives
//! `Serialize` and `Deserialize`; a number that is not finite (an MCC that is undefined,
//! the loss of a run that stopped before its first step) is written as JSON `null` and read
//! back as NaN.
//!
//! Files of a run folder (see the `clica` crate's `train` module):
//! * `metrics.jsonl`, `metrics_supervised.jsonl`: one [`LogPoint`] per line;
//! * `summary.json`: one [`Summary`]; its [`Status`] says whether the run completed,
//!   was interrupted, diverged or failed, and the fields that only a run that stopped early
//!   has ([`Summary::phase`], [`Summary::step`], [`Summary::message`],
//!   [`Summary::checkpoint`]) are absent from a completed run's file.
//!
//! # Example
//!
//! ```
//! use clica_records::{MeanStd, Status, Summary};
//!
//! let text = r#"{"status":"interrupted","phase":"contrastive","step":12,"steps":100,
//!   "message":"interrupted after step 12","checkpoint":{"file":"checkpoint.safetensors",
//!   "phase":"contrastive","step":10},"seed":3,"generator_fingerprint":"00ff",
//!   "versions":{"clica":"0.1.0"}}"#;
//! let s: Summary = serde_json::from_str(text)?;
//! assert_eq!(s.status, Status::Interrupted);
//! assert_eq!(s.checkpoint.unwrap().step, 10);
//! assert!(s.contrastive.is_none());
//!
//! // Means over seeds, as `cargo xtask reproduce` takes them.
//! let m = MeanStd::of(&[0.5, 1.5]);
//! assert_eq!((m.mean, m.std), (1.0, 0.5f64.sqrt()));
//! # Ok::<(), serde_json::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Reads a number that may have been written as `null` (not finite) as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads an optional list of numbers whose entries may have been written as `null` (not
/// finite) as NaN.
fn nans_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    Ok(Option::<Vec<Option<f64>>>::deserialize(d)?
        .map(|v| v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
}

/// One logged point of a run (a line of `metrics.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogPoint {
    /// Step (1-based).
    pub step: u64,
    /// Training loss at this step.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Learning rate used at this step.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// In-sample R² on fresh samples.
    #[serde(deserialize_with = "nan_if_null")]
    pub r2: f64,
    /// Pearson MCC on fresh samples (NaN when the representation has fewer dimensions
    /// than the latents).
    #[serde(deserialize_with = "nan_if_null")]
    pub mcc: f64,
    /// Seconds since training started.
    #[serde(deserialize_with = "nan_if_null")]
    pub elapsed_s: f64,
    /// With averaged weights (`train.ema`), the in-sample R² of the raw weights on the same
    /// samples (`r2` is the average's); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_raw: Option<f64>,
    /// The in-sample R² of each latent (the affine fit of all of them, scored column by
    /// column; `r2` is their mean); absent in files written before it was recorded.
    #[serde(
        default,
        deserialize_with = "nans_if_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub r2_per_latent: Option<Vec<f64>>,
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MeanStd {
    /// Mean.
    #[serde(deserialize_with = "nan_if_null")]
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    #[serde(deserialize_with = "nan_if_null")]
    pub std: f64,
}

impl MeanStd {
    /// Of a slice (NaN mean for an empty one).
    pub fn of(v: &[f64]) -> Self {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = if v.len() > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        MeanStd {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Final scores over K fresh evaluation batches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FinalScores {
    /// In-sample R².
    pub r2: MeanStd,
    /// Held-out R² (fit on the first half, score the second).
    pub r2_held_out: MeanStd,
    /// Pearson MCC.
    pub mcc_pearson: MeanStd,
    /// Spearman MCC.
    pub mcc_spearman: MeanStd,
    /// Latent by latent, means over the batches (absent in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_latent: Option<PerLatent>,
}

/// Scores latent by latent: which latents a representation recovers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PerLatent {
    /// Entry i: in-sample R² of the affine fit ĥ → zᵢ; their mean is the R² score.
    pub r2: Vec<f64>,
    /// Entry i: |Pearson ρ| between zᵢ and the ĥ column the MCC matching gives it; their
    /// mean is the Pearson MCC.
    pub mcc_pearson: Vec<f64>,
}

impl FinalScores {
    /// The score named as in result files (`r2`, `r2_held_out`, `mcc_pearson`,
    /// `mcc_spearman`).
    pub fn get(&self, name: &str) -> Option<&MeanStd> {
        match name {
            "r2" => Some(&self.r2),
            "r2_held_out" => Some(&self.r2_held_out),
            "mcc_pearson" => Some(&self.mcc_pearson),
            "mcc_spearman" => Some(&self.mcc_spearman),
            _ => None,
        }
    }

    /// The names [`FinalScores::get`] knows, in file order.
    pub const NAMES: [&'static str; 4] = ["r2", "r2_held_out", "mcc_pearson", "mcc_spearman"];
}

/// The scores of one representation on one sample (the identity baseline).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    /// In-sample R².
    #[serde(deserialize_with = "nan_if_null")]
    pub r2: f64,
    /// Held-out R².
    #[serde(deserialize_with = "nan_if_null")]
    pub r2_held_out: f64,
    /// Pearson MCC.
    #[serde(deserialize_with = "nan_if_null")]
    pub mcc_pearson: f64,
    /// Spearman MCC.
    #[serde(deserialize_with = "nan_if_null")]
    pub mcc_spearman: f64,
    /// The Pearson matching: `assignment[i]` is the column matched to latent i.
    pub assignment: Vec<usize>,
}

impl Scores {
    /// The score named as in result files.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "r2" => Some(self.r2),
            "r2_held_out" => Some(self.r2_held_out),
            "mcc_pearson" => Some(self.mcc_pearson),
            "mcc_spearman" => Some(self.mcc_spearman),
            _ => None,
        }
    }
}

/// Which part of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Contrastive training.
    Contrastive,
    /// The supervised baseline (after the contrastive phase).
    Supervised,
    /// The run has completed and its summary is written.
    Done,
}

impl Phase {
    /// The phase's name as written in files.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Contrastive => "contrastive",
            Phase::Supervised => "supervised",
            Phase::Done => "done",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every phase ran to its last step and the final scores are written.
    Completed,
    /// Stopped by a signal (or a caller's stop flag) after a step, with a checkpoint.
    Interrupted,
    /// A loss, gradient, parameter or output became NaN or ±∞.
    Diverged,
    /// Any other error (I/O, invalid data, …).
    Failed,
}

impl Status {
    /// The status as written in files.
    pub fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Interrupted => "interrupted",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}

/// The last checkpoint a run that stopped early left behind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRef {
    /// File name inside the run folder.
    pub file: String,
    /// Phase the checkpoint belongs to.
    pub phase: Phase,
    /// Steps completed in that phase.
    pub step: u64,
}

/// What a run produced: `summary.json`.
///
/// A completed run has every score; a run that stopped early has its [`Status`], where it
/// stopped and why, and whatever it had finished (e.g. the contrastive scores when it
/// stopped in the supervised phase).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// How the run ended.
    pub status: Status,
    /// Phase in which a run that stopped early stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The step at which it stopped (absent for failures outside a step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// The error of a run that stopped early, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last checkpoint of a run that stopped early (absent when none was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
    /// Run seed.
    pub seed: u64,
    /// Fingerprint of the data-generating process (for the latent source: the mixing g).
    pub generator_fingerprint: String,
    /// Description of the data source's prior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<String>,
    /// Description of the encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// Name of the objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    /// Scores of the observations themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Scores>,
    /// Scores of the trained encoder (once the contrastive phase is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrastive: Option<FinalScores>,
    /// Scores of the supervised baseline (`null` when it was not asked for or not reached).
    #[serde(default)]
    pub supervised: Option<FinalScores>,
    /// Steps of the contrastive phase (of the phase in progress, for a run that stopped
    /// early).
    pub steps: u64,
    /// Final training loss of the contrastive phase.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_nan_if_null"
    )]
    pub final_loss: Option<f64>,
    /// Wall time of the contrastive training, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Mean seconds per contrastive step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_per_step: Option<f64>,
    /// Where the contrastive steps' wall-clock time went (absent in files written before it
    /// was recorded, and when the invocation that finished the run did not run the
    /// contrastive phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_phases: Option<StepPhases>,
    /// Worker threads the run computed with (rayon's pool; for a resumed run, the count of
    /// the invocation that finished it). Results are bit-identical for a fixed thread count
    /// on any CPU; another count changes the kernels' summation order. Absent in files
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Versions of the software that wrote the file (today `clica`).
    pub versions: BTreeMap<String, String>,
}

/// Mean wall-clock milliseconds per contrastive step, by phase, over the `steps` steps that
/// the invocation which finished the phase ran (for a resumed run, the steps after the
/// resume). The phases add up to the time per step; they are timings, so they differ from
/// run to run, unlike every score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepPhases {
    /// Steps timed.
    pub steps: u64,
    /// Drawing the batch: latents, positives, the mixing and the input standardisation.
    pub draw_ms: f64,
    /// The encoder's forward pass.
    pub forward_ms: f64,
    /// The loss and its gradient with respect to the encoder's output, extra positives
    /// included.
    pub loss_ms: f64,
    /// The encoder's backward pass.
    pub backward_ms: f64,
    /// The optimiser step, the weight average and the divergence checks.
    pub update_ms: f64,
    /// Scoring at log points and writing metrics and checkpoints.
    pub logging_ms: f64,
}

/// A present-but-null number reads as `Some(NaN)`; an absent one as `None`.
fn opt_nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Some(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN)))
}
