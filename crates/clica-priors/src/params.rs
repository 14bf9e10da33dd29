//! The user-facing parameter enums and their validation.

use crate::{Error, Result};
use std::fmt;

/// Smallest accepted generalized-normal shape β.
///
/// Draws are λ·G^{1/β} with G ~ Gamma(1/β, 1); below β ≈ 0.007 nearly every draw overflows
/// `f64`, so shapes below this bound are rejected at construction.
pub const MIN_GENNORM_BETA: f64 = 0.02;

/// The space the latents live in.
///
/// With the `serde` feature: `{ kind = "sphere", radius = 1.0 }`, `{ kind = "box", low = 0.0,
/// high = 1.0 }` or `{ kind = "unbounded" }`; a missing field takes the value shown.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Space {
    /// The sphere S^{n−1} = { z ∈ ℝⁿ : ‖z‖ = radius } (needs n ≥ 2).
    Sphere {
        /// Radius r > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        radius: f64,
    },
    /// The box [low, high]ⁿ.
    Box {
        /// Lower bound a (finite).
        #[cfg_attr(feature = "serde", serde(default))]
        low: f64,
        /// Upper bound b (finite, b > a).
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        high: f64,
    },
    /// All of ℝⁿ.
    Unbounded,
}

/// The marginal p(z).
///
/// The non-uniform laws are centred at 0 on ℝⁿ, at the midpoint of a box (truncated to the box
/// by per-coordinate rejection) and at r·e₁ on a sphere (drawn in ℝⁿ and projected back).
///
/// With the `serde` feature: `{ kind = "uniform" }`, `{ kind = "normal", sigma = 1.0 }`,
/// `{ kind = "laplace", scale = 1.0 }` or `{ kind = "gennorm", beta = 3.0, scale = 1.0 }`; a
/// missing field takes the value shown.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Marginal {
    /// Uniform on the sphere or the box; not defined on ℝⁿ.
    Uniform,
    /// i.i.d. normal coordinates with standard deviation σ.
    Normal {
        /// Standard deviation σ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        sigma: f64,
    },
    /// i.i.d. Laplace coordinates, density ∝ exp(−|x|/λ).
    Laplace {
        /// Scale λ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        scale: f64,
    },
    /// i.i.d. generalized-normal coordinates, density ∝ exp(−|x/λ|^β).
    #[cfg_attr(feature = "serde", serde(rename = "gennorm"))]
    GenNorm {
        /// Shape β ≥ [`MIN_GENNORM_BETA`].
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::gennorm_beta"))]
        beta: f64,
        /// Scale λ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        scale: f64,
    },
}

/// The conditional p(z̃ | z).
///
/// The additive laws are centred at z: as is on ℝⁿ, projected back onto the sphere, or
/// truncated to the box by redrawing every coordinate that falls outside it.
///
/// With the `serde` feature: `{ kind = "vmf", kappa = 1.0 }`, `{ kind = "normal", sigma = 1.0 }`,
/// `{ kind = "laplace", scale = 1.0 }` or `{ kind = "gennorm", beta = 3.0, scale = 1.0 }`; a
/// missing field takes the value shown.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Conditional {
    /// von Mises–Fisher around z/‖z‖ with concentration κ, scaled to the sphere's radius.
    /// Only on the sphere.
    #[cfg_attr(feature = "serde", serde(rename = "vmf"))]
    VonMisesFisher {
        /// Concentration κ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        kappa: f64,
    },
    /// z + i.i.d. normal noise with standard deviation σ.
    Normal {
        /// Standard deviation σ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        sigma: f64,
    },
    /// z + i.i.d. Laplace noise, density ∝ exp(−|x|/λ).
    Laplace {
        /// Scale λ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        scale: f64,
    },
    /// z + i.i.d. generalized-normal noise, density ∝ exp(−|x/λ|^β).
    #[cfg_attr(feature = "serde", serde(rename = "gennorm"))]
    GenNorm {
        /// Shape β ≥ [`MIN_GENNORM_BETA`].
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::gennorm_beta"))]
        beta: f64,
        /// Scale λ > 0.
        #[cfg_attr(feature = "serde", serde(default = "serde_defaults::one"))]
        scale: f64,
    },
}

/// The values of the fields a serialised parameter leaves out.
#[cfg(feature = "serde")]
mod serde_defaults {
    pub(super) fn one() -> f64 {
        1.0
    }

    pub(super) fn gennorm_beta() -> f64 {
        3.0
    }
}

/// Fails unless `v` is finite and strictly positive.
pub(crate) fn positive(name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::param(name, format!("must be finite, got {v}")));
    }
    if v <= 0.0 {
        return Err(Error::param(name, format!("must be > 0, got {v}")));
    }
    Ok(())
}

pub(crate) fn gennorm_beta(name: &str, beta: f64) -> Result<()> {
    positive(name, beta)?;
    if beta < MIN_GENNORM_BETA {
        return Err(Error::param(
            name,
            format!("must be ≥ {MIN_GENNORM_BETA} (smaller shapes overflow f64), got {beta}"),
        ));
    }
    Ok(())
}

impl Space {
    pub(crate) fn validate(&self, dim: usize) -> Result<()> {
        if dim == 0 {
            return Err(Error::param("dim", "must be ≥ 1, got 0"));
        }
        match *self {
            Space::Sphere { radius } => {
                if dim < 2 {
                    return Err(Error::param(
                        "dim",
                        format!("the sphere S^(n-1) needs n ≥ 2, got {dim}"),
                    ));
                }
                positive("radius", radius)
            }
            Space::Box { low, high } => {
                if !low.is_finite() {
                    return Err(Error::param("low", format!("must be finite, got {low}")));
                }
                if !high.is_finite() {
                    return Err(Error::param("high", format!("must be finite, got {high}")));
                }
                if low >= high {
                    return Err(Error::param(
                        "high",
                        format!("must be > low, got low = {low}, high = {high}"),
                    ));
                }
                if !(high - low).is_finite() {
                    return Err(Error::param(
                        "high",
                        format!(
                            "the box width high - low must be finite (low = {low}, high = {high})"
                        ),
                    ));
                }
                Ok(())
            }
            Space::Unbounded => Ok(()),
        }
    }
}

impl Marginal {
    pub(crate) fn validate(&self, space: &Space) -> Result<()> {
        match *self {
            Marginal::Uniform => {
                if let Space::Unbounded = space {
                    return Err(Error::param(
                        "marginal",
                        "a uniform marginal is not defined on the unbounded space R^n",
                    ));
                }
                Ok(())
            }
            Marginal::Normal { sigma } => positive("marginal.sigma", sigma),
            Marginal::Laplace { scale } => positive("marginal.scale", scale),
            Marginal::GenNorm { beta, scale } => {
                gennorm_beta("marginal.beta", beta)?;
                positive("marginal.scale", scale)
            }
        }
    }
}

impl Conditional {
    pub(crate) fn validate(&self, space: &Space) -> Result<()> {
        match *self {
            Conditional::VonMisesFisher { kappa } => {
                if !matches!(space, Space::Sphere { .. }) {
                    return Err(Error::param(
                        "conditional",
                        "the von Mises-Fisher conditional is only defined on the sphere",
                    ));
                }
                positive("conditional.kappa", kappa)
            }
            Conditional::Normal { sigma } => positive("conditional.sigma", sigma),
            Conditional::Laplace { scale } => positive("conditional.scale", scale),
            Conditional::GenNorm { beta, scale } => {
                gennorm_beta("conditional.beta", beta)?;
                positive("conditional.scale", scale)
            }
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Sphere { radius } => write!(f, "sphere(radius={radius})"),
            Space::Box { low, high } => write!(f, "box(low={low}, high={high})"),
            Space::Unbounded => write!(f, "unbounded"),
        }
    }
}

impl fmt::Display for Marginal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Marginal::Uniform => write!(f, "uniform"),
            Marginal::Normal { sigma } => write!(f, "normal(sigma={sigma})"),
            Marginal::Laplace { scale } => write!(f, "laplace(scale={scale})"),
            Marginal::GenNorm { beta, scale } => write!(f, "gennorm(beta={beta}, scale={scale})"),
        }
    }
}

impl fmt::Display for Conditional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conditional::VonMisesFisher { kappa } => write!(f, "vmf(kappa={kappa})"),
            Conditional::Normal { sigma } => write!(f, "normal(sigma={sigma})"),
            Conditional::Laplace { scale } => write!(f, "laplace(scale={scale})"),
            Conditional::GenNorm { beta, scale } => {
                write!(f, "gennorm(beta={beta}, scale={scale})")
            }
        }
    }
}
