//! Checkpoints: one safetensors file, `checkpoint.safetensors`, holding everything a run
//! needs to continue exactly where it stopped.
//!
//! Tensors: the encoder's parameters (`param.<name>`), Adam's first and second moments
//! (`adam.m.<name>`, `adam.v.<name>`) and, for a run with `train.ema`, the averaged weights
//! (`ema.<name>`), f32. Header metadata: one entry,
//! `clica.checkpoint`, a JSON object with the format version, the
//! phase (`contrastive`, `supervised` or `done`), the steps completed in that phase, Adam's
//! step count, the state of every random stream the trainer saved (by name; the trainer
//! checks that the ones it needs are there; four `u64` each), the resolved configuration (TOML text), the generator fingerprint, the metrics
//! logged so far and, once the contrastive phase is done, its results. Every `f64` is
//! stored by its bit pattern, so nothing is rounded on the way through JSON.
//!
//! The file is written atomically ([`crate::io::write_atomic`]): a crash leaves either the
//! previous checkpoint or the new one, never a mix.

use crate::{Error, Result};
use clica_core::{ClicaRng, NamedTensor};
use clica_optim::OptimizerState;
pub use clica_records::Phase;
use clica_records::{FinalScores, LogPoint, MeanStd, PerLatent};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File name of the checkpoint inside a run folder.
pub const FILE: &str = "checkpoint.safetensors";
/// Metadata key of the JSON description.
const META_KEY: &str = "clica.checkpoint";
/// Version of the layout written by this build.
pub const VERSION: u32 = 1;

/// Results of the finished contrastive phase, kept for the summary of a later phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveResult {
    /// Final scores of the contrastive encoder.
    pub scores: FinalScores,
    /// Training loss of the last contrastive step.
    pub final_loss: f64,
    /// Seconds spent on contrastive training (all segments of the run).
    pub train_seconds: f64,
}

/// Everything a run needs to continue.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The phase in progress (or `Done`).
    pub phase: Phase,
    /// Steps completed in that phase.
    pub step: u64,
    /// The resolved configuration ([`crate::config::TrainConfig::to_toml`]).
    pub config_toml: String,
    /// Fingerprint of the generator the run was built with.
    pub generator_fingerprint: String,
    /// Generator state of every stream the trainer saved, by name.
    pub rngs: BTreeMap<String, ClicaRng>,
    /// Loss of the last completed step (NaN before the first).
    pub last_loss: f64,
    /// Seconds spent training in this phase so far.
    pub elapsed_s: f64,
    /// Points of `metrics.jsonl` logged so far.
    pub metrics: Vec<LogPoint>,
    /// Points of `metrics_supervised.jsonl` logged so far.
    pub metrics_supervised: Vec<LogPoint>,
    /// Results of the contrastive phase once it is done.
    pub contrastive: Option<ContrastiveResult>,
    /// Encoder parameters of the phase in progress.
    pub parameters: Vec<NamedTensor>,
    /// The optimiser's state for that encoder.
    pub optimizer: OptimizerState,
    /// The moving average of the parameters (`train.ema`); empty when the run keeps none.
    pub ema: Vec<NamedTensor>,
}

/// Serialises an `f64` by its bit pattern.
mod bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPoint {
    step: u64,
    #[serde(with = "bits")]
    loss: f64,
    #[serde(with = "bits")]
    lr: f64,
    #[serde(with = "bits")]
    r2: f64,
    #[serde(with = "bits")]
    mcc: f64,
    #[serde(with = "bits")]
    elapsed_s: f64,
    /// The raw weights' R² beside the averaged one's (bit pattern), with `train.ema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r2_raw: Option<u64>,
    /// Each latent's R² (bit patterns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r2_per_latent: Option<Vec<u64>>,
}

impl From<&LogPoint> for StoredPoint {
    fn from(p: &LogPoint) -> Self {
        StoredPoint {
            step: p.step,
            loss: p.loss,
            lr: p.lr,
            r2: p.r2,
            mcc: p.mcc,
            elapsed_s: p.elapsed_s,
            r2_raw: p.r2_raw.map(f64::to_bits),
            r2_per_latent: p
                .r2_per_latent
                .as_ref()
                .map(|v| v.iter().map(|x| x.to_bits()).collect()),
        }
    }
}

impl From<StoredPoint> for LogPoint {
    fn from(p: StoredPoint) -> Self {
        LogPoint {
            step: p.step,
            loss: p.loss,
            lr: p.lr,
            r2: p.r2,
            mcc: p.mcc,
            elapsed_s: p.elapsed_s,
            r2_raw: p.r2_raw.map(f64::from_bits),
            r2_per_latent: p
                .r2_per_latent
                .map(|v| v.into_iter().map(f64::from_bits).collect()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredContrastive {
    /// r2, r2_held_out, mcc_pearson, mcc_spearman: mean then std, as bit patterns.
    scores: [u64; 8],
    /// The per-latent R² then MCC, as bit patterns (absent in older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_latent: Option<(Vec<u64>, Vec<u64>)>,
    #[serde(with = "bits")]
    final_loss: f64,
    #[serde(with = "bits")]
    train_seconds: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    version: u32,
    clica_version: String,
    phase: Phase,
    step: u64,
    adam_steps: u64,
    config: String,
    generator_fingerprint: String,
    rng: BTreeMap<String, ClicaRng>,
    #[serde(with = "bits")]
    last_loss: f64,
    #[serde(with = "bits")]
    elapsed_s: f64,
    metrics: Vec<StoredPoint>,
    metrics_supervised: Vec<StoredPoint>,
    contrastive: Option<StoredContrastive>,
}

fn scores_to_bits(s: &FinalScores) -> [u64; 8] {
    let m = [&s.r2, &s.r2_held_out, &s.mcc_pearson, &s.mcc_spearman];
    let mut out = [0u64; 8];
    for (i, ms) in m.iter().enumerate() {
        out[2 * i] = ms.mean.to_bits();
        out[2 * i + 1] = ms.std.to_bits();
    }
    out
}

fn scores_from_bits(b: &[u64; 8]) -> FinalScores {
    let ms = |i: usize| MeanStd {
        mean: f64::from_bits(b[2 * i]),
        std: f64::from_bits(b[2 * i + 1]),
    };
    FinalScores {
        r2: ms(0),
        r2_held_out: ms(1),
        mcc_pearson: ms(2),
        mcc_spearman: ms(3),
        per_latent: None,
    }
}

const PARAM: &str = "param.";
const ADAM_M: &str = "adam.m.";
const ADAM_V: &str = "adam.v.";
const EMA: &str = "ema.";

impl Checkpoint {
    /// The checkpoint's path inside run folder `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Serialises the checkpoint (safetensors bytes).
    ///
    /// # Errors
    /// [`Error::Config`] if serialisation fails (it does not for well-formed tensors).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let meta = Meta {
            version: VERSION,
            clica_version: env!("CARGO_PKG_VERSION").to_string(),
            phase: self.phase,
            step: self.step,
            adam_steps: self.optimizer.steps,
            config: self.config_toml.clone(),
            generator_fingerprint: self.generator_fingerprint.clone(),
            rng: self.rngs.clone(),
            last_loss: self.last_loss,
            elapsed_s: self.elapsed_s,
            metrics: self.metrics.iter().map(StoredPoint::from).collect(),
            metrics_supervised: self
                .metrics_supervised
                .iter()
                .map(StoredPoint::from)
                .collect(),
            contrastive: self.contrastive.as_ref().map(|c| StoredContrastive {
                scores: scores_to_bits(&c.scores),
                per_latent: c.scores.per_latent.as_ref().map(|p| {
                    let to = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect();
                    (to(&p.r2), to(&p.mcc_pearson))
                }),
                final_loss: c.final_loss,
                train_seconds: c.train_seconds,
            }),
        };
        let json = serde_json::to_string(&meta).map_err(|e| Error::Config(e.to_string()))?;
        let groups = [
            (PARAM, &self.parameters),
            (ADAM_M, &self.optimizer.first_moment),
            (ADAM_V, &self.optimizer.second_moment),
            (EMA, &self.ema),
        ];
        let mut named: Vec<(String, &NamedTensor, Vec<u8>)> = Vec::new();
        for (prefix, tensors) in groups {
            for t in tensors {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                named.push((format!("{prefix}{}", t.name), t, bytes));
            }
        }
        let views = named
            .iter()
            .map(|(name, t, b)| {
                TensorView::new(Dtype::F32, t.shape.clone(), b)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Config(format!("checkpoint tensor `{name}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // One entry only: safetensors writes the metadata map in `HashMap` order, and a
        // single entry keeps the bytes of equal checkpoints equal.
        let metadata = HashMap::from([(META_KEY.to_string(), json)]);
        safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::Config(format!("cannot serialise the checkpoint: {e}")))
    }

    /// Parses checkpoint bytes, checking the format, its version and the consistency of
    /// the description; never panics on malformed input.
    ///
    /// # Errors
    /// A one-line reason naming what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a readable safetensors file ({e}); truncated or corrupt?"))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| format!("not a readable safetensors file ({e}); truncated or corrupt?"))?;
        let meta_map = header.metadata().clone().unwrap_or_default();
        let json = meta_map
            .get(META_KEY)
            .ok_or("not a clica checkpoint (no `clica.checkpoint` description)")?;
        // The version first, so that a newer layout gets a clear message.
        let version = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        match version {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "checkpoint format version {v}, but this clica reads version {VERSION}"
                ))
            }
            None => return Err("the checkpoint description has no format version".into()),
        }
        let meta: Meta = serde_json::from_str(json)
            .map_err(|e| format!("malformed checkpoint description: {e}"))?;
        if meta.phase != Phase::Contrastive && meta.contrastive.is_none() {
            return Err(format!(
                "phase `{}` but no contrastive results",
                meta.phase.name()
            ));
        }
        let mut groups: [Vec<NamedTensor>; 4] = Default::default();
        for (name, view) in st.iter() {
            if view.dtype() != Dtype::F32 {
                return Err(format!(
                    "tensor `{name}` has dtype {:?}, expected F32",
                    view.dtype()
                ));
            }
            let (g, rest) = if let Some(r) = name.strip_prefix(PARAM) {
                (0, r)
            } else if let Some(r) = name.strip_prefix(ADAM_M) {
                (1, r)
            } else if let Some(r) = name.strip_prefix(ADAM_V) {
                (2, r)
            } else if let Some(r) = name.strip_prefix(EMA) {
                (3, r)
            } else {
                return Err(format!("unexpected tensor `{name}`"));
            };
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            groups[g].push(NamedTensor {
                name: rest.to_string(),
                shape: view.shape().to_vec(),
                data,
            });
        }
        let [parameters, first_moment, second_moment, ema] = groups;
        if parameters.is_empty() {
            return Err("the checkpoint holds no encoder parameters".into());
        }
        if let Some((p, t)) = parameters
            .iter()
            .chain(&ema)
            .flat_map(|t| t.data.iter().map(move |v| (v, t)))
            .find(|(v, _)| !v.is_finite())
        {
            return Err(format!(
                "parameter `{}` holds a non-finite value {p}",
                t.name
            ));
        }
        Ok(Checkpoint {
            phase: meta.phase,
            step: meta.step,
            config_toml: meta.config,
            generator_fingerprint: meta.generator_fingerprint,
            rngs: meta.rng,
            last_loss: meta.last_loss,
            elapsed_s: meta.elapsed_s,
            metrics: meta.metrics.into_iter().map(LogPoint::from).collect(),
            metrics_supervised: meta
                .metrics_supervised
                .into_iter()
                .map(LogPoint::from)
                .collect(),
            contrastive: meta.contrastive.map(|c| ContrastiveResult {
                scores: FinalScores {
                    per_latent: c.per_latent.map(|(r2, mcc)| {
                        let from = |v: Vec<u64>| v.into_iter().map(f64::from_bits).collect();
                        PerLatent {
                            r2: from(r2),
                            mcc_pearson: from(mcc),
                        }
                    }),
                    ..scores_from_bits(&c.scores)
                },
                final_loss: c.final_loss,
                train_seconds: c.train_seconds,
            }),
            parameters,
            optimizer: OptimizerState {
                steps: meta.adam_steps,
                first_moment,
                second_moment,
            },
            ema,
        })
    }

    /// Writes the checkpoint into run folder `dir` atomically.
    ///
    /// # Errors
    /// Serialisation or I/O failures.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        crate::io::write_atomic(&path, &self.to_bytes()?).map_err(|e| Error::io(&path, e))
    }

    /// Reads and checks the checkpoint of run folder `dir`.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming the file and what is wrong (missing, unreadable,
    /// malformed, truncated, another format version).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "no checkpoint in this folder (was the run started with `clica train --out`?)"
                    .to_string()
            } else {
                e.to_string()
            },
        })?;
        Self::from_bytes(&bytes).map_err(|reason| Error::Checkpoint { path, reason })
    }
}
