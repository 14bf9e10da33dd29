//! The trainer: builds the data source (once per run), encoder, optimiser and objective
//! from one validated [`TrainConfig`] and one seed, trains, scores on fresh samples as it
//! goes, and writes every result as data. It works only through the traits of
//! `clica-core` ([`PairSource`],
//! [`TrainableEncoder`](clica_core::TrainableEncoder), [`Metric`](clica_core::Metric)) and
//! `clica-objectives`' `ContrastiveLoss`; [`crate::registry`] says which implementations
//! a configuration builds.
//!
//! Output folder layout:
//! * `config.toml` — the resolved configuration plus a `[run]` table (seed, generator
//!   fingerprint, versions);
//! * `metrics.jsonl` — one [`LogPoint`] per logged step (`step`, `loss`, `lr`, `r2`, `mcc`,
//!   `elapsed_s`); `metrics_supervised.jsonl` likewise for the supervised baseline;
//! * `summary.json` — one [`Summary`]: status `completed` with the identity baseline, final
//!   scores (mean ± std over fresh batches), optional supervised baseline, steps, wall time,
//!   versions; or `diverged`, `interrupted`, `failed` with the phase, step, message and last
//!   checkpoint, and whatever the run had finished;
//! * `encoder.safetensors` — the trained weights (their moving average with `train.ema`);
//! * `checkpoint.safetensors` — the state to resume from (see [`crate::checkpoint`]).
//!
//! Every file is written atomically (temporary file, fsync, rename); the metrics files are
//! rewritten whole at each log point, so a crash never leaves a half-written line.
//!
//! Files: `steps` (the step loop and scoring), `resume` (checks before continuing a run),
//! `progress` (the display).

mod progress;
mod resume;
mod steps;

pub use clica_records::{FinalScores, LogPoint, MeanStd, Phase, Status, StepPhases, Summary};
pub use progress::{Observer, Progress, Silent};
pub use resume::resume;

use crate::checkpoint::{Checkpoint, ContrastiveResult};
use crate::config::TrainConfig;
use crate::io::write_atomic;
use crate::registry::Components;
use crate::{Error, Result};
use clica_core::{ClicaRng, PairSource, RunSeed};
use clica_records::{CheckpointRef, Scores};
use serde::Serialize;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use steps::{final_scores, write_points, Ended, Loop, Objective};

fn versions() -> BTreeMap<String, String> {
    BTreeMap::from([("clica".to_string(), env!("CARGO_PKG_VERSION").to_string())])
}

/// Everything a run is built from, constructed once.
pub struct Setup {
    /// The configuration.
    pub config: TrainConfig,
    /// The components it builds (the data source is built once, from the seed).
    pub components: Components,
    /// The run seed.
    pub seed: RunSeed,
}

impl Setup {
    /// Validates the config and builds its components.
    ///
    /// # Errors
    /// Invalid configuration or a failed generator build.
    pub fn new(config: &TrainConfig) -> Result<Self> {
        let seed = RunSeed::new(config.seed);
        let components = Components::build(config, &seed)?;
        // Checked here, not when the supervised phase starts after the contrastive one.
        let (latents, outputs) = (
            components.source.latent_dim(),
            components.encoder_output_dim(),
        );
        if config.eval.supervised && outputs != latents {
            return Err(Error::Config(format!(
                "the supervised baseline regresses the {latents}-dimensional latents, but the encoder outputs {outputs} dimensions"
            )));
        }
        Ok(Setup {
            config: config.clone(),
            components,
            seed,
        })
    }

    /// The data source.
    pub fn source(&self) -> &dyn PairSource {
        self.components.source.as_ref()
    }

    /// The data source's fingerprint, as result files record it.
    pub fn fingerprint(&self) -> String {
        self.source().fingerprint().hex()
    }
}

/// Options of a run beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// When this flag becomes true (e.g. set by a SIGINT/SIGTERM handler), the run finishes
    /// its current step, writes a checkpoint and a summary marked `interrupted`, and returns
    /// [`Error::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
}

fn saved_rng(ck: &Checkpoint, name: &str, path: &Path) -> Result<ClicaRng> {
    ck.rngs.get(name).cloned().ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("the state of random stream `{name}` is missing"),
    })
}

impl Loop<'_> {
    /// Continues from checkpoint `ck` (its encoder, optimiser state, streams and progress)
    /// with the logged `points`.
    fn restore(&mut self, ck: &Checkpoint, path: &Path, points: &[LogPoint]) -> Result<()> {
        let bad = |reason: String| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        self.encoder
            .set_parameters(&ck.parameters)
            .and_then(|()| {
                self.optimizer
                    .set_state(&ck.optimizer, &self.encoder.parameters())
            })
            .map_err(|e| bad(format!("its encoder does not fit the configuration: {e}")))?;
        match (&mut self.ema, ck.ema.is_empty()) {
            (Some(ema), false) => {
                // In the encoder's parameter order (a checkpoint lists its tensors by name).
                let live = self.encoder.parameters();
                let weights = live
                    .iter()
                    .map(|p| {
                        ck.ema
                            .iter()
                            .find(|e| e.name == p.name && e.shape == p.shape)
                            .cloned()
                    })
                    .collect::<Option<Vec<_>>>()
                    .filter(|w| w.len() == ck.ema.len());
                ema.weights = weights.ok_or_else(|| {
                    bad("its averaged weights do not match the encoder's parameters".into())
                })?;
            }
            (None, true) => {}
            (Some(_), true) => {
                return Err(bad(
                    "the run keeps averaged weights (train.ema) but the checkpoint has none".into(),
                ))
            }
            (None, false) => {
                return Err(bad(
                    "the checkpoint has averaged weights but the run keeps none".into(),
                ))
            }
        }
        self.data_rng = saved_rng(ck, "data", path)?;
        self.log_rng = saved_rng(ck, "log", path)?;
        self.step = ck.step;
        self.last_loss = ck.last_loss;
        self.elapsed_s = ck.elapsed_s;
        self.points = points.to_vec();
        Ok(())
    }
}

/// Writes `v` as pretty JSON to `path` atomically.
pub(crate) fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| Error::Config(e.to_string()))?;
    text.push('\n');
    write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Runs one training job and writes its results to `out` (see [`train_with`]).
///
/// # Errors
/// As [`train_with`].
pub fn train(config: &TrainConfig, out: &Path, observer: &mut dyn Observer) -> Result<Summary> {
    train_with(config, out, observer, &TrainOptions::default())
}

/// Runs one training job and writes its results to `out`, with checkpoints (see
/// [`crate::checkpoint`]) every `train.checkpoint_every` steps and at the end of each phase.
/// A checkpoint left in `out` by an earlier run is removed first.
///
/// # Errors
/// Invalid configuration, I/O failures, divergence (the error names the step and quantity;
/// `summary.json` is marked `diverged` and the last good checkpoint is kept), interruption
/// through `options.stop` ([`Error::Interrupted`]; `summary.json` is marked `interrupted`).
pub fn train_with(
    config: &TrainConfig,
    out: &Path,
    observer: &mut dyn Observer,
    options: &TrainOptions,
) -> Result<Summary> {
    let setup = Setup::new(config)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let stale = Checkpoint::path(out);
    match std::fs::remove_file(&stale) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&stale, e)),
        _ => {}
    }
    execute(&setup, out, observer, options, None)
}

fn supervised_steps(cfg: &TrainConfig) -> u64 {
    if cfg.eval.supervised_steps == 0 {
        cfg.train.steps
    } else {
        cfg.eval.supervised_steps
    }
}

/// Where a run stands, for the summary of a run that stops early.
#[derive(Default)]
struct Track {
    phase: Cell<Option<Phase>>,
    checkpoint: Cell<Option<(Phase, u64)>>,
    identity: std::cell::RefCell<Option<Scores>>,
    contrastive: std::cell::RefCell<Option<ContrastiveResult>>,
}

/// Writes checkpoints of one run.
struct Saver<'a> {
    out: &'a Path,
    config_toml: String,
    fingerprint: String,
    track: &'a Track,
}

impl Saver<'_> {
    fn save(
        &self,
        phase: Phase,
        lp: &Loop<'_>,
        eval_rng: &ClicaRng,
        metrics: &[LogPoint],
        metrics_supervised: &[LogPoint],
        contrastive: Option<&ContrastiveResult>,
    ) -> Result<()> {
        let ck = Checkpoint {
            phase,
            step: lp.step,
            config_toml: self.config_toml.clone(),
            generator_fingerprint: self.fingerprint.clone(),
            rngs: BTreeMap::from([
                ("data".to_string(), lp.data_rng.clone()),
                ("log".to_string(), lp.log_rng.clone()),
                ("eval".to_string(), eval_rng.clone()),
            ]),
            last_loss: lp.last_loss,
            elapsed_s: lp.elapsed_s,
            metrics: metrics.to_vec(),
            metrics_supervised: metrics_supervised.to_vec(),
            contrastive: contrastive.cloned(),
            parameters: lp.encoder.parameters(),
            optimizer: lp.optimizer.state(),
            ema: lp
                .ema
                .as_ref()
                .map(|e| e.weights.clone())
                .unwrap_or_default(),
        };
        ck.write(self.out)?;
        self.track.checkpoint.set(Some((phase, lp.step)));
        Ok(())
    }
}

/// The identity baseline's scores as recorded.
fn record_scores(s: clica_eval::Scores) -> Scores {
    Scores {
        r2: s.r2,
        r2_held_out: s.r2_held_out,
        mcc_pearson: s.mcc_pearson,
        mcc_spearman: s.mcc_spearman,
        assignment: s.assignment,
    }
}

/// Runs (or continues from `resume`) the phases of a run, writing a summary marked
/// `diverged`, `interrupted` or `failed` if it stops early.
fn execute(
    setup: &Setup,
    out: &Path,
    observer: &mut dyn Observer,
    options: &TrainOptions,
    resume: Option<Checkpoint>,
) -> Result<Summary> {
    let cfg = &setup.config;
    let track = Track::default();
    track.phase.set(Some(
        resume.as_ref().map_or(Phase::Contrastive, |c| c.phase),
    ));
    track
        .checkpoint
        .set(resume.as_ref().map(|c| (c.phase, c.step)));
    let result = run_phases(setup, out, observer, options, resume, &track);
    if let Err(e) = &result {
        let (status, step) = match e {
            Error::Diverged { step, .. } => (Status::Diverged, Some(*step)),
            Error::Interrupted { step, .. } => (Status::Interrupted, Some(*step)),
            _ => (Status::Failed, None),
        };
        let phase = track.phase.get().unwrap_or(Phase::Contrastive);
        let steps = match phase {
            Phase::Supervised => supervised_steps(cfg),
            _ => cfg.train.steps,
        };
        let contrastive = track.contrastive.borrow().clone();
        let summary = Summary {
            status,
            phase: Some(phase),
            step,
            message: Some(e.to_string()),
            checkpoint: track.checkpoint.get().map(|(phase, step)| CheckpointRef {
                file: crate::checkpoint::FILE.to_string(),
                phase,
                step,
            }),
            seed: cfg.seed,
            generator_fingerprint: setup.fingerprint(),
            prior: Some(setup.source().describe()),
            encoder: Some(setup.components.describe_encoder()),
            loss: Some(setup.components.loss.name()),
            identity: track.identity.borrow().clone(),
            contrastive: contrastive.as_ref().map(|c| c.scores.clone()),
            supervised: None,
            steps,
            final_loss: contrastive.as_ref().map(|c| c.final_loss),
            train_seconds: contrastive.as_ref().map(|c| c.train_seconds),
            seconds_per_step: None,
            step_phases: None,
            threads: Some(rayon::current_num_threads()),
            versions: versions(),
        };
        // The run's own error matters more than a failure to record it.
        let _ = write_json(&out.join("summary.json"), &summary);
    }
    result
}

fn run_phases(
    setup: &Setup,
    out: &Path,
    observer: &mut dyn Observer,
    options: &TrainOptions,
    resume: Option<Checkpoint>,
    track: &Track,
) -> Result<Summary> {
    let cfg = &setup.config;
    let fingerprint = setup.fingerprint();
    let stop = options.stop.as_deref();
    let ck_path = Checkpoint::path(out);

    // The resolved config, with the run's identity.
    let mut resolved = cfg.to_toml();
    resolved.push_str(&format!(
        "\n[run]\nseed = {}\ngenerator_fingerprint = \"{fingerprint}\"\nclica_version = \"{}\"\n",
        cfg.seed,
        env!("CARGO_PKG_VERSION")
    ));
    write_atomic(&out.join("config.toml"), resolved.as_bytes())
        .map_err(|e| Error::io(out.join("config.toml"), e))?;

    // Identity baseline on a fresh sample (recomputed on resume: it only reads the "eval"
    // stream, whose saved state replaces it afterwards).
    let mut eval_rng = setup.seed.stream("eval");
    let sample = setup.source().sample(&mut eval_rng, cfg.eval.samples);
    let identity = record_scores(clica_eval::identity_baseline(
        sample.z.view(),
        sample.x.to_f64().view(),
    )?);
    *track.identity.borrow_mut() = Some(identity.clone());
    if let Some(ck) = &resume {
        eval_rng = saved_rng(ck, "eval", &ck_path)?;
    }

    let loss_kernel = setup.components.loss.as_ref();
    let saver = Saver {
        out,
        config_toml: cfg.to_toml(),
        fingerprint: fingerprint.clone(),
        track,
    };
    let interrupted = |step: u64, phase: Phase| Error::Interrupted {
        step,
        phase: phase.name().into(),
        resume: format!(
            "checkpoint written; continue with `clica train --resume {}`",
            out.display()
        ),
    };

    // Contrastive phase (unless the checkpoint is past it).
    let metrics_path = out.join("metrics.jsonl");
    let mut step_phases = None;
    let (contrastive, metrics, mut last) =
        match resume.as_ref().filter(|c| c.phase != Phase::Contrastive) {
            Some(ck) => {
                let c = ck.contrastive.clone().ok_or_else(|| Error::Checkpoint {
                    path: ck_path.clone(),
                    reason: "no contrastive results".into(),
                })?;
                write_points(&metrics_path, &ck.metrics)?;
                (c, ck.metrics.clone(), None)
            }
            None => {
                let mut lp =
                    Loop::new(setup, ["encoder", "train.data", "train.log"], metrics_path)?;
                if let Some(beta) = cfg.train.ema {
                    lp.keep_average(beta);
                }
                if let Some(ck) = &resume {
                    lp.restore(ck, &ck_path, &ck.metrics)?;
                }
                track.phase.set(Some(Phase::Contrastive));
                observer.start(cfg.train.steps, "contrastive");
                let ended = lp.run(
                    Objective::Contrastive(loss_kernel, setup.components.positives.as_ref()),
                    cfg.train.steps,
                    observer,
                    stop,
                    &mut |l| saver.save(Phase::Contrastive, l, &eval_rng, &l.points, &[], None),
                )?;
                observer.finish();
                if let Ended::Interrupted = ended {
                    return Err(interrupted(lp.step, Phase::Contrastive));
                }
                // Scored and saved: the averaged weights, when the run keeps them.
                lp.adopt_average()?;
                let scores = final_scores(
                    setup,
                    lp.encoder.as_ref(),
                    &mut eval_rng,
                    cfg.eval.final_batches,
                )?;
                let weights = out.join("encoder.safetensors");
                write_atomic(&weights, &lp.encoder.to_safetensors()?)
                    .map_err(|e| Error::io(&weights, e))?;
                let c = ContrastiveResult {
                    scores,
                    final_loss: lp.last_loss,
                    train_seconds: lp.elapsed_s,
                };
                step_phases = lp.phases.summary();
                let points = lp.points.clone();
                (c, points, Some(lp))
            }
        };
    *track.contrastive.borrow_mut() = Some(contrastive.clone());

    let mut metrics_supervised = Vec::new();
    let supervised = if cfg.eval.supervised {
        let steps = supervised_steps(cfg);
        let mut sup = Loop::new(
            setup,
            [
                "encoder.supervised",
                "train.supervised.data",
                "train.supervised.log",
            ],
            out.join("metrics_supervised.jsonl"),
        )?;
        if let Some(ck) = resume.as_ref().filter(|c| c.phase == Phase::Supervised) {
            sup.restore(ck, &ck_path, &ck.metrics_supervised)?;
        }
        track.phase.set(Some(Phase::Supervised));
        observer.start(steps, "supervised");
        let ended = sup.run(Objective::Supervised, steps, observer, stop, &mut |l| {
            saver.save(
                Phase::Supervised,
                l,
                &eval_rng,
                &metrics,
                &l.points,
                Some(&contrastive),
            )
        })?;
        observer.finish();
        if let Ended::Interrupted = ended {
            return Err(interrupted(sup.step, Phase::Supervised));
        }
        let scores = final_scores(
            setup,
            sup.encoder.as_ref(),
            &mut eval_rng,
            cfg.eval.final_batches,
        )?;
        metrics_supervised = sup.points.clone();
        last = Some(sup);
        Some(scores)
    } else {
        None
    };

    let summary = Summary {
        status: Status::Completed,
        phase: None,
        step: None,
        message: None,
        checkpoint: None,
        seed: cfg.seed,
        generator_fingerprint: fingerprint,
        prior: Some(setup.source().describe()),
        encoder: Some(setup.components.describe_encoder()),
        loss: Some(match &setup.components.positives {
            Some(extra) => format!("{}[{} positives]", loss_kernel.name(), extra.positives()),
            None => loss_kernel.name(),
        }),
        identity: Some(identity),
        contrastive: Some(contrastive.scores.clone()),
        supervised,
        steps: cfg.train.steps,
        final_loss: Some(contrastive.final_loss),
        train_seconds: Some(contrastive.train_seconds),
        seconds_per_step: Some(contrastive.train_seconds / cfg.train.steps as f64),
        step_phases,
        threads: Some(rayon::current_num_threads()),
        versions: versions(),
    };
    write_json(&out.join("summary.json"), &summary)?;
    if let Some(lp) = last.as_ref() {
        saver.save(
            Phase::Done,
            lp,
            &eval_rng,
            &metrics,
            &metrics_supervised,
            Some(&contrastive),
        )?;
    }
    Ok(summary)
}
