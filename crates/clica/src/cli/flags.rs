//! The flags of `clica sample`, `clica mix` and `clica baseline` that describe a prior and a
//! mixing network (`--space box --low 0 --high 1 --conditional normal --concentration 0.05`),
//! and how they map to [`Prior`] and [`MlpConfig`]. Result files record them as written here.

use clica_generators::{Activation, MlpConfig};
use clica_priors::{Conditional, Marginal, Prior, Space};
use serde::Serialize;

/// `--space`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SpaceFlag {
    /// Sphere S^{n-1} of radius `--radius`.
    Sphere,
    /// Box [low, high]^n.
    Box,
    /// R^n.
    Unbounded,
}

/// `--marginal`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MarginalFlag {
    /// Uniform on the sphere or the box (not defined on R^n).
    Uniform,
    /// Normal with standard deviation `--marginal-scale`.
    Normal,
    /// Laplace with scale `--marginal-scale`.
    Laplace,
    /// Generalized normal with shape `--beta` and scale `--marginal-scale`.
    Gennorm,
}

/// `--conditional`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ConditionalFlag {
    /// von Mises–Fisher with concentration κ = `--concentration` (sphere only).
    Vmf,
    /// Normal with σ = `--concentration`.
    Normal,
    /// Laplace with scale λ = `--concentration`.
    Laplace,
    /// Generalized normal with shape `--beta` and scale λ = `--concentration`.
    Gennorm,
}

/// The latent prior, as flags.
#[derive(Debug, Clone, PartialEq, Serialize, clap::Args)]
pub struct PriorFlags {
    /// Latent space.
    #[arg(long, value_enum, default_value = "sphere")]
    pub space: SpaceFlag,
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
    pub marginal: MarginalFlag,
    /// Scale of a non-uniform marginal (σ or λ).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub marginal_scale: f64,
    /// Conditional p(z̃ | z).
    #[arg(long, value_enum, default_value = "vmf")]
    pub conditional: ConditionalFlag,
    /// Concentration of the conditional: κ for vMF, σ for normal, λ for Laplace and gennorm.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub concentration: f64,
    /// Shape β of generalized-normal laws (marginal and conditional).
    #[arg(long, default_value_t = 3.0, allow_hyphen_values = true)]
    pub beta: f64,
}

impl PriorFlags {
    /// Builds (and so validates) the prior.
    ///
    /// # Errors
    /// Invalid values or combinations, named by parameter.
    pub fn prior(&self) -> clica_core::Result<Prior> {
        let space = match self.space {
            SpaceFlag::Sphere => Space::Sphere {
                radius: self.radius,
            },
            SpaceFlag::Box => Space::Box {
                low: self.low,
                high: self.high,
            },
            SpaceFlag::Unbounded => Space::Unbounded,
        };
        let s = self.marginal_scale;
        let marginal = match self.marginal {
            MarginalFlag::Uniform => Marginal::Uniform,
            MarginalFlag::Normal => Marginal::Normal { sigma: s },
            MarginalFlag::Laplace => Marginal::Laplace { scale: s },
            MarginalFlag::Gennorm => Marginal::GenNorm {
                beta: self.beta,
                scale: s,
            },
        };
        let c = self.concentration;
        let conditional = match self.conditional {
            ConditionalFlag::Vmf => Conditional::VonMisesFisher { kappa: c },
            ConditionalFlag::Normal => Conditional::Normal { sigma: c },
            ConditionalFlag::Laplace => Conditional::Laplace { scale: c },
            ConditionalFlag::Gennorm => Conditional::GenNorm {
                beta: self.beta,
                scale: c,
            },
        };
        Prior::new(space, self.dim, marginal, conditional)
    }
}

/// The mixing network, as flags.
#[derive(Debug, Clone, PartialEq, Serialize, clap::Args)]
pub struct MixingFlags {
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

impl MixingFlags {
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
