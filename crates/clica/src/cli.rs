//! The `clica` command line: `sample`, `mix`, `baseline`, `eval`, `train`, `encode` and
//! `render`.
//!
//! Every verb validates its input before doing work and fails with one line naming the
//! problem; results go to files (`.npy`, JSON) or to stdout as one JSON object.

mod flags;

pub use flags::{ConditionalFlag, MarginalFlag, MixingFlags, PriorFlags, SpaceFlag};

use crate::config::TrainConfig;
use crate::npy;
use crate::train::MeanStd;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use clica_core::{LatentPrior, RunSeed};
use clica_generators::InvertibleMlp;
use ndarray::{Array2, ArrayView2};
use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// clica: when does a contrastive encoder recover the true latent factors?
#[derive(Debug, Parser)]
#[command(name = "clica", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample latent anchors z and positives z̃ from a prior; writes z.npy, z_tilde.npy, meta.json.
    Sample(SampleArgs),
    /// Push latents through the paper's invertible MLP mixing g; writes x.npy and prints its fingerprint.
    Mix(MixArgs),
    /// Train a contrastive encoder on a data-generating process; writes config.toml, metrics.jsonl, summary.json, encoder.safetensors, checkpoint.safetensors (continue with --resume).
    Train(TrainArgs),
    /// Identity baseline: scores of x = g(z) itself, over several seeds (how nonlinear the mixing is).
    Baseline(BaselineArgs),
    /// Score a representation ẑ against latents z: R² (in-sample, held-out) and MCC (Pearson, Spearman).
    Eval(EvalArgs),
    /// Render 3DIdent-like images (clica's own renderer of the paper's teapot scene) in the reference's layout: DIR/images/{i}.png, DIR/raw_latents.npy, DIR/latents.npy, DIR/meta.json.
    Render(RenderArgs),
    /// Apply a finished run's encoder to new observations: --x X.npy (rows of observations) or --images DIR (a set in the reference layout, scored against its raw_latents.npy); writes the representation as .npy.
    Encode(EncodeArgs),
}

/// Arguments of `clica encode`.
#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// The run folder (written by `clica train`: config.toml and encoder.safetensors).
    #[arg(long)]
    pub run: PathBuf,
    /// Observations (.npy, N × the encoder's input size, f32 or f64; images channel-first
    /// with values in [0, 1]).
    #[arg(long, conflicts_with = "images", required_unless_present = "images")]
    pub x: Option<PathBuf>,
    /// An image set in the reference layout (images/{i}.png, raw_latents.npy), resized to the
    /// encoder's input side when larger; the representation is scored against its latents.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Where to write the representation (.npy, N × the encoder's output size, f64).
    #[arg(long)]
    pub out: PathBuf,
    /// Observations per forward pass (bounds the memory of image encoders).
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
}

/// Arguments of `clica render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Number of images, with raw latents drawn uniform on [−1, 1]¹⁰ from the seed's
    /// "render.latents" stream (or give --latents).
    #[arg(long, conflicts_with = "latents", required_unless_present = "latents")]
    pub n: Option<usize>,
    /// Render these raw latents instead (.npy, N × 10, f32 or f64).
    #[arg(long)]
    pub latents: Option<PathBuf>,
    /// Image side in pixels (8 to 224).
    #[arg(long, default_value_t = clica_render::DEFAULT_SIZE)]
    pub size: usize,
    /// Samples per pixel along each axis (1 to 4; 2 = four samples, box-filtered).
    #[arg(long, default_value_t = clica_render::DEFAULT_SUPERSAMPLE)]
    pub supersample: usize,
    /// Hues outside [0, 1): `wrapped` (a continuous colour circle) or `reference` (colorsys on the unwrapped hue, as the reference scripts).
    #[arg(long, default_value = "wrapped")]
    pub hue: clica_render::HueMode,
    /// Run seed (for --n).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created if missing; files of an earlier set there are overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `clica sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// The prior.
    #[command(flatten)]
    pub prior: PriorFlags,
    /// Number of samples K.
    #[arg(long, default_value_t = 4096)]
    pub n: usize,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `clica mix`.
#[derive(Debug, clap::Args)]
pub struct MixArgs {
    /// Latents to mix (.npy, K × n, f32 or f64).
    #[arg(long)]
    pub z: PathBuf,
    /// The mixing network.
    #[command(flatten)]
    pub mixing: MixingFlags,
    /// Run seed (the mixing comes from its "generator" stream).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .npy file for x = g(z).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the network's weight matrices here, `layer{l}.npy` (f64, n × n, l from 0),
    /// so that another framework can rebuild the same g: with rows as samples,
    /// `X_{l+1} = act(X_l · W_lᵀ)`, the activation between layers and none after the last.
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

/// Arguments of `clica baseline`.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// The prior (defaults: Table 1 row 1, uniform sphere n = 10 with vMF(κ=1)).
    #[command(flatten)]
    pub prior: PriorFlags,
    /// The mixing network (defaults: the paper's 3-layer leaky-ReLU MLP).
    #[command(flatten)]
    pub mixing: MixingFlags,
    /// Samples scored per seed.
    #[arg(long, default_value_t = 4096)]
    pub n: usize,
    /// Number of seeds (runs use seeds `seed`, `seed+1`, …).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// First run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder for baseline.json.
    #[arg(long, default_value = "results/baseline")]
    pub out: PathBuf,
}

/// Arguments of `clica train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML); repeat to layer files (later ones win, e.g. a preset then
    /// `configs/protocol/paper.toml`). Without it the defaults are used (the fast protocol on
    /// the paper's Table 1 row 1 setting). Presets live in `configs/`.
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// Override one entry, e.g. `--set train.steps=500 --set data.space.kind=box` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output folder.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its checkpoint (results equal an uninterrupted
    /// run's). `--config`/`--set` given with it must leave the checkpoint's configuration
    /// unchanged; a differing field is refused by name.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "dry_run"])]
    pub resume: Option<PathBuf>,
    /// Only validate the configuration and print it resolved; train nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `clica eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// True latents (.npy, K × n, f32 or f64).
    #[arg(long)]
    pub z: PathBuf,
    /// Representation to score (.npy, K × m, f32 or f64).
    #[arg(long = "z-hat")]
    pub z_hat: PathBuf,
    /// Also write the JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Parses `args` (including the program name) and runs the verb. Clap's help and version
/// requests are returned as `Ok` after printing.
///
/// # Errors
/// Bad flags, invalid parameters, unreadable or malformed inputs, failed writes.
pub fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.print()?;
                return Ok(());
            }
            // One line: clap's message and the arguments it names, without usage and tips.
            let text = e.to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("tip:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let line = parts.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            bail!("{line} (see --help)");
        }
    };
    match cli.command {
        Command::Sample(a) => sample(&a),
        Command::Mix(a) => mix(&a),
        Command::Eval(a) => eval(&a),
        Command::Baseline(a) => baseline(&a),
        Command::Train(a) => train(&a),
        Command::Render(a) => render(&a),
        Command::Encode(a) => encode(&a),
    }
}

fn sample(args: &SampleArgs) -> Result<()> {
    let a = &args.prior;
    let prior = a.prior()?;
    if args.n == 0 {
        bail!("invalid parameter `n`: must be at least 1");
    }
    let seed = RunSeed::new(args.seed);
    let z = prior.marginal(&mut seed.stream("prior.marginal"), args.n);
    let z_tilde = prior.conditional(&mut seed.stream("prior.conditional"), z.view());
    let out = &args.out;
    create_dir(out)?;
    npy::write_f64_2d(out.join("z.npy"), z.view())?;
    npy::write_f64_2d(out.join("z_tilde.npy"), z_tilde.view())?;
    let meta = json!({
        "command": "sample",
        "clica_version": env!("CARGO_PKG_VERSION"),
        "seed": args.seed,
        "streams": ["prior.marginal", "prior.conditional"],
        "prior": prior.describe(),
        "config": a,
        "n": args.n,
        "files": {"z": "z.npy", "z_tilde": "z_tilde.npy"},
        "shape": [args.n, a.dim],
    });
    write_json(&out.join("meta.json"), &meta)?;
    eprintln!(
        "wrote {} samples of {} to {}",
        args.n,
        prior.describe(),
        out.display()
    );
    Ok(())
}

fn render(a: &RenderArgs) -> Result<()> {
    use rand::Rng;
    let config = clica_render::RenderConfig::new(a.size)
        .with_supersample(a.supersample)
        .with_hue(a.hue);
    let renderer = clica_render::Renderer::new(&config)?;
    let raw = match (&a.latents, a.n) {
        (Some(path), _) => {
            let z = read_checked(path)?;
            if z.ncols() != clica_render::N_LATENTS {
                bail!(
                    "{}: the scene has {} latents, got {} columns",
                    path.display(),
                    clica_render::N_LATENTS,
                    z.ncols()
                );
            }
            z
        }
        (None, Some(0)) => bail!("invalid parameter `n`: must be at least 1"),
        (None, Some(n)) => {
            let mut rng = RunSeed::new(a.seed).stream("render.latents");
            Array2::from_shape_fn((n, clica_render::N_LATENTS), |_| {
                rng.random_range(-1.0..=1.0)
            })
        }
        (None, None) => bail!("give --n or --latents"),
    };
    let n = raw.nrows();
    create_dir(&a.out)?;
    let started = std::time::Instant::now();
    let mut last = started;
    crate::images::write_dataset(&renderer, raw.view(), &a.out, 1024, |done, n| {
        if done == n || last.elapsed().as_secs_f64() >= 2.0 {
            last = std::time::Instant::now();
            eprintln!(
                "rendered {done}/{n} ({:.0} images/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let meta = json!({
        "command": "render",
        "clica_version": env!("CARGO_PKG_VERSION"),
        "label": "3DIdent-like (clica-rendered)",
        "seed": a.latents.is_none().then_some(a.seed),
        "streams": if a.latents.is_none() { vec!["render.latents"] } else { vec![] },
        "latents_from": a.latents,
        "n": n,
        "size": a.size,
        "supersample": a.supersample,
        "hue": a.hue.name(),
        "renderer_fingerprint": clica_core::Generator::fingerprint(&renderer).hex(),
        "latent_names": clica_render::LATENT_NAMES,
        "files": {"images": "images/{i}.png", "raw_latents": "raw_latents.npy", "latents": "latents.npy"},
        "name_digits": crate::images::name_digits(n),
        "seconds": seconds,
    });
    write_json(&a.out.join("meta.json"), &meta)?;
    eprintln!(
        "wrote {n} images of {s}×{s} to {} in {seconds:.1} s",
        a.out.display(),
        s = a.size
    );
    Ok(())
}

fn encode(a: &EncodeArgs) -> Result<()> {
    if a.batch == 0 {
        bail!("invalid parameter `batch`: must be at least 1");
    }
    let started = std::time::Instant::now();
    let enc = crate::encode::TrainedEncoder::load(&a.run)?;
    let (z_hat, latents) = match (&a.x, &a.images) {
        (Some(path), _) => {
            let x = npy::read_f64_2d(path)?.mapv(|v| v as f32);
            let h = enc
                .encode(x.view(), a.batch)
                .with_context(|| path.display().to_string())?;
            (h, None)
        }
        (None, Some(root)) => {
            let (h, z) = enc.encode_image_set(root, a.batch)?;
            (h, Some(z))
        }
        (None, None) => bail!("give --x or --images"),
    };
    let z_hat = z_hat.mapv(f64::from);
    npy::write_f64_2d(&a.out, z_hat.view())?;
    eprintln!(
        "wrote {} × {} to {} ({:.1} s; the encoder of {})",
        z_hat.nrows(),
        z_hat.ncols(),
        a.out.display(),
        started.elapsed().as_secs_f64(),
        a.run.display()
    );
    let mut out = json!({
        "command": "encode",
        "clica_version": env!("CARGO_PKG_VERSION"),
        "run": a.run,
        "encoder": enc.describe(),
        "generator_fingerprint": enc.fingerprint(),
        "input": a.x.as_ref().or(a.images.as_ref()),
        "shape": [z_hat.nrows(), z_hat.ncols()],
        "out": a.out,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if let (Some(z), Some(root)) = (latents, &a.images) {
        let name = root.join("raw_latents.npy").display().to_string();
        let scores = eval_scores(&name, z.view(), &a.out.display().to_string(), z_hat.view())?;
        out["scores"] = json!({
            "r2": scores.r2,
            "r2_held_out": scores.r2_held_out,
            "mcc_pearson": scores.mcc.as_ref().map(|(p, _)| p.score),
            "mcc_spearman": scores.mcc.as_ref().map(|(_, s)| s.score),
        });
    }
    println!("{out}");
    Ok(())
}

fn read_checked(path: &Path) -> Result<Array2<f64>> {
    let a = npy::read_f64_2d(path)?;
    check_input(&path.display().to_string(), a.view())?;
    Ok(a)
}

/// Checks an input array as the verbs check the arrays they read: at least one row and one
/// column, every entry finite. Errors name the array `what` (a file name here; the Python
/// package names its argument).
///
/// # Errors
/// An empty array, or the first non-finite entry ([`clica_core::Error::NonFinite`]).
pub fn check_input(what: &str, a: ArrayView2<'_, f64>) -> Result<()> {
    if a.nrows() == 0 || a.ncols() == 0 {
        bail!("{what}: array is empty (shape {:?})", a.shape());
    }
    clica_core::check::finite(what, a)?;
    Ok(())
}

/// The scores `clica eval` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalScores {
    /// In-sample R² ([`clica_eval::r2_in_sample`]).
    pub r2: f64,
    /// R² fitted on the first half of the rows, scored on the second
    /// ([`clica_eval::r2_held_out_half`]).
    pub r2_held_out: f64,
    /// MCC with Pearson and with Spearman correlations; `None` when z_hat has fewer columns
    /// than z.
    pub mcc: Option<(clica_eval::Mcc, clica_eval::Mcc)>,
}

/// The scores of `clica eval` for representation `h` (named `h_name` in errors) of latents
/// `z` (named `z_name`), each checked with [`check_input`] first.
///
/// # Errors
/// Inputs that fail [`check_input`], different row counts, or too few rows to score.
pub fn eval_scores(
    z_name: &str,
    z: ArrayView2<'_, f64>,
    h_name: &str,
    h: ArrayView2<'_, f64>,
) -> Result<EvalScores> {
    check_input(z_name, z)?;
    check_input(h_name, h)?;
    if z.nrows() != h.nrows() {
        bail!(
            "row counts differ: {z_name} has {} rows, {h_name} has {} rows",
            z.nrows(),
            h.nrows()
        );
    }
    let mcc = if h.ncols() >= z.ncols() {
        Some((
            clica_eval::mcc(z, h, clica_eval::Correlation::Pearson)?,
            clica_eval::mcc(z, h, clica_eval::Correlation::Spearman)?,
        ))
    } else {
        None
    };
    Ok(EvalScores {
        r2: clica_eval::r2_in_sample(z, h)?,
        r2_held_out: clica_eval::r2_held_out_half(z, h)?,
        mcc,
    })
}

/// Builds the mixing network from the flags and the run seed's "generator" stream.
///
/// # Errors
/// Invalid flags, named by parameter.
pub fn build_mixing(m: &MixingFlags, dim: usize, seed: RunSeed) -> Result<InvertibleMlp> {
    let config = m.mlp_config(dim)?;
    Ok(InvertibleMlp::build(
        &config,
        &mut seed.stream("generator"),
    )?)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))
}

fn mix(a: &MixArgs) -> Result<()> {
    let z = read_checked(&a.z)?;
    let g = build_mixing(&a.mixing, z.ncols(), RunSeed::new(a.seed))?;
    let x = g.forward(z.view());
    npy::write_f64_2d(&a.out, x.view())?;
    let mut weights = Vec::new();
    if let Some(dir) = &a.weights {
        create_dir(dir)?;
        for (l, w) in g.weights().iter().enumerate() {
            let path = dir.join(format!("layer{l}.npy"));
            npy::write_f64_2d(&path, w.view())?;
            weights.push(path);
        }
    }
    let slope = match g.activation() {
        clica_generators::Activation::LeakyRelu { slope } => Some(slope),
        _ => None,
    };
    let out = json!({
        "fingerprint": g.fingerprint().hex(),
        "seed": a.seed,
        "mixing": &a.mixing,
        "activation": g.activation().name(),
        "negative_slope": slope,
        "weights": weights,
        "shape": [x.nrows(), x.ncols()], "out": a.out,
    });
    println!("{out}");
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<()> {
    let z = read_checked(&a.z)?;
    let h = read_checked(&a.z_hat)?;
    let (z_name, h_name) = (a.z.display().to_string(), a.z_hat.display().to_string());
    let scores = eval_scores(&z_name, z.view(), &h_name, h.view())?;
    let mut out = json!({
        "r2": scores.r2,
        "r2_held_out": scores.r2_held_out,
        "n_samples": z.nrows(),
        "z_dim": z.ncols(),
        "z_hat_dim": h.ncols(),
        "z": a.z, "z_hat": a.z_hat,
        "held_out_protocol": "fit on the first half of the rows, score on the second half",
    });
    if let Some((p, s)) = scores.mcc {
        out["mcc_pearson"] = json!(p.score);
        out["mcc_spearman"] = json!(s.score);
        out["assignment"] = json!(p.assignment);
        out["assignment_spearman"] = json!(s.assignment);
    } else {
        eprintln!(
            "note: MCC needs z_hat to have at least as many columns as z ({} < {}); reporting null",
            h.ncols(),
            z.ncols()
        );
        out["mcc_pearson"] = serde_json::Value::Null;
        out["mcc_spearman"] = serde_json::Value::Null;
        out["assignment"] = serde_json::Value::Null;
    }
    if let Some(path) = &a.out {
        write_json(path, &out)?;
    }
    println!("{out}");
    Ok(())
}

fn baseline(a: &BaselineArgs) -> Result<()> {
    let prior = a.prior.prior()?;
    if a.n < 4 {
        bail!("invalid parameter `n`: at least 4 samples are needed to score");
    }
    if a.seeds == 0 {
        bail!("invalid parameter `seeds`: must be at least 1");
    }
    let mut runs = Vec::new();
    let mut cols: [Vec<f64>; 4] = Default::default();
    for seed in a.seed..a.seed + a.seeds {
        let run_seed = RunSeed::new(seed);
        let g = build_mixing(&a.mixing, a.prior.dim, run_seed)?;
        let z = prior.marginal(&mut run_seed.stream("eval"), a.n);
        let x = g.forward(z.view());
        let s = clica_eval::identity_baseline(z.view(), x.view())?;
        eprintln!(
            "seed {seed}: generator {}  r2 {:.4}  r2_held_out {:.4}  mcc_pearson {:.4}  mcc_spearman {:.4}",
            g.fingerprint().hex(),
            s.r2,
            s.r2_held_out,
            s.mcc_pearson,
            s.mcc_spearman
        );
        for (c, v) in cols
            .iter_mut()
            .zip([s.r2, s.r2_held_out, s.mcc_pearson, s.mcc_spearman])
        {
            c.push(v);
        }
        runs.push(
            json!({"seed": seed, "generator_fingerprint": g.fingerprint().hex(), "scores": s}),
        );
    }
    let mut summary = serde_json::Map::new();
    for (name, c) in ["r2", "r2_held_out", "mcc_pearson", "mcc_spearman"]
        .iter()
        .zip(&cols)
    {
        summary.insert((*name).to_string(), json!(MeanStd::of(c)));
    }
    let out = json!({
        "command": "baseline",
        "clica_version": env!("CARGO_PKG_VERSION"),
        "prior": prior.describe(),
        "config": &a.prior,
        "mixing": &a.mixing,
        "n": a.n,
        "seeds": (a.seed..a.seed + a.seeds).collect::<Vec<_>>(),
        "streams": {"generator": "generator", "latents": "eval"},
        "runs": runs,
        "summary": summary,
    });
    create_dir(&a.out)?;
    let path = a.out.join("baseline.json");
    write_json(&path, &out)?;
    eprintln!("wrote {}", path.display());
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}

fn train(a: &TrainArgs) -> Result<()> {
    let mut texts = Vec::new();
    for p in &a.config {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config {}", p.display()))?;
        texts.push((p.display().to_string(), text));
    }
    let layers: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    // SIGINT/SIGTERM: the first one asks the run to stop after its current step (with a
    // checkpoint and an `interrupted` summary); a second one exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    if !a.dry_run {
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
                .context("cannot install the signal handlers")?;
        }
    }
    let options = crate::train::TrainOptions { stop: Some(stop) };
    let mut progress = crate::train::Progress::default();
    let (summary, out) = if let Some(dir) = &a.resume {
        // A folder that does not exist has no checkpoint either; `resume` says so.
        let _lock = if dir.is_dir() {
            Some(crate::lock::lock_run_folder(dir)?)
        } else {
            None
        };
        match crate::train::resume(dir, &layers, &a.set, &mut progress, &options) {
            Err(crate::Error::AlreadyComplete(d)) => {
                eprintln!(
                    "the run in {} is already complete; nothing to resume",
                    d.display()
                );
                return Ok(());
            }
            r => (r?, dir),
        }
    } else {
        let cfg = TrainConfig::from_layers(&layers, &a.set)?;
        if a.dry_run {
            print!("{}", cfg.to_toml());
            return Ok(());
        }
        let out = a.out.as_ref().context("--out is required")?;
        create_dir(out)?;
        let _lock = crate::lock::lock_run_folder(out)?;
        (
            crate::train::train_with(&cfg, out, &mut progress, &options)?,
            out,
        )
    };
    // A completed summary has every score; `train_with` returns only completed ones.
    let (Some(c), Some(id)) = (&summary.contrastive, &summary.identity) else {
        bail!(
            "the run ended without final scores (status {})",
            summary.status.name()
        );
    };
    eprintln!(
        "done in {:.1}s ({:.3}s/step): r2 {:.4} ± {:.4}, mcc {:.4} ± {:.4} (identity r2 {:.4}, held-out {:.4}, mcc {:.4}); results in {}",
        summary.train_seconds.unwrap_or(f64::NAN),
        summary.seconds_per_step.unwrap_or(f64::NAN),
        c.r2.mean,
        c.r2.std,
        c.mcc_pearson.mean,
        c.mcc_pearson.std,
        id.r2,
        id.r2_held_out,
        id.mcc_pearson,
        out.display()
    );
    if let Some(p) = &summary.step_phases {
        eprintln!(
            "time per step over {} steps: draw {:.2} ms, forward {:.2}, loss {:.2}, backward {:.2}, update {:.2}, logging {:.2}",
            p.steps, p.draw_ms, p.forward_ms, p.loss_ms, p.backward_ms, p.update_ms, p.logging_ms
        );
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    Ok(crate::train::write_json(path, v)?)
}
