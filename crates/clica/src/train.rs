//! The trainer: builds prior, generator (once per run), encoder and objective from one
//! validated [`TrainConfig`] and one seed, trains, scores on fresh samples as it goes, and
//! writes every result as data.
//!
//! Output folder layout:
//! * `config.toml` — the resolved configuration plus a `[run]` table (seed, generator
//!   fingerprint, versions);
//! * `metrics.jsonl` — one JSON object per logged step (`step`, `loss`, `lr`, `r2`, `mcc`,
//!   `elapsed_s`);
//! * `summary.json` — identity baseline, final scores (mean ± std over fresh batches),
//!   optional supervised baseline, steps, wall time, versions;
//! * `encoder.safetensors` — the trained weights.

use crate::config::TrainConfig;
use crate::io::write_atomic;
use crate::{Error, Result};
use clica_core::{Encoder, LatentPrior, RunSeed};
use clica_encoders::MlpEncoder;
use clica_eval::Scores;
use clica_generators::InvertibleMlp;
use clica_objectives::ContrastiveLoss;
use clica_priors::Prior;
use ndarray::{s, Array2, ArrayView2, Axis};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// "completed".
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
    pub prior: Prior,
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
        config.validate()?;
        let prior = config.data.prior()?;
        let seed = RunSeed::new(config.seed);
        let mlp = config.mixing.mlp_config(config.data.dim)?;
        let generator = InvertibleMlp::build(&mlp, &mut seed.stream("generator"))?;
        Ok(Setup {
            config: config.clone(),
            prior,
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

/// Which objective a training loop optimises.
enum Objective<'a> {
    Contrastive(&'a dyn ContrastiveLoss<f32>),
    Supervised,
}

/// The inner loop shared by contrastive and supervised training.
struct Loop<'a> {
    setup: &'a Setup,
    encoder: MlpEncoder,
    data_rng: clica_core::ClicaRng,
    log_rng: clica_core::ClicaRng,
}

impl Loop<'_> {
    /// Runs `steps` steps; `log` receives each log point.
    fn run(
        &mut self,
        objective: Objective<'_>,
        steps: u64,
        observer: &mut dyn Observer,
        mut on_log: impl FnMut(&LogPoint) -> Result<()>,
    ) -> Result<(f64, f64)> {
        let cfg = &self.setup.config;
        let (b, n) = (cfg.train.batch, cfg.data.dim);
        let mut x_both = Array2::<f32>::zeros((2 * b, n));
        let mut grad = Array2::<f32>::zeros((2 * b, n));
        // Second half of the batch: positives (contrastive) or independent latents (supervised).
        let mut z_second = Array2::<f64>::zeros((b, n));
        let mut target = Array2::<f32>::zeros((2 * b, n));
        let mut loss = f64::NAN;
        let start = Instant::now();
        for step in 1..=steps {
            let z = self.setup.prior.marginal(&mut self.data_rng, b);
            let lr = cfg.train.lr_at_of(step, steps);
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
            loss = f64::from(value);
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    step,
                    what: "the loss".into(),
                });
            }
            if let Some((r, c)) = grad
                .indexed_iter()
                .find(|(_, v)| !v.is_finite())
                .map(|(i, _)| i)
            {
                return Err(Error::Diverged {
                    step,
                    what: format!("the output gradient (row {r}, column {c})"),
                });
            }
            self.encoder.backward_and_step(grad.view(), lr as f32);
            let elapsed = start.elapsed().as_secs_f64();
            observer.step(step, loss, elapsed);
            if step == 1 || step % cfg.train.log_every == 0 || step == steps {
                let z = self
                    .setup
                    .prior
                    .marginal(&mut self.log_rng, cfg.eval.samples);
                let h = self
                    .encoder
                    .encode(self.setup.generator.forward(z.view()).view());
                if let Some(((r, c), _)) = h.indexed_iter().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::Diverged {
                        step,
                        what: format!("the encoder output (row {r}, column {c})"),
                    });
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
                    elapsed_s: elapsed,
                };
                observer.log(&point);
                on_log(&point)?;
            }
        }
        Ok((loss, start.elapsed().as_secs_f64()))
    }
}

/// Appends JSON lines to a file, flushing each.
struct JsonLines {
    path: PathBuf,
    file: std::fs::File,
}

impl JsonLines {
    fn create(path: PathBuf) -> Result<Self> {
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(JsonLines { path, file })
    }
    fn push(&mut self, v: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_string(v).map_err(|e| Error::Config(e.to_string()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Writes `v` as pretty JSON to `path` atomically.
pub(crate) fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| Error::Config(e.to_string()))?;
    text.push('\n');
    write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Runs one training job and writes its results to `out`.
///
/// # Errors
/// Invalid configuration, I/O failures, divergence (the error names the step and quantity).
pub fn train(config: &TrainConfig, out: &Path, observer: &mut dyn Observer) -> Result<Summary> {
    let setup = Setup::new(config)?;
    let cfg = &setup.config;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let fingerprint = setup.generator.fingerprint().hex();

    // The resolved config, with the run's identity.
    let mut resolved = cfg.to_toml();
    resolved.push_str(&format!(
        "\n[run]\nseed = {}\ngenerator_fingerprint = \"{fingerprint}\"\nclica_version = \"{}\"\n",
        cfg.seed,
        env!("CARGO_PKG_VERSION")
    ));
    write_atomic(&out.join("config.toml"), resolved.as_bytes())
        .map_err(|e| Error::io(out.join("config.toml"), e))?;

    // Identity baseline on a fresh batch.
    let mut eval_rng = setup.seed.stream("eval");
    let z = setup.prior.marginal(&mut eval_rng, cfg.eval.samples);
    let identity =
        clica_eval::identity_baseline(z.view(), setup.generator.forward(z.view()).view())?;

    let loss_kernel = cfg.loss.build()?;
    let enc_cfg = cfg.encoder.encoder_config(cfg.data.dim)?;
    let encoder = MlpEncoder::new(enc_cfg.clone(), &mut setup.seed.stream("encoder"))?;
    let mut lp = Loop {
        setup: &setup,
        encoder,
        data_rng: setup.seed.stream("train.data"),
        log_rng: setup.seed.stream("train.log"),
    };
    let mut metrics = JsonLines::create(out.join("metrics.jsonl"))?;
    observer.start(cfg.train.steps, "contrastive");
    let (final_loss, seconds) = lp.run(
        Objective::Contrastive(loss_kernel.as_ref()),
        cfg.train.steps,
        observer,
        |p| metrics.push(p),
    )?;
    observer.finish();
    let contrastive = final_scores(&setup, &lp.encoder, &mut eval_rng, cfg.eval.final_batches)?;
    let weights = out.join("encoder.safetensors");
    write_atomic(&weights, &lp.encoder.to_safetensors()?).map_err(|e| Error::io(&weights, e))?;

    let supervised = if cfg.eval.supervised {
        let steps = if cfg.eval.supervised_steps == 0 {
            cfg.train.steps
        } else {
            cfg.eval.supervised_steps
        };
        let encoder = MlpEncoder::new(enc_cfg, &mut setup.seed.stream("encoder.supervised"))?;
        let mut sup = Loop {
            setup: &setup,
            encoder,
            data_rng: setup.seed.stream("train.supervised.data"),
            log_rng: setup.seed.stream("train.supervised.log"),
        };
        let mut sup_metrics = JsonLines::create(out.join("metrics_supervised.jsonl"))?;
        observer.start(steps, "supervised");
        sup.run(Objective::Supervised, steps, observer, |p| {
            sup_metrics.push(p)
        })?;
        observer.finish();
        Some(final_scores(
            &setup,
            &sup.encoder,
            &mut eval_rng,
            cfg.eval.final_batches,
        )?)
    } else {
        None
    };

    let summary = Summary {
        status: "completed".into(),
        seed: cfg.seed,
        generator_fingerprint: fingerprint,
        prior: setup.prior.describe(),
        encoder: lp.encoder.config().describe(),
        loss: loss_kernel.name(),
        identity,
        contrastive,
        supervised,
        steps: cfg.train.steps,
        final_loss,
        train_seconds: seconds,
        seconds_per_step: seconds / cfg.train.steps as f64,
        versions: versions(),
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
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
