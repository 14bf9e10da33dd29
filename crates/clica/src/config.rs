//! The run configuration of `clica train`: one TOML file, validated at construction.
//!
//! Every section has defaults (the fast protocol on the paper's Table 1 row 1 setting), unknown
//! keys are rejected, and `--set key=value` overrides are applied to the TOML tree before it
//! is parsed, so an override is checked exactly like a file entry. Errors name the field.

use crate::Error as CliError;
use clica_encoders::{Backend, EncoderConfig, Normalization};
use clica_generators::{Activation, MlpConfig};
use clica_objectives::{
    AlignUniform, ContrastiveLoss, Grouped, LpForm, LpInfoNce, SelfTerm, SphereInfoNce, Symmetric,
};
use clica_priors::{Conditional, Marginal, Prior, Space};
use serde::{Deserialize, Serialize};

/// Latent space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SpaceKind {
    /// Sphere S^{n-1} of radius `radius`.
    Sphere,
    /// Box [low, high]^n.
    Box,
    /// R^n.
    Unbounded,
}

/// Marginal p(z).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MarginalKind {
    /// Uniform on the sphere or the box (not defined on R^n).
    Uniform,
    /// Normal with standard deviation `marginal_scale`.
    Normal,
    /// Laplace with scale `marginal_scale`.
    Laplace,
    /// Generalized normal with shape `beta` and scale `marginal_scale`.
    Gennorm,
}

/// Conditional p(z̃ | z).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ConditionalKind {
    /// von Mises–Fisher with concentration κ = `concentration` (sphere only).
    Vmf,
    /// Normal with σ = `concentration`.
    Normal,
    /// Laplace with scale λ = `concentration`.
    Laplace,
    /// Generalized normal with shape `beta` and scale λ = `concentration`.
    Gennorm,
}

/// `[data]`: the latent prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Latent space.
    #[arg(long, value_enum, default_value = "sphere")]
    pub space: SpaceKind,
    /// Latent dimension n.
    #[arg(long, default_value_t = 10)]
    pub dim: usize,
    /// Sphere radius.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub radius: f64,
    /// Lower bound of the box.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub low: f64,
    /// Upper bound of the box.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub high: f64,
    /// Marginal p(z).
    #[arg(long, value_enum, default_value = "uniform")]
    pub marginal: MarginalKind,
    /// Scale of a non-uniform marginal (σ or λ).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub marginal_scale: f64,
    /// Conditional p(z̃ | z).
    #[arg(long, value_enum, default_value = "vmf")]
    pub conditional: ConditionalKind,
    /// Concentration of the conditional: κ for vMF, σ for normal, λ for Laplace and gennorm.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub concentration: f64,
    /// Shape β of generalized-normal laws (marginal and conditional).
    #[arg(long, default_value_t = 3.0, allow_hyphen_values = true)]
    pub beta: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            space: SpaceKind::Sphere,
            dim: 10,
            radius: 1.0,
            low: 0.0,
            high: 1.0,
            marginal: MarginalKind::Uniform,
            marginal_scale: 1.0,
            conditional: ConditionalKind::Vmf,
            concentration: 1.0,
            beta: 3.0,
        }
    }
}

impl DataConfig {
    /// Builds (and so validates) the prior.
    ///
    /// # Errors
    /// Invalid values or combinations, named by parameter.
    pub fn prior(&self) -> clica_core::Result<Prior> {
        let space = match self.space {
            SpaceKind::Sphere => Space::Sphere {
                radius: self.radius,
            },
            SpaceKind::Box => Space::Box {
                low: self.low,
                high: self.high,
            },
            SpaceKind::Unbounded => Space::Unbounded,
        };
        let s = self.marginal_scale;
        let marginal = match self.marginal {
            MarginalKind::Uniform => Marginal::Uniform,
            MarginalKind::Normal => Marginal::Normal { sigma: s },
            MarginalKind::Laplace => Marginal::Laplace { scale: s },
            MarginalKind::Gennorm => Marginal::GenNorm {
                beta: self.beta,
                scale: s,
            },
        };
        let c = self.concentration;
        let conditional = match self.conditional {
            ConditionalKind::Vmf => Conditional::VonMisesFisher { kappa: c },
            ConditionalKind::Normal => Conditional::Normal { sigma: c },
            ConditionalKind::Laplace => Conditional::Laplace { scale: c },
            ConditionalKind::Gennorm => Conditional::GenNorm {
                beta: self.beta,
                scale: c,
            },
        };
        Prior::new(space, self.dim, marginal, conditional)
    }
}

/// `[mixing]`: the generator g.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct MixingConfig {
    /// Number of layers of the mixing MLP.
    #[arg(long, default_value_t = 3)]
    pub layers: usize,
    /// Activation between layers: leaky_relu, relu, elu, softplus, smooth_leaky_relu.
    #[arg(long, default_value = "leaky_relu")]
    pub activation: String,
    /// Size of the pool of random matrices whose condition numbers set the threshold.
    #[arg(long, default_value_t = 25_000)]
    pub cond_pool: usize,
    /// Quantile of the pool's condition numbers used as threshold (0 = the minimum).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub cond_ratio: f64,
}

impl Default for MixingConfig {
    fn default() -> Self {
        MixingConfig {
            layers: 3,
            activation: "leaky_relu".into(),
            cond_pool: 25_000,
            cond_ratio: 0.0,
        }
    }
}

impl MixingConfig {
    /// The generator configuration for latent dimension `dim` (validated).
    ///
    /// # Errors
    /// An unknown activation or invalid numbers, named by parameter.
    pub fn mlp_config(&self, dim: usize) -> clica_core::Result<MlpConfig> {
        let activation: Activation = self
            .activation
            .parse()
            .map_err(|e| clica_core::Error::param("mixing.activation", format!("{e}")))?;
        let cfg = MlpConfig {
            dim,
            layers: self.layers,
            activation,
            cond_pool_size: self.cond_pool,
            cond_ratio: self.cond_ratio,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Output normalisation of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// Unbounded output.
    None,
    /// Fixed sphere of radius `encoder.radius`.
    Sphere,
    /// Sphere with a learnable radius (initialised to `encoder.radius`).
    LearnableSphere,
    /// sigmoid(h) · b with a learnable per-coordinate bound b (initialised to 1).
    Box,
}

/// Encoder implementation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Hand-written forward/backward on faer's GEMM (fast).
    Native,
    /// dfdx autodiff (reference).
    Dfdx,
}

/// `[encoder]`: the network f.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderSection {
    /// Hidden widths as multiples of n. Default `[10, 10, 10]` (the fast protocol); the
    /// paper's encoder is `[10, 50, 50, 50, 50, 10]`.
    pub hidden_multipliers: Vec<usize>,
    /// LeakyReLU slope (paper: 0.01).
    pub negative_slope: f64,
    /// Output normalisation.
    pub normalization: NormKind,
    /// Radius of the (initial) sphere.
    pub radius: f64,
    /// Implementation.
    pub backend: BackendKind,
}

impl Default for EncoderSection {
    fn default() -> Self {
        EncoderSection {
            hidden_multipliers: vec![10, 10, 10],
            negative_slope: 0.01,
            normalization: NormKind::Sphere,
            radius: 1.0,
            backend: BackendKind::Native,
        }
    }
}

impl EncoderSection {
    /// The encoder configuration for n-dimensional data (validated).
    ///
    /// # Errors
    /// Invalid widths, slope or radius, named by parameter.
    pub fn encoder_config(&self, n: usize) -> clica_core::Result<EncoderConfig> {
        let mut cfg = EncoderConfig::paper(n);
        cfg.hidden = self.hidden_multipliers.iter().map(|m| m * n).collect();
        cfg.negative_slope = self.negative_slope;
        cfg.normalization = match self.normalization {
            NormKind::None => Normalization::None,
            NormKind::Sphere => Normalization::Sphere {
                radius: self.radius,
            },
            NormKind::LearnableSphere => Normalization::LearnableSphere {
                init_radius: self.radius,
            },
            NormKind::Box => Normalization::learnable_box(),
        };
        cfg.backend = match self.backend {
            BackendKind::Native => Backend::Native,
            BackendKind::Dfdx => Backend::Dfdx,
        };
        cfg.validate().map_err(|e| prefix(e, "encoder"))?;
        Ok(cfg)
    }
}

/// Which objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// InfoNCE with dot-product similarity (vMF model conditional on the sphere).
    Sphere,
    /// InfoNCE with −‖h − h'‖_p^p similarity (Laplace p=1, Normal p=2, GenNorm p=3).
    Lp,
    /// Alignment + uniformity (Wang & Isola 2020).
    AlignUniform,
}

/// Form of the Lp loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormKind {
    /// The paper's SimCLR-compatible form (positive inside the logsumexp).
    Simclr,
    /// log-mean-exp over negatives only.
    Plain,
}

/// Whether the anchor-against-itself term stays among the negatives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTermKind {
    /// Keep it (the reference implementation).
    Keep,
    /// Drop it.
    Exclude,
}

/// `[loss]`: the contrastive objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Objective.
    pub kind: LossKind,
    /// p of the Lp loss (1, 2 or 3).
    pub p: u32,
    /// Temperature τ.
    pub tau: f64,
    /// Form of the Lp loss.
    pub form: FormKind,
    /// Self-term convention.
    pub self_term: SelfTermKind,
    /// Negatives per anchor: the batch is cut into groups of this many consecutive rows and
    /// each anchor is contrasted with the anchors of its group only. Absent: the whole batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negatives: Option<usize>,
    /// Use every pair in both directions, ½·[loss(h, h̃) + loss(h̃, h)].
    #[serde(skip_serializing_if = "is_false")]
    pub symmetric: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: LossKind::Sphere,
            p: 1,
            tau: 1.0,
            form: FormKind::Simclr,
            self_term: SelfTermKind::Keep,
            negatives: None,
            symmetric: false,
        }
    }
}

impl LossConfig {
    /// Builds (and so validates) the loss kernel.
    ///
    /// # Errors
    /// p outside {1, 2, 3} for the Lp loss, τ ≤ 0, named by parameter.
    pub fn build(&self) -> clica_core::Result<Box<dyn ContrastiveLoss<f32>>> {
        let st = match self.self_term {
            SelfTermKind::Keep => SelfTerm::Keep,
            SelfTermKind::Exclude => SelfTerm::Exclude,
        };
        let r: clica_core::Result<Box<dyn ContrastiveLoss<f32>>> = match self.kind {
            LossKind::Sphere => SphereInfoNce::new(self.tau, st).map(|l| Box::new(l) as _),
            LossKind::Lp => {
                let form = match self.form {
                    FormKind::Simclr => LpForm::SimClr,
                    FormKind::Plain => LpForm::Plain,
                };
                LpInfoNce::new(self.p, self.tau, form, st).map(|l| Box::new(l) as _)
            }
            LossKind::AlignUniform => Ok(Box::new(AlignUniform::default())),
        };
        let r = match self.negatives {
            Some(m) => r.and_then(|l| Grouped::new(l, m).map(|g| Box::new(g) as _)),
            None => r,
        };
        let r = if self.symmetric {
            r.map(|l| Box::new(Symmetric::new(l)) as _)
        } else {
            r
        };
        r.map_err(|e| prefix(e, "loss"))
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant after warm-up.
    Constant,
    /// Cosine decay from `lr` to `lr · final_lr_fraction` after warm-up.
    Cosine,
}

/// `[train]`: optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Number of contrastive steps.
    pub steps: u64,
    /// Batch size B (anchors; as many positives).
    pub batch: usize,
    /// Peak learning rate of Adam.
    pub lr: f64,
    /// Linear warm-up steps from 0 to `lr` (capped at the run's number of steps).
    pub warmup_steps: u64,
    /// Schedule after warm-up.
    pub schedule: ScheduleKind,
    /// Final learning rate as a fraction of `lr` (cosine schedule).
    pub final_lr_fraction: f64,
    /// Log loss and scores every this many steps.
    pub log_every: u64,
    /// Write a checkpoint every this many steps (0 = only when a phase ends or the run is
    /// interrupted).
    pub checkpoint_every: u64,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            steps: 8_000,
            batch: 2048,
            lr: 3e-3,
            warmup_steps: 100,
            schedule: ScheduleKind::Cosine,
            final_lr_fraction: 0.01,
            log_every: 1000,
            checkpoint_every: 1000,
        }
    }
}

impl TrainSection {
    /// The learning rate at (1-based) step `step` of a run of `train.steps` steps.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.lr_at_of(step, self.steps)
    }

    /// The learning rate at (1-based) step `step` of a run of `total` steps (the supervised
    /// baseline may run a different number of steps than the contrastive run).
    pub fn lr_at_of(&self, step: u64, total: u64) -> f64 {
        self.lr_with_peak(self.lr, step, total)
    }

    /// As [`lr_at_of`](Self::lr_at_of) with the peak learning rate `peak` in place of `lr`.
    pub fn lr_with_peak(&self, peak: f64, step: u64, total: u64) -> f64 {
        let warmup = self.warmup_steps.min(total);
        if warmup > 0 && step <= warmup {
            return peak * step as f64 / warmup as f64;
        }
        match self.schedule {
            ScheduleKind::Constant => peak,
            ScheduleKind::Cosine => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = (step.saturating_sub(warmup)) as f64 / span;
                let floor = peak * self.final_lr_fraction;
                floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

/// `[eval]`: scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Fresh samples scored at each log step and in each final batch.
    pub samples: usize,
    /// Number of fresh batches behind the final mean ± std.
    pub final_batches: usize,
    /// Also train the supervised baseline (same encoder, MSE to z).
    pub supervised: bool,
    /// Steps of the supervised baseline (0 = as many as `train.steps`).
    pub supervised_steps: u64,
    /// Peak learning rate of the supervised baseline, on the same schedule. Absent:
    /// `train.lr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervised_lr: Option<f64>,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            samples: 4096,
            final_batches: 10,
            supervised: false,
            supervised_steps: 3_000,
            supervised_lr: None,
        }
    }
}

/// The whole run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run seed: every random stream of the run is derived from it.
    pub seed: u64,
    /// Latent prior.
    pub data: DataConfig,
    /// Mixing network.
    pub mixing: MixingConfig,
    /// Encoder.
    pub encoder: EncoderSection,
    /// Objective.
    pub loss: LossConfig,
    /// Optimisation.
    pub train: TrainSection,
    /// Scoring.
    pub eval: EvalSection,
}

fn prefix(e: clica_core::Error, section: &str) -> clica_core::Error {
    match e {
        clica_core::Error::InvalidParameter { name, reason }
            if !name.contains('.') || !name.starts_with(section) =>
        {
            clica_core::Error::InvalidParameter {
                name: format!("{section}.{name}"),
                reason,
            }
        }
        other => other,
    }
}

fn invalid(name: &str, reason: impl Into<String>) -> CliError {
    CliError::Config(format!("invalid value for `{name}`: {}", reason.into()))
}

/// `Ok` when `v` is finite and > 0, else the error naming `name`.
fn positive(name: &str, v: f64) -> Result<(), CliError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(name, format!("must be finite and > 0, got {v}")))
    }
}

impl TrainConfig {
    /// Parses a TOML document, applies `key=value` overrides (dotted keys, TOML values; a
    /// bare word is taken as a string) and validates the result.
    ///
    /// # Errors
    /// Syntax errors, unknown keys, wrong types and invalid values, each naming the field.
    pub fn from_toml_with_overrides(text: &str, overrides: &[String]) -> Result<Self, CliError> {
        Self::from_layers(&[("config", text)], overrides)
    }

    /// Like [`TrainConfig::from_toml_with_overrides`] for several TOML documents merged in
    /// order (a later document's keys replace an earlier one's, section by section), each
    /// given with a name for error messages.
    ///
    /// # Errors
    /// As [`TrainConfig::from_toml_with_overrides`]; syntax errors name the document.
    pub fn from_layers(layers: &[(&str, &str)], overrides: &[String]) -> Result<Self, CliError> {
        let mut table = toml::Table::new();
        for (name, text) in layers {
            let layer: toml::Table = toml::from_str(text).map_err(|e| {
                CliError::Config(format!(
                    "{name} is not valid TOML: {}",
                    one_line(&e.to_string())
                ))
            })?;
            merge(&mut table, layer);
        }
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let de = toml::Value::Table(table);
        let cfg: TrainConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            CliError::Config(format!("`{path}`: {}", one_line(&e.inner().to_string())))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field and builds every component once to validate it.
    ///
    /// # Errors
    /// The first invalid field, named.
    pub fn validate(&self) -> Result<(), CliError> {
        self.data
            .prior()
            .map_err(|e| CliError::Config(prefix(e, "data").to_string()))?;
        self.mixing
            .mlp_config(self.data.dim)
            .map_err(|e| CliError::Config(prefix(e, "mixing").to_string()))?;
        self.encoder
            .encoder_config(self.data.dim)
            .map_err(|e| CliError::Config(e.to_string()))?;
        self.loss
            .build()
            .map_err(|e| CliError::Config(e.to_string()))?;
        let t = &self.train;
        if t.steps == 0 {
            return Err(invalid("train.steps", "must be at least 1"));
        }
        if t.batch < 2 {
            return Err(invalid(
                "train.batch",
                format!(
                    "must be at least 2 (negatives come from the batch), got {}",
                    t.batch
                ),
            ));
        }
        if let Some(m) = self.loss.negatives {
            if m < 2 || m > t.batch || t.batch % m != 0 {
                return Err(invalid(
                    "loss.negatives",
                    format!(
                        "must be at least 2 and divide train.batch ({}), got {m}",
                        t.batch
                    ),
                ));
            }
        }
        positive("train.lr", t.lr)?;
        if !(0.0..=1.0).contains(&t.final_lr_fraction) {
            return Err(invalid(
                "train.final_lr_fraction",
                format!("must lie in [0, 1], got {}", t.final_lr_fraction),
            ));
        }
        if t.log_every == 0 {
            return Err(invalid("train.log_every", "must be at least 1"));
        }
        if self.eval.samples < 4 {
            return Err(invalid(
                "eval.samples",
                format!("must be at least 4, got {}", self.eval.samples),
            ));
        }
        if let Some(lr) = self.eval.supervised_lr {
            positive("eval.supervised_lr", lr)?;
        }
        if self.eval.final_batches == 0 {
            return Err(invalid("eval.final_batches", "must be at least 1"));
        }
        Ok(())
    }

    /// Reads the `config.toml` a run writes into its folder: the resolved configuration plus
    /// a `[run]` table (seed, fingerprint, versions), which is ignored here.
    ///
    /// # Errors
    /// As [`TrainConfig::from_toml_with_overrides`].
    pub fn from_run_config(text: &str) -> Result<Self, CliError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            CliError::Config(format!("not valid TOML: {}", one_line(&e.to_string())))
        })?;
        table.remove("run");
        let text = toml::to_string(&table).map_err(|e| CliError::Config(e.to_string()))?;
        Self::from_toml_with_overrides(&text, &[])
    }

    /// Every field whose value differs between `self` and `other`, as (dotted key, value in
    /// `self`, value in `other`), values written as TOML; sorted by key.
    pub fn differences(&self, other: &TrainConfig) -> Vec<(String, String, String)> {
        let flat = |c: &TrainConfig| {
            let mut out = std::collections::BTreeMap::new();
            if let Ok(v) = toml::Value::try_from(c) {
                flatten("", &v, &mut out);
            }
            out
        };
        let (a, b) = (flat(self), flat(other));
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        let missing = || "(absent)".to_string();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                (
                    k.clone(),
                    a.get(k).cloned().unwrap_or_else(missing),
                    b.get(k).cloned().unwrap_or_else(missing),
                )
            })
            .collect()
    }

    /// The resolved configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialise config: {e}\n"))
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && *l != "^")
        .collect::<Vec<_>>()
        .join(" ")
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn apply_override(table: &mut toml::Table, item: &str) -> Result<(), CliError> {
    let (key, raw) = item.split_once('=').ok_or_else(|| {
        CliError::Config(format!("override `{item}` is not of the form key=value"))
    })?;
    let key = key.trim();
    let raw = raw.trim();
    if key.is_empty() {
        return Err(CliError::Config(format!(
            "override `{item}` has an empty key"
        )));
    }
    // Parse the value as TOML; a bare word (e.g. `box`) is a string.
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry((*p).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            CliError::Config(format!("override `{item}`: `{p}` is not a section"))
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, o: &[&str]) -> Result<TrainConfig, CliError> {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        TrainConfig::from_toml_with_overrides(text, &o)
    }

    fn err(text: &str, o: &[&str]) -> String {
        parse(text, o).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c, TrainConfig::default());
        let again = parse(&c.to_toml(), &[]).unwrap();
        assert_eq!(c, again);
        let mut c2 = c.clone();
        c2.train.batch = 77;
        c2.data.space = SpaceKind::Box;
        c2.data.conditional = ConditionalKind::Laplace;
        c2.loss.kind = LossKind::Lp;
        assert_eq!(parse(&c2.to_toml(), &[]).unwrap(), c2);
    }

    #[test]
    fn overrides_apply_and_are_typed() {
        let c = parse(
            "[train]\nbatch = 64\n",
            &[
                "train.batch=128",
                "data.space=box",
                "data.conditional=\"laplace\"",
                "loss.kind=lp",
                "loss.p=3",
                "seed=9",
            ],
        )
        .unwrap();
        assert_eq!(c.train.batch, 128);
        assert_eq!(c.data.space, SpaceKind::Box);
        assert_eq!(c.loss.p, 3);
        assert_eq!(c.seed, 9);
    }

    #[test]
    fn rejections_name_the_field() {
        assert!(err("[train]\nbacth = 3\n", &[]).contains("bacth"));
        assert!(err("[train]\nbatch = \"many\"\n", &[]).contains("train.batch"));
        assert!(err("[loss]\nkind = \"lp\"\np = 4\n", &[]).contains("loss.p"));
        assert!(err("", &["data.space=box"]).contains("sphere")); // vMF off the sphere
        assert!(err(
            "",
            &[
                "data.space=box",
                "data.conditional=normal",
                "data.low=1",
                "data.high=0"
            ]
        )
        .contains("low"));
        assert!(err("", &["train.batch=0"]).contains("train.batch"));
        assert!(err("", &["train.lr=-1"]).contains("train.lr"));
        assert!(err("", &["loss.tau=0"]).contains("tau"));
        assert!(err("", &["data.concentration=0"]).contains("kappa"));
        assert!(err("", &["mixing.activation=tanh"]).contains("mixing.activation"));
        assert!(err("", &["nonsense"]).contains("key=value"));
        assert!(err("[data\n", &[]).contains("TOML"));
        assert!(err("", &["data.space=moon"]).contains("data.space"));
        for bad in ["0", "1", "3", "4096"] {
            let e = err("", &["train.batch=2048", &format!("loss.negatives={bad}")]);
            assert!(e.contains("loss.negatives"), "{bad}: {e}");
        }
        assert!(err("", &["loss.symmetric=1"]).contains("loss.symmetric"));
        assert!(err("", &["eval.supervised_lr=0"]).contains("eval.supervised_lr"));
    }

    #[test]
    fn grouped_and_symmetric_losses_are_built_and_named() {
        let c = parse("", &["loss.negatives=256", "loss.symmetric=true"]).unwrap();
        assert_eq!(c.loss.negatives, Some(256));
        assert_eq!(
            c.loss.build().unwrap().name(),
            "symmetric[sphere_infonce(tau=1,self=keep)[groups of 256]]"
        );
        assert_eq!(parse(&c.to_toml(), &[]).unwrap(), c);
        // Off by default, and then absent from the resolved config, so run folders and
        // checkpoints written before these options existed still match.
        let d = parse("", &[]).unwrap().to_toml();
        assert!(!d.contains("negatives") && !d.contains("symmetric"), "{d}");
    }

    #[test]
    fn layers_merge_section_by_section() {
        let c = TrainConfig::from_layers(
            &[
                ("a", "[train]\nbatch = 64\nsteps = 10\n[loss]\ntau = 0.5\n"),
                ("b", "[train]\nsteps = 20\n"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!((c.train.batch, c.train.steps, c.loss.tau), (64, 20, 0.5));
        let e = TrainConfig::from_layers(&[("first.toml", ""), ("second.toml", "[x")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("second.toml"), "{e}");
    }

    #[test]
    fn shipped_presets_are_valid() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        let mut n = 0;
        for sub in ["table1", "table2"] {
            for entry in std::fs::read_dir(format!("{root}/{sub}")).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                for protocol in ["fast", "paper"] {
                    let p = std::fs::read_to_string(format!("{root}/protocol/{protocol}.toml"))
                        .unwrap();
                    TrainConfig::from_layers(&[("preset", &text), ("protocol", &p)], &[])
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                n += 1;
            }
        }
        assert_eq!(n, 18, "12 rows of Table 1 and 6 of Table 2");
    }

    #[test]
    fn the_fast_protocol_file_is_the_defaults() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        let text = std::fs::read_to_string(format!("{root}/protocol/fast.toml")).unwrap();
        let fast = parse(&text, &[]).unwrap();
        assert_eq!(fast, TrainConfig::default());
        let paper = std::fs::read_to_string(format!("{root}/protocol/paper.toml")).unwrap();
        assert_ne!(parse(&paper, &[]).unwrap(), TrainConfig::default());
    }

    #[test]
    fn differences_name_each_changed_field() {
        let a = parse("", &[]).unwrap();
        let b = parse(
            "",
            &[
                "train.lr=0.004",
                "data.space=box",
                "data.conditional=normal",
            ],
        )
        .unwrap();
        let d = a.differences(&b);
        let keys: Vec<&str> = d.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["data.conditional", "data.space", "train.lr"]);
        assert_eq!(d[2], ("train.lr".into(), "0.003".into(), "0.004".into()));
        assert!(a.differences(&a.clone()).is_empty());
    }

    #[test]
    fn run_config_ignores_the_run_table() {
        let c = parse("", &["train.steps=7"]).unwrap();
        let text = format!(
            "{}\n[run]\nseed = 0\ngenerator_fingerprint = \"x\"\n",
            c.to_toml()
        );
        assert_eq!(TrainConfig::from_run_config(&text).unwrap(), c);
        assert!(TrainConfig::from_run_config("[train\n").is_err());
    }

    #[test]
    fn schedule_warms_up_and_decays() {
        let t = TrainSection {
            steps: 1000,
            lr: 1.0,
            warmup_steps: 100,
            schedule: ScheduleKind::Cosine,
            final_lr_fraction: 0.1,
            ..TrainSection::default()
        };
        assert!((t.lr_at(50) - 0.5).abs() < 1e-12);
        assert!((t.lr_at(100) - 1.0).abs() < 1e-12);
        assert!((t.lr_at(550) - 0.55).abs() < 1e-12);
        assert!((t.lr_at(1000) - 0.1).abs() < 1e-12);
        assert!((t.lr_with_peak(2.0, 550, 1000) - 1.1).abs() < 1e-12);
        assert!((t.lr_with_peak(2.0, 50, 1000) - 1.0).abs() < 1e-12);
    }
}
