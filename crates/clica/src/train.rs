//! The trainer: builds prior, generator (once per run), encoder and objective from one
//! validated [`TrainConfig`] and one seed, trains, scores on fresh samples as it goes, and
//! writes every result as data.
//!
//! Output folder layout:
//! * `config.toml` — the resolved configuration plus a `[run]` table (seed, generator
//!   fingerprint, versions);
//! * `metrics.jsonl` — one JSON object per logged step (`step`, `loss`, `lr`, `r2`, `mcc`,
//!   `elapsed_s`); `metrics_supervised.jsonl` likewise for the supervised baseline;
//! * `summary.json` — `status` `completed`: identity baseline, final scores (mean ± std
//!   over fresh batches), optional supervised baseline, steps, wall time, versions. A run
//!   that stops early writes `status` `diverged`, `interrupted` or `failed` with `phase`,
//!   `step`, `steps`, `message` and the last `checkpoint` instead;
//! * `encoder.safetensors` — the trained weights;
//! * `checkpoint.safetensors` — the state to resume from (see [`crate::checkpoint`]).
//!
//! Every file is written atomically (temporary file, fsync, rename); the metrics files are
//! rewritten whole at each log point, so a crash never leaves a half-written line.

use crate::checkpoint::{Checkpoint, ContrastiveResult, Phase};
use crate::config::TrainConfig;
use crate::io::write_atomic;
use crate::{Error, Result};
use clica_core::{ClicaRng, Encoder, LatentPrior, RunSeed};
use clica_encoders::{Backend, MlpEncoder};
use clica_eval::Scores;
use clica_generators::InvertibleMlp;
use clica_objectives::ContrastiveLoss;
use ndarray::{s, Array2, ArrayView2, Axis};
use serde::Serialize;
use serde_json::json;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One logged point of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogPoint {
    /// Step (1-based).
    pub step: u64,
    /// Training loss at this step.
    pub loss: f64,
    /// Learning rate used at this step.
    pub lr: f64,
    /// In-sample R² on fresh samples.
    pub r2: f64,
    /// Pearson MCC on fresh samples.
    pub mcc: f64,
    /// Seconds since training started.
    pub elapsed_s: f64,
}

/// Receives progress; every method has a no-op default.
pub trait Observer {
    /// Called once before the first step.
    fn start(&mut self, _total_steps: u64, _what: &str) {}
    /// Called after every step.
    fn step(&mut self, _step: u64, _loss: f64, _elapsed_s: f64) {}
    /// Called at every log point.
    fn log(&mut self, _point: &LogPoint) {}
    /// Called once after the last step.
    fn finish(&mut self) {}
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}

/// Mean and sample standard deviation of the final scores.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
}

impl MeanStd {
    /// Of a non-empty slice.
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
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FinalScores {
    /// In-sample R².
    pub r2: MeanStd,
    /// Held-out R² (fit on the first half, score the second).
    pub r2_held_out: MeanStd,
    /// Pearson MCC.
    pub mcc_pearson: MeanStd,
    /// Spearman MCC.
    pub mcc_spearman: MeanStd,
}

/// What a run produced (also written to `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// "completed" (runs that stop early write a shorter summary; see the module docs).
    pub status: String,
    /// Run seed.
    pub seed: u64,
    /// Fingerprint of the generator g (identity of the data-generating process).
    pub generator_fingerprint: String,
    /// Description of the prior.
    pub prior: String,
    /// Description of the encoder.
    pub encoder: String,
    /// Name of the objective.
    pub loss: String,
    /// Scores of x = g(z) itself.
    pub identity: Scores,
    /// Scores of the trained encoder.
    pub contrastive: FinalScores,
    /// Scores of the supervised baseline, if requested.
    pub supervised: Option<FinalScores>,
    /// Contrastive steps run.
    pub steps: u64,
    /// Final training loss.
    pub final_loss: f64,
    /// Wall time of the contrastive training, seconds.
    pub train_seconds: f64,
    /// Mean seconds per contrastive step.
    pub seconds_per_step: f64,
    /// Versions of clica and its crates.
    pub versions: serde_json::Value,
}

fn versions() -> serde_json::Value {
    json!({ "clica": env!("CARGO_PKG_VERSION") })
}

/// Everything a run is built from, constructed once.
pub struct Setup {
    /// The configuration.
    pub config: TrainConfig,
    /// The prior.
    pub prior: Box<dyn LatentPrior>,
    /// The generator, built once from the seed's `"generator"` stream.
    pub generator: InvertibleMlp,
    /// The run seed.
    pub seed: RunSeed,
}

impl Setup {
    /// Validates the config and builds the prior and the generator.
    ///
    /// # Errors
    /// Invalid configuration or a failed generator build.
    pub fn new(config: &TrainConfig) -> Result<Self> {
        let checked = config.validate()?;
        let seed = RunSeed::new(config.seed);
        let generator = InvertibleMlp::build(&checked.mixing, &mut seed.stream("generator"))?;
        Ok(Setup {
            config: config.clone(),
            prior: checked.prior,
            generator,
            seed,
        })
    }
}

fn to_f32(a: ArrayView2<'_, f64>) -> Array2<f32> {
    a.mapv(|v| v as f32)
}

/// Scores `encoder` on `batches` fresh batches drawn from `rng`.
fn final_scores(
    setup: &Setup,
    encoder: &dyn Encoder,
    rng: &mut clica_core::ClicaRng,
    batches: usize,
) -> Result<FinalScores> {
    let mut cols: [Vec<f64>; 4] = Default::default();
    for _ in 0..batches {
        let z = setup.prior.marginal(rng, setup.config.eval.samples);
        let h = encoder.encode(setup.generator.forward(z.view()).view());
        let s = clica_eval::evaluate(z.view(), h.view())?;
        for (c, v) in cols
            .iter_mut()
            .zip([s.r2, s.r2_held_out, s.mcc_pearson, s.mcc_spearman])
        {
            c.push(v);
        }
    }
    Ok(FinalScores {
        r2: MeanStd::of(&cols[0]),
        r2_held_out: MeanStd::of(&cols[1]),
        mcc_pearson: MeanStd::of(&cols[2]),
        mcc_spearman: MeanStd::of(&cols[3]),
    })
}

/// Options of a run beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// When this flag becomes true (e.g. set by a SIGINT/SIGTERM handler), the run finishes
    /// its current step, writes a checkpoint and a summary marked `interrupted`, and returns
    /// [`Error::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
}

/// Which objective a training loop optimises.
enum Objective<'a> {
    Contrastive(&'a dyn ContrastiveLoss<f32>),
    Supervised,
}

/// How a training loop ended.
enum Ended {
    Completed,
    Interrupted,
}

/// The inner loop shared by contrastive and supervised training, with everything a
/// checkpoint of it records.
struct Loop<'a> {
    setup: &'a Setup,
    encoder: MlpEncoder,
    data_rng: ClicaRng,
    log_rng: ClicaRng,
    /// Steps completed.
    step: u64,
    /// Loss of the last completed step (NaN before the first).
    last_loss: f64,
    /// Seconds of training so far, earlier segments of a resumed run included.
    elapsed_s: f64,
    /// Points logged so far; the metrics file is rewritten from them at every log point.
    points: Vec<LogPoint>,
    metrics: PathBuf,
}

impl<'a> Loop<'a> {
    /// A fresh loop: the encoder from stream `encoder`, data and log streams `data`, `log`.
    fn new(
        setup: &'a Setup,
        enc_cfg: clica_encoders::EncoderConfig,
        [encoder, data, log]: [&str; 3],
        metrics: PathBuf,
    ) -> Result<Self> {
        Ok(Loop {
            setup,
            encoder: MlpEncoder::new(enc_cfg, &mut setup.seed.stream(encoder))?,
            data_rng: setup.seed.stream(data),
            log_rng: setup.seed.stream(log),
            step: 0,
            last_loss: f64::NAN,
            elapsed_s: 0.0,
            points: Vec::new(),
            metrics,
        })
    }

    /// Continues from checkpoint `ck` (its encoder, Adam state, streams and progress) with
    /// the logged `points`.
    fn restore(&mut self, ck: &Checkpoint, path: &Path, points: &[LogPoint]) -> Result<()> {
        let bad = |reason: String| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        self.encoder
            .set_parameters(&ck.parameters)
            .and_then(|()| self.encoder.set_optimizer_state(&ck.optimizer))
            .map_err(|e| bad(format!("its encoder does not fit the configuration: {e}")))?;
        self.data_rng = saved_rng(ck, "data", path)?;
        self.log_rng = saved_rng(ck, "log", path)?;
        self.step = ck.step;
        self.last_loss = ck.last_loss;
        self.elapsed_s = ck.elapsed_s;
        self.points = points.to_vec();
        Ok(())
    }

    /// Runs the steps after `self.step` up to `steps`. `save` writes a checkpoint of the
    /// loop; it is called every `train.checkpoint_every` steps, when the phase ends and when
    /// `stop` is set.
    fn run(
        &mut self,
        objective: Objective<'_>,
        steps: u64,
        observer: &mut dyn Observer,
        stop: Option<&AtomicBool>,
        save: &mut dyn FnMut(&Loop<'_>) -> Result<()>,
    ) -> Result<Ended> {
        let cfg = &self.setup.config;
        let (b, n) = (cfg.train.batch, self.setup.prior.dim());
        let every = cfg.train.checkpoint_every;
        let mut x_both = Array2::<f32>::zeros((2 * b, n));
        let mut grad = Array2::<f32>::zeros((2 * b, n));
        // Second half of the batch: positives (contrastive) or independent latents (supervised).
        let mut z_second = Array2::<f64>::zeros((b, n));
        let mut target = Array2::<f32>::zeros((2 * b, n));
        // Peak learning rate of this phase (the supervised baseline may have its own).
        let peak = match objective {
            Objective::Contrastive(_) => cfg.train.lr,
            Objective::Supervised => cfg.eval.supervised_lr.unwrap_or(cfg.train.lr),
        };
        let start = Instant::now();
        let elapsed0 = self.elapsed_s;
        write_points(&self.metrics, &self.points)?;
        while self.step < steps {
            let step = self.step + 1;
            let z = self.setup.prior.marginal(&mut self.data_rng, b);
            let lr = cfg.train.lr_with_peak(peak, step, steps);
            match objective {
                Objective::Contrastive(_) => self.setup.prior.sample_conditional(
                    &mut self.data_rng,
                    z.view(),
                    z_second.view_mut(),
                ),
                Objective::Supervised => self
                    .setup
                    .prior
                    .sample_marginal(&mut self.data_rng, z_second.view_mut()),
            }
            x_both
                .slice_mut(s![..b, ..])
                .assign(&to_f32(self.setup.generator.forward(z.view()).view()));
            x_both.slice_mut(s![b.., ..]).assign(&to_f32(
                self.setup.generator.forward(z_second.view()).view(),
            ));
            let h = self.encoder.forward_train(x_both.view());
            let value = match objective {
                Objective::Contrastive(kernel) => {
                    let (h_a, h_p) = h.split_at(Axis(0), b);
                    let (g_a, g_p) = grad.view_mut().split_at(Axis(0), b);
                    kernel.loss_and_grad(h_a, h_p, g_a, g_p)
                }
                Objective::Supervised => {
                    // The loss is the mean MSE over both halves.
                    target.slice_mut(s![..b, ..]).assign(&to_f32(z.view()));
                    target
                        .slice_mut(s![b.., ..])
                        .assign(&to_f32(z_second.view()));
                    clica_objectives::mse_and_grad(h, target.view(), grad.view_mut())
                }
            };
            let loss = f64::from(value);
            let diverged = |what: String| Error::Diverged { step, what };
            if !loss.is_finite() {
                return Err(diverged("the loss".into()));
            }
            if let Some((r, c)) = grad
                .indexed_iter()
                .find(|(_, v)| !v.is_finite())
                .map(|(i, _)| i)
            {
                return Err(diverged(format!(
                    "the output gradient (row {r}, column {c})"
                )));
            }
            self.encoder.backward(grad.view());
            if let Some((name, i)) = self.encoder.first_non_finite_gradient() {
                return Err(diverged(format!(
                    "the gradient of parameter `{name}` (entry {i})"
                )));
            }
            self.encoder.step(lr as f32);
            if let Some((name, i)) = self.encoder.first_non_finite_parameter() {
                return Err(diverged(format!("the parameter `{name}` (entry {i})")));
            }
            self.step = step;
            self.last_loss = loss;
            self.elapsed_s = elapsed0 + start.elapsed().as_secs_f64();
            observer.step(step, loss, self.elapsed_s);
            if step == 1 || step % cfg.train.log_every == 0 || step == steps {
                let z = self
                    .setup
                    .prior
                    .marginal(&mut self.log_rng, cfg.eval.samples);
                let h = self
                    .encoder
                    .encode(self.setup.generator.forward(z.view()).view());
                if let Some(((r, c), _)) = h.indexed_iter().find(|(_, v)| !v.is_finite()) {
                    return Err(diverged(format!(
                        "the encoder output (row {r}, column {c})"
                    )));
                }
                let r2 = clica_eval::r2_in_sample(z.view(), h.view())?;
                let mcc = if h.ncols() >= z.ncols() {
                    clica_eval::mcc(z.view(), h.view(), clica_eval::Correlation::Pearson)?.score
                } else {
                    f64::NAN
                };
                let point = LogPoint {
                    step,
                    loss,
                    lr,
                    r2,
                    mcc,
                    elapsed_s: self.elapsed_s,
                };
                observer.log(&point);
                self.points.push(point);
                write_points(&self.metrics, &self.points)?;
            }
            if step < steps {
                if stop.is_some_and(|f| f.load(Ordering::SeqCst)) {
                    save(self)?;
                    return Ok(Ended::Interrupted);
                }
                if every > 0 && step % every == 0 {
                    save(self)?;
                }
            }
        }
        save(self)?;
        Ok(Ended::Completed)
    }
}

fn saved_rng(ck: &Checkpoint, name: &str, path: &Path) -> Result<ClicaRng> {
    ck.rngs.get(name).cloned().ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("the state of random stream `{name}` is missing"),
    })
}

/// Rewrites a JSON-lines metrics file from all its points, atomically.
fn write_points(path: &Path, points: &[LogPoint]) -> Result<()> {
    let mut text = String::new();
    for p in points {
        text.push_str(&serde_json::to_string(p).map_err(|e| Error::Config(e.to_string()))?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, e))
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
/// format version, other generator), [`Error::ConfigMismatch`],
/// [`Error::AlreadyComplete`], and the errors of [`train_with`].
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
    let describe = |d: Vec<(String, String, String)>, a: &str, b: &str| {
        d.iter()
            .map(|(k, x, y)| format!("{k}: {a} {x}, {b} {y}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
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
    let fingerprint = setup.generator.fingerprint().hex();
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

fn supervised_steps(cfg: &TrainConfig) -> u64 {
    if cfg.eval.supervised_steps == 0 {
        cfg.train.steps
    } else {
        cfg.eval.supervised_steps
    }
}

/// Where a run stands, for the summary of a run that stops early.
struct Track {
    phase: Cell<Phase>,
    checkpoint: Cell<Option<(Phase, u64)>>,
}

/// Writes checkpoints of one run.
struct Saver<'a> {
    out: &'a Path,
    config_toml: String,
    fingerprint: String,
    /// The dfdx backend cannot export Adam's state; its runs write no checkpoints.
    enabled: bool,
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
        if !self.enabled {
            return Ok(());
        }
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
            optimizer: lp.encoder.optimizer_state()?,
        };
        ck.write(self.out)?;
        self.track.checkpoint.set(Some((phase, lp.step)));
        Ok(())
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
    let fingerprint = setup.generator.fingerprint().hex();
    let track = Track {
        phase: Cell::new(resume.as_ref().map_or(Phase::Contrastive, |c| c.phase)),
        checkpoint: Cell::new(resume.as_ref().map(|c| (c.phase, c.step))),
    };
    let result = run_phases(setup, out, observer, options, resume, &track);
    if let Err(e) = &result {
        let (status, step) = match e {
            Error::Diverged { step, .. } => ("diverged", Some(*step)),
            Error::Interrupted { step, .. } => ("interrupted", Some(*step)),
            _ => ("failed", None),
        };
        let phase = track.phase.get();
        let steps = match phase {
            Phase::Supervised => supervised_steps(cfg),
            _ => cfg.train.steps,
        };
        let checkpoint = track
            .checkpoint
            .get()
            .map(|(p, s)| json!({"file": crate::checkpoint::FILE, "phase": p.name(), "step": s}));
        let summary = json!({
            "status": status,
            "phase": phase.name(),
            "step": step,
            "steps": steps,
            "message": e.to_string(),
            "checkpoint": checkpoint,
            "seed": cfg.seed,
            "generator_fingerprint": fingerprint,
            "versions": versions(),
        });
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
    let fingerprint = setup.generator.fingerprint().hex();
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

    // Identity baseline on a fresh batch (recomputed on resume: it only reads the "eval"
    // stream, whose saved state replaces it afterwards).
    let mut eval_rng = setup.seed.stream("eval");
    let z = setup.prior.marginal(&mut eval_rng, cfg.eval.samples);
    let identity =
        clica_eval::identity_baseline(z.view(), setup.generator.forward(z.view()).view())?;
    if let Some(ck) = &resume {
        eval_rng = saved_rng(ck, "eval", &ck_path)?;
    }

    let loss_kernel = cfg.loss.build()?;
    let enc_cfg = cfg.encoder.encoder_config(setup.prior.dim())?;
    let saver = Saver {
        out,
        config_toml: cfg.to_toml(),
        fingerprint: fingerprint.clone(),
        enabled: cfg.encoder.backend() == Backend::Native,
        track,
    };
    let interrupted = |step: u64, phase: Phase| Error::Interrupted {
        step,
        phase: phase.name().into(),
        resume: if saver.enabled {
            format!(
                "checkpoint written; continue with `clica train --resume {}`",
                out.display()
            )
        } else {
            "the dfdx backend writes no checkpoints".into()
        },
    };

    // Contrastive phase (unless the checkpoint is past it).
    let metrics_path = out.join("metrics.jsonl");
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
                let mut lp = Loop::new(
                    setup,
                    enc_cfg.clone(),
                    ["encoder", "train.data", "train.log"],
                    metrics_path,
                )?;
                if let Some(ck) = &resume {
                    lp.restore(ck, &ck_path, &ck.metrics)?;
                }
                track.phase.set(Phase::Contrastive);
                observer.start(cfg.train.steps, "contrastive");
                let ended = lp.run(
                    Objective::Contrastive(loss_kernel.as_ref()),
                    cfg.train.steps,
                    observer,
                    stop,
                    &mut |l| saver.save(Phase::Contrastive, l, &eval_rng, &l.points, &[], None),
                )?;
                observer.finish();
                if let Ended::Interrupted = ended {
                    return Err(interrupted(lp.step, Phase::Contrastive));
                }
                let scores =
                    final_scores(setup, &lp.encoder, &mut eval_rng, cfg.eval.final_batches)?;
                let weights = out.join("encoder.safetensors");
                write_atomic(&weights, &lp.encoder.to_safetensors()?)
                    .map_err(|e| Error::io(&weights, e))?;
                let c = ContrastiveResult {
                    scores,
                    final_loss: lp.last_loss,
                    train_seconds: lp.elapsed_s,
                };
                let points = lp.points.clone();
                (c, points, Some(lp))
            }
        };

    let mut metrics_supervised = Vec::new();
    let supervised = if cfg.eval.supervised {
        let steps = supervised_steps(cfg);
        let mut sup = Loop::new(
            setup,
            enc_cfg,
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
        track.phase.set(Phase::Supervised);
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
        let scores = final_scores(setup, &sup.encoder, &mut eval_rng, cfg.eval.final_batches)?;
        metrics_supervised = sup.points.clone();
        last = Some(sup);
        Some(scores)
    } else {
        None
    };

    let summary = Summary {
        status: "completed".into(),
        seed: cfg.seed,
        generator_fingerprint: fingerprint,
        prior: setup.prior.describe(),
        encoder: enc_cfg_describe(cfg, setup.prior.dim())?,
        loss: loss_kernel.name(),
        identity,
        contrastive: contrastive.scores.clone(),
        supervised,
        steps: cfg.train.steps,
        final_loss: contrastive.final_loss,
        train_seconds: contrastive.train_seconds,
        seconds_per_step: contrastive.train_seconds / cfg.train.steps as f64,
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

fn enc_cfg_describe(cfg: &TrainConfig, n: usize) -> Result<String> {
    Ok(cfg.encoder.encoder_config(n)?.describe())
}

/// Progress on stderr: a live line with step, loss, R² and ETA on a terminal; one plain line
/// per log point otherwise.
pub struct Progress {
    tty: bool,
    total: u64,
    what: String,
    last_r2: f64,
    last_draw: f64,
}

impl Default for Progress {
    fn default() -> Self {
        use std::io::IsTerminal;
        Progress {
            tty: std::io::stderr().is_terminal(),
            total: 0,
            what: String::new(),
            last_r2: f64::NAN,
            last_draw: -1.0,
        }
    }
}

impl Observer for Progress {
    fn start(&mut self, total: u64, what: &str) {
        self.total = total;
        self.what = what.to_string();
        self.last_draw = -1.0;
    }
    fn step(&mut self, step: u64, loss: f64, elapsed: f64) {
        if !self.tty || (elapsed - self.last_draw < 0.2 && step != self.total) {
            return;
        }
        self.last_draw = elapsed;
        let eta = elapsed / step as f64 * (self.total - step) as f64;
        eprint!(
            "\r{} step {step}/{} ({:.0}%)  loss {loss:.4}  r2 {:.4}  eta {}   ",
            self.what,
            self.total,
            100.0 * step as f64 / self.total as f64,
            self.last_r2,
            fmt_secs(eta)
        );
    }
    fn log(&mut self, p: &LogPoint) {
        self.last_r2 = p.r2;
        if !self.tty {
            eprintln!(
                "{} step {}/{}  loss {:.4}  r2 {:.4}  mcc {:.4}  lr {:.2e}  {:.1}s",
                self.what, p.step, self.total, p.loss, p.r2, p.mcc, p.lr, p.elapsed_s
            );
        }
    }
    fn finish(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}
