//! The sections of a run configuration: what each table holds, its defaults, and the component
//! it builds.
//!
//! The parameter types come from the crates they configure (`clica_priors::Space`,
//! `clica_encoders::Normalization`, `clica_objectives::SelfTerm`, …, with their `serde`
//! feature); a section only says which of them a table holds. A table with a `kind` names
//! its variant there, e.g. `space = { kind = "box", low = 0.0, high = 1.0 }`, and every field
//! of a variant has a default.
//!
//! Each builder returns errors that name the key as it is written in the file, relative to
//! its section (`space.radius`, `parts[1].dim`, `cond_pool`); [`super::TrainConfig::validate`]
//! adds the section.

use clica_core::LatentPrior;
use clica_encoders::{Backend, EncoderConfig, Normalization};
use clica_generators::{Activation, MlpConfig};
use clica_objectives::{
    AlignUniform, ContrastiveLoss, ExtraPositives, Grouped, LpForm, LpInfoNce, PairTerm, SelfTerm,
    SphereInfoNce, Symmetric, UniformOn,
};
use clica_priors::{Conditional, Marginal, Prior, ProductPrior, Space};
use serde::{Deserialize, Serialize};

/// Renames the parameter of an error (`f(name)`), leaving other errors as they are.
pub(crate) fn rename(e: clica_core::Error, f: impl FnOnce(&str) -> String) -> clica_core::Error {
    match e {
        clica_core::Error::InvalidParameter { name, reason } => {
            clica_core::Error::InvalidParameter {
                name: f(&name),
                reason,
            }
        }
        other => other,
    }
}

/// `[data]`: the latent prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSection {
    /// One prior (the default): `dim`, `space`, `marginal`, `conditional`.
    Latent(LatentSection),
    /// A product of independent priors, `[[data.parts]]` tables each holding the keys of a
    /// latent section; a latent is the concatenation of one draw per part, in part order.
    Product(ProductSection),
    /// A fixed set of images in the reference's 3DIdent layout (`path`, optional `test_path`),
    /// positives by nearest neighbours of draws from `conditional`; `[mixing]` is not used.
    ImageSet(ImageSetSection),
}

/// A fixed image set: where it is, and the latent prior whose conditional draws the
/// positives' targets (its space bounds the draws; its marginal is not used: anchors are
/// the set's images, drawn uniformly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSetSection {
    /// The training set's folder (`images/`, `raw_latents.npy`).
    pub path: std::path::PathBuf,
    /// A held-out set scored on; the training set when absent.
    pub test_path: Option<std::path::PathBuf>,
    /// Resize the images to `size × size` at load (area averaging, down only); the files'
    /// size when absent.
    pub size: Option<usize>,
    /// Latent dimension (10 for 3DIdent).
    pub dim: usize,
    /// The latents' space (3DIdent: the box [−1, 1]).
    pub space: Space,
    /// Kept for the prior's description; not used to draw.
    pub marginal: Marginal,
    /// p(z̃ | z) (3DIdent: Normal, σ = 0.1).
    pub conditional: Conditional,
}

impl Default for ImageSetSection {
    fn default() -> Self {
        ImageSetSection {
            path: std::path::PathBuf::new(),
            test_path: None,
            size: None,
            dim: 10,
            space: Space::Box {
                low: -1.0,
                high: 1.0,
            },
            marginal: Marginal::Uniform,
            conditional: Conditional::Normal { sigma: 0.1 },
        }
    }
}

impl ImageSetSection {
    fn latent(&self) -> LatentSection {
        LatentSection {
            dim: self.dim,
            space: self.space,
            marginal: self.marginal,
            conditional: self.conditional,
        }
    }
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection::Latent(LatentSection::default())
    }
}

impl DataSection {
    /// Builds (and so validates) the prior: a [`Prior`], or a [`ProductPrior`] of the parts.
    ///
    /// # Errors
    /// Invalid values or combinations, named by key (`space.radius`, `parts[1].dim`).
    pub fn prior(&self) -> clica_core::Result<Box<dyn LatentPrior>> {
        match self {
            DataSection::Latent(l) => Ok(Box::new(l.prior()?)),
            DataSection::Product(p) => Ok(Box::new(p.prior()?)),
            DataSection::ImageSet(s) => Ok(Box::new(s.latent().prior()?)),
        }
    }

    /// The image set, for `kind = "image_set"`.
    pub fn image_set(&self) -> Option<&ImageSetSection> {
        match self {
            DataSection::ImageSet(s) => Some(s),
            _ => None,
        }
    }

    /// The smallest value a latent coordinate can take: the box's `low`, minus a sphere's
    /// radius, −∞ on ℝⁿ; the least over a product's parts.
    pub fn latent_lower_bound(&self) -> f64 {
        let bound = |space: &Space| match *space {
            Space::Box { low, .. } => low,
            Space::Sphere { radius } => -radius,
            Space::Unbounded => f64::NEG_INFINITY,
        };
        match self {
            DataSection::Latent(l) => bound(&l.space),
            DataSection::Product(p) => p
                .parts
                .iter()
                .map(|l| bound(&l.space))
                .fold(f64::INFINITY, f64::min),
            DataSection::ImageSet(s) => bound(&s.space),
        }
    }
}

/// One latent prior: a space, a dimension, a marginal and a conditional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatentSection {
    /// Latent dimension n.
    pub dim: usize,
    /// The space: `sphere` (`radius`, 1), `box` (`low`, 0; `high`, 1) or `unbounded`.
    pub space: Space,
    /// p(z): `uniform`, `normal` (`sigma`), `laplace` (`scale`), `gennorm` (`beta`, `scale`).
    pub marginal: Marginal,
    /// p(z̃ | z): `vmf` (`kappa`), `normal` (`sigma`), `laplace` (`scale`), `gennorm`
    /// (`beta`, `scale`).
    pub conditional: Conditional,
}

impl Default for LatentSection {
    /// Table 1 row 1: the uniform sphere in R^10 with vMF(κ = 1) positives.
    fn default() -> Self {
        LatentSection {
            dim: 10,
            space: Space::Sphere { radius: 1.0 },
            marginal: Marginal::Uniform,
            conditional: Conditional::VonMisesFisher { kappa: 1.0 },
        }
    }
}

impl LatentSection {
    /// Builds (and so validates) the prior.
    ///
    /// # Errors
    /// Invalid values or combinations, named by key (`dim`, `space.radius`,
    /// `conditional.kappa`, …).
    pub fn prior(&self) -> clica_core::Result<Prior> {
        Prior::new(self.space, self.dim, self.marginal, self.conditional).map_err(|e| {
            rename(e, |name| match name {
                "radius" | "low" | "high" => format!("space.{name}"),
                other => other.to_string(),
            })
        })
    }
}

/// A product of latent priors.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductSection {
    /// The parts, in column order.
    pub parts: Vec<LatentSection>,
}

impl ProductSection {
    /// Builds (and so validates) the product prior.
    ///
    /// # Errors
    /// No parts, or an invalid part, named by key (`parts`, `parts[1].space.radius`).
    pub fn prior(&self) -> clica_core::Result<ProductPrior> {
        let parts = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.prior()
                    .map_err(|e| rename(e, |n| format!("parts[{i}].{n}")))
            })
            .collect::<clica_core::Result<Vec<_>>>()?;
        ProductPrior::new(parts)
    }
}

/// `[mixing]`: the generator g.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MixingSection {
    /// The paper's invertible MLP (the default).
    Mlp(MlpMixingSection),
    /// clica's renderer of the 3DIdent scene: 10 latents to an RGB image
    /// ("3DIdent-like (clica-rendered)").
    Render(RenderMixingSection),
}

/// The renderer as the generator: image side, supersampling and the hue convention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenderMixingSection {
    /// Image side in pixels (8 to 224).
    pub size: usize,
    /// Samples per pixel along each axis (1 to 4).
    pub supersample: usize,
    /// `wrapped` (default) or `reference` (the reference scripts' colorsys on negative hues).
    pub hue: clica_render::HueMode,
}

impl Default for RenderMixingSection {
    fn default() -> Self {
        RenderMixingSection {
            size: clica_render::DEFAULT_SIZE,
            supersample: clica_render::DEFAULT_SUPERSAMPLE,
            hue: clica_render::HueMode::Wrapped,
        }
    }
}

/// The generator a valid `[mixing]` table builds.
#[derive(Debug, Clone, PartialEq)]
pub enum MixingChoice {
    /// The invertible MLP.
    Mlp(MlpConfig),
    /// The renderer.
    Render(clica_render::RenderConfig),
}

impl MixingChoice {
    /// Shape of one observation for latent dimension `dim`.
    pub fn observation_shape(&self, dim: usize) -> Vec<usize> {
        match self {
            MixingChoice::Mlp(_) => vec![dim],
            MixingChoice::Render(r) => vec![3, r.size, r.size],
        }
    }
}

impl Default for MixingSection {
    fn default() -> Self {
        MixingSection::Mlp(MlpMixingSection::default())
    }
}

impl MixingSection {
    /// The generator configuration for latent dimension `dim` (validated).
    ///
    /// # Errors
    /// Invalid numbers, named by key (`layers`, `cond_pool`, `cond_ratio`, `activation`).
    pub fn mlp_config(&self, dim: usize) -> clica_core::Result<MlpConfig> {
        let MixingSection::Mlp(m) = self else {
            return Err(clica_core::Error::param("kind", "not the MLP mixing"));
        };
        let cfg = MlpConfig {
            dim,
            layers: m.layers,
            activation: m.activation,
            cond_pool_size: m.cond_pool,
            cond_ratio: m.cond_ratio,
        };
        cfg.validate().map_err(|e| {
            rename(e, |name| match name {
                "cond_pool_size" => "cond_pool".to_string(),
                n if n.starts_with("activation") => "activation".to_string(),
                other => other.to_string(),
            })
        })?;
        Ok(cfg)
    }
}

impl MixingSection {
    /// The generator configuration for latent dimension `dim` (validated).
    ///
    /// # Errors
    /// As [`MixingSection::mlp_config`]; for the renderer, a latent dimension other than 10
    /// and an invalid size or supersampling.
    pub fn choice(&self, dim: usize) -> clica_core::Result<MixingChoice> {
        match self {
            MixingSection::Mlp(_) => self.mlp_config(dim).map(MixingChoice::Mlp),
            MixingSection::Render(r) => {
                if dim != clica_render::N_LATENTS {
                    return Err(clica_core::Error::param(
                        "kind",
                        format!(
                            "the renderer takes the scene's {} latents (data.dim = {}), got data.dim = {dim}",
                            clica_render::N_LATENTS,
                            clica_render::N_LATENTS
                        ),
                    ));
                }
                let cfg = clica_render::RenderConfig::new(r.size)
                    .with_supersample(r.supersample)
                    .with_hue(r.hue);
                // Validation is the renderer's constructor's (it names `size`, `supersample`).
                clica_render::Renderer::new(&cfg)?;
                Ok(MixingChoice::Render(cfg))
            }
        }
    }
}

/// The invertible MLP mixing: `layers` bias-free n × n layers, each drawn until its condition
/// number is below a threshold set by a pool of random matrices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpMixingSection {
    /// Number of layers.
    pub layers: usize,
    /// Activation between layers: `leaky_relu` (slope 0.2), `leaky_relu(0.1)`, `relu`, `elu`,
    /// `softplus`, `smooth_leaky_relu`.
    pub activation: Activation,
    /// Size of the pool of random matrices whose condition numbers set the threshold.
    pub cond_pool: usize,
    /// Quantile of the pool's condition numbers used as threshold (0 = the minimum).
    pub cond_ratio: f64,
}

impl Default for MlpMixingSection {
    fn default() -> Self {
        let paper = MlpConfig::new(1);
        MlpMixingSection {
            layers: paper.layers,
            activation: paper.activation,
            cond_pool: paper.cond_pool_size,
            cond_ratio: paper.cond_ratio,
        }
    }
}

/// `[encoder]`: the network f.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderSection {
    /// A multilayer perceptron (the default).
    Mlp(MlpEncoderSection),
    /// A convolutional network for image observations (the KITTI conv net).
    Conv(ConvEncoderSection),
    /// ResNet-18 for image observations (the paper's 3DIdent encoder).
    Resnet18(ResNetEncoderSection),
}

/// ResNet-18 (torchvision's), then the paper's head: `fc` to `hidden_multiplier · n`,
/// LeakyReLU, a linear layer to n, an output layer; inputs normalised per channel. Batch
/// norm uses the batch's statistics in training (anchors and positives together) and
/// running averages in evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetEncoderSection {
    /// Output normalisation, as the MLP's (`none`, `sphere`, `learnable_sphere`, `box`).
    pub normalization: Normalization,
    /// Per-channel input normalisation: `data` (as the conv encoder's) or `none`.
    pub input_norm: InputNorm,
    /// Channels of the four stages. Default `[64, 128, 256, 512]` (ResNet-18).
    pub widths: [usize; 4],
    /// Width of `fc` as a multiple of n. Default 10 (the paper's 10 n).
    pub hidden_multiplier: usize,
}

impl Default for ResNetEncoderSection {
    fn default() -> Self {
        ResNetEncoderSection {
            normalization: Normalization::LearnableBox { init_bound: 1.0 },
            input_norm: InputNorm::Data,
            widths: [64, 128, 256, 512],
            hidden_multiplier: 10,
        }
    }
}

/// The convolutional encoder: the KITTI conv net on the source's images (or the same
/// pattern with other widths), a linear layer to n, an output layer; inputs normalised per
/// channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvEncoderSection {
    /// Output normalisation, as the MLP's (`none`, `sphere`, `learnable_sphere`, `box`).
    pub normalization: Normalization,
    /// Per-channel input normalisation: `data` (mean and std of 1,024 images drawn from the
    /// source with the seed's `encoder.input_norm` stream, recorded in the encoder's
    /// description) or `none`.
    pub input_norm: InputNorm,
    /// Output channels of the 4 × 4, stride-2 convolutions, one per halving of the image
    /// side. Default `[32, 32, 64, 64]` (the KITTI net). Written to a resolved config only
    /// when it differs, so the configs of earlier runs stay what the same run writes now.
    #[serde(skip_serializing_if = "is_kitti_channels")]
    pub channels: Vec<usize>,
    /// Channels of the last convolution, whose kernel spans what the halvings leave.
    /// Default 256 (the KITTI net); written only when it differs.
    #[serde(skip_serializing_if = "is_kitti_features")]
    pub features: usize,
    /// Output channels of 3 × 3 convolutions of stride 1 (padding 1) run at full resolution
    /// before the halvings, one per entry: an encoder that keeps the image's resolution
    /// longer. Default `[]` (the KITTI net); written only when set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stem: Vec<usize>,
}

const KITTI_CHANNELS: [usize; 4] = [32, 32, 64, 64];
const KITTI_FEATURES: usize = 256;

fn is_kitti_channels(c: &[usize]) -> bool {
    c == KITTI_CHANNELS
}

fn is_kitti_features(f: &usize) -> bool {
    *f == KITTI_FEATURES
}

impl Default for ConvEncoderSection {
    fn default() -> Self {
        ConvEncoderSection {
            normalization: Normalization::LearnableBox { init_bound: 1.0 },
            input_norm: InputNorm::Data,
            channels: KITTI_CHANNELS.to_vec(),
            features: KITTI_FEATURES,
            stem: Vec::new(),
        }
    }
}

/// How a convolutional encoder normalises its input channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputNorm {
    /// The data's own per-channel mean and standard deviation.
    Data,
    /// No normalisation.
    None,
}

impl InputNorm {
    fn is_none(&self) -> bool {
        *self == InputNorm::None
    }
}

/// The encoder a valid `[encoder]` table builds.
#[derive(Debug, Clone, PartialEq)]
pub enum EncoderChoice {
    /// The MLP (input: the observation vector).
    Mlp(EncoderConfig),
    /// The conv net; `input_norm` is filled from the data when the components are built.
    Conv {
        /// The configuration.
        config: clica_conv::ConvEncoderConfig,
        /// Whether to fill `config.input_norm` from the data.
        from_data: bool,
    },
    /// ResNet-18; `input_norm` is filled from the data when the components are built.
    ResNet {
        /// The configuration.
        config: clica_conv::ResNetConfig,
        /// Whether to fill `config.input_norm` from the data.
        from_data: bool,
    },
}

impl EncoderChoice {
    /// Width of the representation.
    pub fn output_dim(&self) -> usize {
        match self {
            EncoderChoice::Mlp(c) => c.output_dim,
            EncoderChoice::Conv { config, .. } => config.output_dim,
            EncoderChoice::ResNet { config, .. } => config.output_dim,
        }
    }

    /// The output layer.
    pub fn normalization(&self) -> clica_encoders::Normalization {
        match self {
            EncoderChoice::Mlp(c) => c.normalization,
            EncoderChoice::Conv { config, .. } => config.normalization,
            EncoderChoice::ResNet { config, .. } => config.normalization,
        }
    }

    /// Adam's hyper-parameters.
    pub fn adam(&self) -> clica_encoders::AdamConfig {
        match self {
            EncoderChoice::Mlp(c) => c.adam,
            EncoderChoice::Conv { config, .. } => config.adam,
            EncoderChoice::ResNet { config, .. } => config.adam,
        }
    }

    /// Description recorded in result files.
    pub fn describe(&self) -> String {
        match self {
            EncoderChoice::Mlp(c) => c.describe(),
            EncoderChoice::Conv { config, .. } => config.describe(),
            EncoderChoice::ResNet { config, .. } => config.describe(),
        }
    }
}

impl Default for EncoderSection {
    fn default() -> Self {
        EncoderSection::Mlp(MlpEncoderSection::default())
    }
}

impl EncoderSection {
    /// The encoder configuration for n-dimensional data, n-dimensional output (validated).
    ///
    /// # Errors
    /// Invalid widths, slope or normalisation, named by key (`hidden_multipliers[1]`,
    /// `negative_slope`, `normalization.radius`); the dfdx backend in a build without it.
    pub fn encoder_config(&self, n: usize) -> clica_core::Result<EncoderConfig> {
        let EncoderSection::Mlp(m) = self else {
            return Err(clica_core::Error::param("kind", "not the MLP encoder"));
        };
        let mut cfg = EncoderConfig::paper(n);
        cfg.hidden = m.hidden_multipliers.iter().map(|k| k * n).collect();
        cfg.negative_slope = m.negative_slope;
        cfg.normalization = m.normalization;
        cfg.backend = m.backend;
        cfg.validate().map_err(|e| {
            rename(e, |name| match name.strip_prefix("hidden[") {
                Some(rest) => format!("hidden_multipliers[{rest}"),
                None => name.to_string(),
            })
        })?;
        Ok(cfg)
    }

    /// The implementation that computes the encoder (the conv net has only the native one).
    pub fn backend(&self) -> Backend {
        match self {
            EncoderSection::Mlp(m) => m.backend,
            EncoderSection::Conv(_) | EncoderSection::Resnet18(_) => Backend::Native,
        }
    }

    /// The encoder for observations of `shape` and an `n`-dimensional representation
    /// (validated).
    ///
    /// # Errors
    /// As [`EncoderSection::encoder_config`] (with input width the product of `shape`); the
    /// conv net on observations that are not images.
    pub fn choice(&self, shape: &[usize], n: usize) -> clica_core::Result<EncoderChoice> {
        match self {
            EncoderSection::Mlp(_) => {
                let mut cfg = self.encoder_config(n)?;
                cfg.input_dim = shape.iter().product();
                cfg.validate()?;
                Ok(EncoderChoice::Mlp(cfg))
            }
            EncoderSection::Conv(c) => {
                let &[ch, h, w] = shape else {
                    return Err(clica_core::Error::param(
                        "kind",
                        format!(
                            "the conv encoder needs image observations (mixing.kind = \"render\"), got shape {shape:?}"
                        ),
                    ));
                };
                if c.channels.contains(&0) {
                    return Err(clica_core::Error::param(
                        "channels",
                        format!("every width must be at least 1, got {:?}", c.channels),
                    ));
                }
                if c.features == 0 {
                    return Err(clica_core::Error::param("features", "must be at least 1"));
                }
                if c.stem.contains(&0) {
                    return Err(clica_core::Error::param(
                        "stem",
                        format!("every width must be at least 1, got {:?}", c.stem),
                    ));
                }
                let config =
                    clica_conv::ConvEncoderConfig::strided([ch, h, w], &c.channels, c.features, n)
                        .with_stem(&c.stem)
                        .with_normalization(c.normalization);
                config.validate()?;
                Ok(EncoderChoice::Conv {
                    config,
                    from_data: c.input_norm == InputNorm::Data,
                })
            }
            EncoderSection::Resnet18(r) => {
                let &[ch, h, w] = shape else {
                    return Err(clica_core::Error::param(
                        "kind",
                        format!(
                            "ResNet-18 needs image observations (mixing.kind = \"render\" or data.kind = \"image_set\"), got shape {shape:?}"
                        ),
                    ));
                };
                if r.hidden_multiplier == 0 {
                    return Err(clica_core::Error::param(
                        "hidden_multiplier",
                        "must be at least 1",
                    ));
                }
                let mut config = clica_conv::ResNetConfig::resnet18([ch, h, w], n)
                    .with_widths(r.widths)
                    .with_normalization(r.normalization);
                config.hidden = r.hidden_multiplier * n;
                config.validate()?;
                Ok(EncoderChoice::ResNet {
                    config,
                    from_data: r.input_norm == InputNorm::Data,
                })
            }
        }
    }
}

/// A multilayer perceptron encoder: n → hidden widths → n, LeakyReLU between layers, then the
/// output normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpEncoderSection {
    /// Hidden widths as multiples of n. Default `[10, 10, 10]` (the fast protocol); the
    /// paper's encoder is `[10, 50, 50, 50, 50, 10]`.
    pub hidden_multipliers: Vec<usize>,
    /// LeakyReLU slope (paper: 0.01).
    pub negative_slope: f64,
    /// Output normalisation: `none`, `sphere` (`radius`, 1), `learnable_sphere`
    /// (`init_radius`, 1) or `box` (a learnable per-coordinate bound, `init_bound`, 1).
    pub normalization: Normalization,
    /// Implementation: `native` or `dfdx`.
    pub backend: Backend,
    /// Per-feature input standardisation: `none` (the default) or `data` ((x − μ)/σ with the
    /// mean and standard deviation of 1,024 observations drawn from the source with the
    /// seed's `encoder.input_norm` stream, fixed, recorded in the encoder's description).
    #[serde(skip_serializing_if = "InputNorm::is_none")]
    pub input_norm: InputNorm,
}

impl Default for MlpEncoderSection {
    fn default() -> Self {
        MlpEncoderSection {
            hidden_multipliers: vec![10, 10, 10],
            negative_slope: 0.01,
            normalization: Normalization::Sphere { radius: 1.0 },
            backend: Backend::Native,
            input_norm: InputNorm::None,
        }
    }
}

/// The contrastive objective of a `[loss]` table, by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Objective {
    /// InfoNCE with dot-product similarity (vMF model conditional on the sphere).
    Sphere {
        /// Temperature τ.
        #[serde(default = "one")]
        tau: f64,
        /// Whether the anchor-against-itself term stays among the negatives.
        #[serde(default)]
        self_term: SelfTerm,
    },
    /// InfoNCE with −‖h − h'‖_p^p similarity (Laplace p=1, Normal p=2, GenNorm p=3).
    Lp {
        /// p (1, 2 or 3).
        #[serde(default = "one_u32")]
        p: u32,
        /// Temperature τ.
        #[serde(default = "one")]
        tau: f64,
        /// `simclr` (the paper's, positive inside the logsumexp) or `plain`.
        #[serde(default)]
        form: LpForm,
        /// Whether the anchor-against-itself term stays among the negatives.
        #[serde(default)]
        self_term: SelfTerm,
    },
    /// Alignment + λ·uniformity (Wang & Isola 2020).
    AlignUniform {
        /// Alignment exponent α.
        #[serde(default = "align_alpha")]
        alpha: f64,
        /// Uniformity temperature t.
        #[serde(default = "align_t")]
        t: f64,
        /// Weight λ of the uniformity term.
        #[serde(default = "align_lambda")]
        lambda: f64,
        /// The views the uniformity term is computed on: `anchors` or `both`.
        #[serde(default)]
        on: UniformOn,
    },
}

fn one() -> f64 {
    1.0
}

fn one_u32() -> u32 {
    1
}

fn align_alpha() -> f64 {
    AlignUniform::default().alpha()
}

fn align_t() -> f64 {
    AlignUniform::default().t()
}

fn align_lambda() -> f64 {
    AlignUniform::default().lambda()
}

impl Objective {
    /// Builds (and so validates) the loss.
    ///
    /// # Errors
    /// A parameter out of range, named by key (`tau`, `p`, `alpha`, `t`, `lambda`).
    pub fn build(&self) -> clica_core::Result<Box<dyn ContrastiveLoss<f32>>> {
        Ok(match *self {
            Objective::Sphere { tau, self_term } => Box::new(SphereInfoNce::new(tau, self_term)?),
            Objective::Lp {
                p,
                tau,
                form,
                self_term,
            } => Box::new(LpInfoNce::new(p, tau, form, self_term)?),
            Objective::AlignUniform {
                alpha,
                t,
                lambda,
                on,
            } => Box::new(AlignUniform::new(alpha, t, lambda)?.with_uniform_on(on)),
        })
    }
}

/// `[loss]`: the contrastive objective (`kind` and its parameters) and the wrappers that
/// apply to any kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossSection {
    /// The objective.
    #[serde(flatten)]
    pub objective: Objective,
    /// Negatives per anchor: the batch is cut into groups of this many consecutive rows and
    /// each anchor is contrasted with the anchors of its group only. Absent: the whole batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negatives: Option<usize>,
    /// Use every pair in both directions, ½·[loss(h, h̃) + loss(h̃, h)].
    #[serde(skip_serializing_if = "is_false")]
    pub symmetric: bool,
    /// Positives per anchor, M (absent: 1): the loss's alignment term is averaged over M
    /// exact draws from the conditional, its normaliser unchanged
    /// ([`clica_objectives::ExtraPositives`]). Sphere and Lp kinds; M ≤ 64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positives: Option<usize>,
    /// Draw an anchor's positives in mirrored pairs (antithetic positives): the second of
    /// each pair is the first's reflection about the anchor, itself an exact draw from the
    /// conditional ([`clica_core::Mirror`]). Needs `positives` ≥ 2 and a conditional with
    /// such a reflection (vMF or Normal on the sphere, any on the unbounded space).
    #[serde(skip_serializing_if = "is_false")]
    pub antithetic: bool,
    /// Draw the anchors in mirrored halves (antithetic anchors): the second half of the batch
    /// is the first half reflected by the prior's anchor reflection
    /// ([`clica_core::Reflection`]: z ↦ −z on the sphere and ℝⁿ, the box's centre reflection),
    /// each with its positives reflected. Every pair is still an exact draw from
    /// p(z) p(z̃ | z); the negatives come in mirrored pairs. Needs an even `train.batch`.
    #[serde(skip_serializing_if = "is_false")]
    pub antithetic_anchors: bool,
}

/// The most positives per anchor `loss.positives` accepts (the batch buffers grow with it).
pub const MAX_POSITIVES: usize = 64;

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            objective: Objective::Sphere {
                tau: 1.0,
                self_term: SelfTerm::Keep,
            },
            negatives: None,
            symmetric: false,
            positives: None,
            antithetic: false,
            antithetic_anchors: false,
        }
    }
}

/// The keys of a `[loss]` table that are not the objective's.
const WRAPPER_KEYS: [&str; 5] = [
    "negatives",
    "symmetric",
    "positives",
    "antithetic",
    "antithetic_anchors",
];

impl<'de> Deserialize<'de> for LossSection {
    /// The wrappers' keys are taken out of the table and the rest is the objective (serde's
    /// `flatten` cannot be combined with a tagged enum that rejects unknown fields).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let [negatives, symmetric, positives, antithetic, antithetic_anchors] =
            WRAPPER_KEYS.map(|k| table.remove(k));
        let negatives = negatives
            .map(|v| v.try_into::<usize>())
            .transpose()
            .map_err(D::Error::custom)?;
        let positives = positives
            .map(|v| v.try_into::<usize>())
            .transpose()
            .map_err(D::Error::custom)?;
        let symmetric = symmetric
            .map(|v| v.try_into::<bool>())
            .transpose()
            .map_err(D::Error::custom)?
            .unwrap_or(false);
        let flag = |v: Option<toml::Value>| {
            v.map(|v| v.try_into::<bool>())
                .transpose()
                .map_err(D::Error::custom)
                .map(|b| b.unwrap_or(false))
        };
        let antithetic = flag(antithetic)?;
        let antithetic_anchors = flag(antithetic_anchors)?;
        let objective =
            Objective::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(LossSection {
            objective,
            negatives,
            symmetric,
            positives,
            antithetic,
            antithetic_anchors,
        })
    }
}

impl LossSection {
    /// Builds (and so validates) the loss, wrappers applied.
    ///
    /// # Errors
    /// A parameter out of range, named by key (`tau`, `p`, `alpha`, `negatives`).
    pub fn build(&self) -> clica_core::Result<Box<dyn ContrastiveLoss<f32>>> {
        let mut loss = self.objective.build()?;
        if let Some(m) = self.negatives {
            loss = Box::new(Grouped::new(loss, m)?);
        }
        if self.symmetric {
            loss = Box::new(Symmetric::new(loss));
        }
        Ok(loss)
    }

    /// Positives per anchor (1 when `positives` is absent).
    pub fn positives_per_anchor(&self) -> usize {
        self.positives.unwrap_or(1)
    }

    /// The alignment average over several positives, when `positives` > 1.
    ///
    /// # Errors
    /// `positives` out of `1..=MAX_POSITIVES` (64), or set above 1 for a kind without a pair
    /// term (`align_uniform`), named `positives`; `antithetic` with fewer than 2 positives.
    pub fn extra_positives(&self) -> clica_core::Result<Option<ExtraPositives>> {
        let m = self.positives_per_anchor();
        if !(1..=MAX_POSITIVES).contains(&m) {
            return Err(clica_core::Error::param(
                "positives",
                format!("must lie in 1..={MAX_POSITIVES}, got {m}"),
            ));
        }
        if self.antithetic && m < 2 {
            return Err(clica_core::Error::param(
                "antithetic",
                format!("mirrored positives need `positives` ≥ 2, got {m}"),
            ));
        }
        if m == 1 {
            return Ok(None);
        }
        let term = match self.objective {
            Objective::Sphere { tau, .. } => PairTerm::Dot { tau },
            Objective::Lp { p, tau, .. } => PairTerm::Lp {
                p: f64::from(p),
                tau,
            },
            Objective::AlignUniform { .. } => {
                return Err(clica_core::Error::param(
                    "positives",
                    "several positives per anchor need a sphere or lp loss, not align_uniform",
                ))
            }
        };
        Ok(Some(ExtraPositives::new(term, m)?))
    }
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
    pub schedule: super::ScheduleKind,
    /// Final learning rate as a fraction of `lr` (cosine and wsd schedules).
    pub final_lr_fraction: f64,
    /// The share of the post-warm-up steps over which the wsd schedule decays (in (0, 1];
    /// absent: [`crate::config::DEFAULT_DECAY_FRACTION`]). Only with `schedule = "wsd"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_fraction: Option<f64>,
    /// The knots of the piecewise-linear schedule, `[[fraction, multiple], …]`: at each
    /// fraction of the post-warm-up steps the learning rate is that multiple of the peak,
    /// linear in between. Fractions rise strictly from 0 to 1; multiples are finite and ≥ 0.
    /// Only with `schedule = "piecewise"`, which needs them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_knots: Option<Vec<[f64; 2]>>,
    /// Decay β of an exponential moving average of the encoder's weights during the
    /// contrastive phase, e ← β·e + (1 − β)·θ after every step (in (0, 1); absent: none).
    /// When set, the contrastive scores (log points and final) are those of the averaged
    /// weights, and `encoder.safetensors` holds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
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
            schedule: super::ScheduleKind::Cosine,
            final_lr_fraction: 0.01,
            decay_fraction: None,
            lr_knots: None,
            ema: None,
            log_every: 1000,
            checkpoint_every: 1000,
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
