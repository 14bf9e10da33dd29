//! The run configuration of `clica train`: one TOML file (or several, layered), validated at
//! construction.
//!
//! Every section has defaults (the fast protocol on the paper's Table 1 row 1 setting), unknown
//! keys are rejected, and `--set key=value` overrides are applied to the TOML tree before it
//! is read, so an override is checked exactly like a file entry. Errors name the key as the
//! user wrote it (`data.conditional.kappa`, `loss.tau`, `data.parts[1].dim`).
//!
//! ```toml
//! seed = 0
//! [data]                    # kind = "latent" (default) or "product" with [[data.parts]]
//! dim = 10
//! space = { kind = "sphere", radius = 1.0 }     # | box (low, high) | unbounded
//! marginal = { kind = "uniform" }               # | normal (sigma) | laplace (scale) | gennorm (beta, scale)
//! conditional = { kind = "vmf", kappa = 1.0 }   # | normal (sigma) | laplace (scale) | gennorm (beta, scale)
//! [mixing]                  # kind = "mlp": layers, activation, cond_pool, cond_ratio
//! [encoder]                 # kind = "mlp": hidden_multipliers, negative_slope, normalization, backend
//! normalization = { kind = "sphere", radius = 1.0 }  # | none | learnable_sphere (init_radius) | box (init_bound)
//! [loss]                    # kind = "sphere" (tau, self_term) | "lp" (p, tau, form, self_term)
//! kind = "sphere"           #   | "align_uniform" (alpha, t, lambda, on); negatives, symmetric
//! [train]                   # steps, batch, lr, warmup_steps, schedule (constant | cosine | wsd), final_lr_fraction, decay_fraction, ema, …
//! [eval]                    # samples, final_batches, supervised, supervised_steps, supervised_lr
//! ```
//!
//! Files: `sections.rs` (what each table holds and builds), `layers.rs` (merging, overrides,
//! reading with named errors, flattening), `schedule.rs` (the learning-rate schedule).
//!
//! A file in the earlier flat format (`data.space = "box"`, `data.concentration`,
//! `encoder.normalization = "sphere"`) is refused with a message that says how to rewrite it.

mod layers;
mod schedule;
mod sections;
#[cfg(test)]
mod tests;

pub use schedule::{ScheduleKind, DEFAULT_DECAY_FRACTION};
pub use sections::{
    ConvEncoderSection, DataSection, EncoderChoice, EncoderSection, EvalSection, ImageSetSection,
    InputNorm, LatentSection, LossSection, MixingChoice, MixingSection, MlpEncoderSection,
    MlpMixingSection, Objective, ProductSection, RenderMixingSection, ResNetEncoderSection,
    TrainSection,
};

use crate::Error as CliError;
use clica_core::LatentPrior;
use clica_objectives::ContrastiveLoss;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The whole run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run seed: every random stream of the run is derived from it.
    pub seed: u64,
    /// Latent prior.
    pub data: DataSection,
    /// Mixing network.
    pub mixing: MixingSection,
    /// Encoder.
    pub encoder: EncoderSection,
    /// Objective.
    pub loss: LossSection,
    /// Optimisation.
    pub train: TrainSection,
    /// Scoring.
    pub eval: EvalSection,
}

/// The components of a valid configuration, each checked once by [`TrainConfig::validate`].
pub struct Validated {
    /// The latent prior: a `clica_priors::Prior`, or a `clica_priors::ProductPrior` for
    /// `data.kind = "product"`.
    pub prior: Box<dyn LatentPrior>,
    /// The generator's configuration: the MLP mixing (dimension = the prior's) or the
    /// renderer.
    pub mixing: MixingChoice,
    /// The encoder's configuration (input: the generator's observations; output dimension =
    /// the prior's).
    pub encoder: EncoderChoice,
    /// The contrastive objective, wrappers (grouped negatives, symmetric) applied.
    pub loss: Box<dyn ContrastiveLoss<f32>>,
    /// The alignment average over several positives per anchor (`loss.positives` > 1).
    pub positives: Option<clica_objectives::ExtraPositives>,
    /// The reflection that draws positives in mirrored pairs (`loss.antithetic`), checked
    /// to exist for the prior.
    pub antithetic: Option<clica_core::Mirror>,
    /// The reflection that draws the anchors in mirrored halves (`loss.antithetic_anchors`),
    /// checked to exist for the prior.
    pub anchor_reflection: Option<clica_core::Reflection>,
    /// The fixed image set (`data.kind = "image_set"`), its first image checked; the source
    /// is this set instead of the prior and the mixing.
    pub images: Option<ImageSetSection>,
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("prior", &self.prior.describe())
            .field("mixing", &self.mixing)
            .field("encoder", &self.encoder)
            .field("loss", &self.loss.name())
            .finish()
    }
}

/// A component's error as a config error, its parameter named under `section`.
fn in_section(e: clica_core::Error, section: &str) -> CliError {
    CliError::Config(sections::rename(e, |name| format!("{section}.{name}")).to_string())
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

/// The side of a fixed image set's images, from its first image (which must exist, as must
/// `raw_latents.npy`).
fn image_set_side(s: &ImageSetSection) -> Result<usize, CliError> {
    if s.path.as_os_str().is_empty() {
        return Err(invalid(
            "data.path",
            "an image set needs its folder (`images/`, `raw_latents.npy`)",
        ));
    }
    let latents = s.path.join("raw_latents.npy");
    let n = crate::npy::read_f64_2d(&latents)
        .map_err(|e| invalid("data.path", e.to_string()))?
        .nrows();
    let first = crate::images::image_path(&s.path, 0, n);
    let (w, _, _) =
        crate::images::read_png(&first).map_err(|e| invalid("data.path", e.to_string()))?;
    match s.size {
        Some(size) if size == 0 || size > w => Err(invalid(
            "data.size",
            format!("the set's images are {w} × {w}; resizing goes down only, to at least 1, got {size}"),
        )),
        Some(size) => Ok(size),
        None => Ok(w),
    }
}

/// The defaults as a TOML tree, with one default part in `data.parts`: where a tagged table
/// without a `kind` finds its default one.
fn defaults_tree() -> &'static toml::Value {
    static TREE: OnceLock<toml::Value> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = toml::Value::try_from(TrainConfig::default()).expect("defaults serialise");
        let part = toml::Value::try_from(LatentSection::default()).expect("defaults serialise");
        if let Some(data) = tree.get_mut("data").and_then(toml::Value::as_table_mut) {
            data.insert("parts".into(), toml::Value::Array(vec![part]));
        }
        tree
    })
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
    /// order (a later document's keys replace an earlier one's, table by table; a table given
    /// another `kind` is replaced as a whole), each given with a name for error messages.
    ///
    /// # Errors
    /// As [`TrainConfig::from_toml_with_overrides`]; syntax errors and documents in the
    /// earlier flat format name the document.
    pub fn from_layers(layers: &[(&str, &str)], overrides: &[String]) -> Result<Self, CliError> {
        let tree = layers::resolve(layers, overrides, defaults_tree())?;
        let cfg: TrainConfig = layers::read(&tree)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field once and returns the checked components, which the trainer uses as
    /// they are.
    ///
    /// # Errors
    /// The first invalid field, named.
    pub fn validate(&self) -> Result<Validated, CliError> {
        let prior = self.data.prior().map_err(|e| in_section(e, "data"))?;
        let dim = prior.dim();
        let mixing = self
            .mixing
            .choice(dim)
            .map_err(|e| in_section(e, "mixing"))?;
        let images = self.data.image_set().cloned();
        let shape = match &images {
            Some(s) => {
                let side = image_set_side(s)?;
                vec![3, side, side]
            }
            None => mixing.observation_shape(dim),
        };
        let encoder = self
            .encoder
            .choice(&shape, dim)
            .map_err(|e| in_section(e, "encoder"))?;
        let lowest = self.data.latent_lower_bound();
        if self.eval.supervised
            && matches!(
                encoder.normalization(),
                clica_encoders::Normalization::LearnableBox { .. }
            )
            && lowest < 0.0
        {
            return Err(invalid(
                "eval.supervised",
                format!(
                    "the supervised baseline regresses the latents, which reach {lowest} here, but the box output sigmoid(h)·b only takes values in (0, b); set eval.supervised = false, or run the baseline with encoder.normalization = {{ kind = \"none\" }}",
                ),
            ));
        }
        if images.is_some() && self.loss.antithetic {
            return Err(invalid(
                "loss.antithetic",
                "a fixed image set cannot mirror a positive (its images are given); use the renderer (mixing.kind = \"render\")",
            ));
        }
        let loss = self.loss.build().map_err(|e| in_section(e, "loss"))?;
        let positives = self
            .loss
            .extra_positives()
            .map_err(|e| in_section(e, "loss"))?;
        let antithetic = match (self.loss.antithetic, prior.conditional_mirror()) {
            (false, _) => None,
            (true, Some(m)) => Some(m),
            (true, None) => {
                return Err(invalid(
                    "loss.antithetic",
                    crate::source::no_mirror(prior.as_ref()),
                ))
            }
        };
        let anchor_reflection = if self.loss.antithetic_anchors {
            if images.is_some() {
                return Err(invalid(
                    "loss.antithetic_anchors",
                    "a fixed image set cannot reflect an anchor (its images are given); use the renderer (mixing.kind = \"render\")",
                ));
            }
            if self.train.batch % 2 != 0 {
                return Err(invalid(
                    "loss.antithetic_anchors",
                    format!(
                        "mirrored halves need an even train.batch, got {}",
                        self.train.batch
                    ),
                ));
            }
            Some(prior.anchor_reflection().ok_or_else(|| {
                invalid(
                    "loss.antithetic_anchors",
                    crate::source::no_anchor_reflection(prior.as_ref()),
                )
            })?)
        } else {
            None
        };
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
        if let Some(f) = t.decay_fraction {
            if t.schedule != ScheduleKind::Wsd {
                return Err(invalid(
                    "train.decay_fraction",
                    "applies only to schedule = \"wsd\"",
                ));
            }
            if !(f > 0.0 && f <= 1.0) {
                return Err(invalid(
                    "train.decay_fraction",
                    format!("must lie in (0, 1], got {f}"),
                ));
            }
        }
        match (t.schedule, &t.lr_knots) {
            (ScheduleKind::Piecewise, None) => {
                return Err(invalid(
                    "train.lr_knots",
                    "schedule = \"piecewise\" needs its knots, e.g. [[0, 1], [0.3, 1], [1, 0.01]]",
                ))
            }
            (ScheduleKind::Piecewise, Some(k)) => {
                schedule::check_knots(k).map_err(|e| invalid("train.lr_knots", e))?
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "train.lr_knots",
                    "applies only to schedule = \"piecewise\"",
                ))
            }
            (_, None) => {}
        }
        if let Some(beta) = t.ema {
            if !(beta > 0.0 && beta < 1.0) {
                return Err(invalid(
                    "train.ema",
                    format!("must lie in (0, 1), got {beta}"),
                ));
            }
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
        Ok(Validated {
            prior,
            mixing,
            encoder,
            loss,
            positives,
            antithetic,
            anchor_reflection,
            images,
        })
    }

    /// Reads the `config.toml` a run writes into its folder: the resolved configuration plus
    /// a `[run]` table (seed, fingerprint, versions), which is ignored here.
    ///
    /// # Errors
    /// As [`TrainConfig::from_toml_with_overrides`].
    pub fn from_run_config(text: &str) -> Result<Self, CliError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            CliError::Config(format!(
                "not valid TOML: {}",
                layers::one_line(&e.to_string())
            ))
        })?;
        table.remove("run");
        let text = toml::to_string(&table).map_err(|e| CliError::Config(e.to_string()))?;
        Self::from_layers(&[("the run's config.toml", &text)], &[])
    }

    /// Every field whose value differs between `self` and `other`, as (dotted key, value in
    /// `self`, value in `other`), values written as TOML; sorted by key.
    pub fn differences(&self, other: &TrainConfig) -> Vec<(String, String, String)> {
        let flat = |c: &TrainConfig| {
            let mut out = std::collections::BTreeMap::new();
            if let Ok(v) = toml::Value::try_from(c) {
                layers::flatten(&layers::KeyPath::default(), &v, &mut out);
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
