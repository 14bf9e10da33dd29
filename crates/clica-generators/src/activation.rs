//! Elementwise activations of the mixing network and their exact inverses.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The default slope of [`Activation::LeakyRelu`] (the paper's LeakyReLU(0.2)).
pub const DEFAULT_LEAKY_SLOPE: f64 = 0.2;

/// An elementwise nonlinearity placed between the layers of an [`InvertibleMlp`](crate::InvertibleMlp).
///
/// | name | formula | inverse defined on |
/// |---|---|---|
/// | `leaky_relu` | `x` if `x ≥ 0`, else `slope·x` | ℝ (needs `slope > 0`) |
/// | `relu` | `max(x, 0)` | not invertible |
/// | `elu` | `x` if `x > 0`, else `eˣ − 1` | `y > −1` |
/// | `softplus` | `ln(1 + eˣ)` | `y > 0` |
/// | `smooth_leaky_relu` | `0.2·x + 0.8·softplus(x)` | ℝ |
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// Leaky ReLU with the given negative-side slope (default 0.2).
    LeakyRelu {
        /// Slope for negative inputs; must be finite and `> 0` to be invertible.
        slope: f64,
    },
    /// ReLU; not invertible, so networks using it cannot be inverted.
    Relu,
    /// ELU with α = 1.
    Elu,
    /// Softplus `ln(1 + eˣ)`.
    Softplus,
    /// `0.2·x + 0.8·softplus(x)`: a smooth, strictly increasing leaky ReLU.
    SmoothLeakyRelu,
}

impl Default for Activation {
    /// `LeakyRelu { slope: 0.2 }`.
    fn default() -> Self {
        Activation::LeakyRelu {
            slope: DEFAULT_LEAKY_SLOPE,
        }
    }
}

/// Numerically stable `ln(1 + eˣ)`.
#[inline]
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Numerically stable logistic sigmoid.
#[inline]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Inverse of softplus for `y > 0`: `x = ln(eʸ − 1)`.
#[inline]
fn softplus_inv(y: f64) -> f64 {
    if y > 30.0 {
        // ln(eʸ − 1) = y + ln(1 − e⁻ʸ)
        y + (-(-y).exp()).ln_1p()
    } else {
        y.exp_m1().ln()
    }
}

#[inline]
fn smooth_leaky(x: f64) -> f64 {
    0.2 * x + 0.8 * softplus(x)
}

/// Inverse of `0.2·x + 0.8·softplus(x)` by Newton's method safeguarded with bisection.
///
/// The function is strictly increasing with slope in (0.2, 1), and satisfies
/// `x < f(x) ≤ x + 0.8·ln 2` for `x ≥ 0` and `0.2·x < f(x) ≤ 0.2·x + 0.8·ln 2` for `x < 0`,
/// which gives a bracket of the root.
fn smooth_leaky_inv(y: f64) -> f64 {
    let c = 0.8 * std::f64::consts::LN_2;
    let mut hi = y.min(5.0 * y);
    let mut lo = (y - c).min(5.0 * (y - c));
    // Initial guess: the asymptote on the matching side.
    let mut x = if y >= c {
        y - 0.8 * softplus(-y)
    } else {
        5.0 * y
    };
    x = x.clamp(lo, hi);
    for _ in 0..200 {
        let r = smooth_leaky(x) - y;
        if r == 0.0 {
            return x;
        }
        if r > 0.0 {
            hi = x;
        } else {
            lo = x;
        }
        let d = 0.2 + 0.8 * sigmoid(x);
        let mut next = x - r / d;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if next == x || next == lo || next == hi {
            // The bracket has collapsed to adjacent floats: pick the better end.
            break;
        }
        x = next;
    }
    // Return whichever of x, lo, hi has the smallest residual.
    let mut best = x;
    let mut best_r = (smooth_leaky(x) - y).abs();
    for cand in [lo, hi] {
        let r = (smooth_leaky(cand) - y).abs();
        if r < best_r {
            best = cand;
            best_r = r;
        }
    }
    best
}

impl Activation {
    /// All names accepted by [`FromStr`], in declaration order.
    pub const NAMES: [&'static str; 5] =
        ["leaky_relu", "relu", "elu", "softplus", "smooth_leaky_relu"];

    /// A leaky ReLU with the given slope, validated.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `slope` is finite and `> 0`.
    pub fn leaky_relu(slope: f64) -> Result<Self> {
        let a = Activation::LeakyRelu { slope };
        a.validate()?;
        Ok(a)
    }

    /// The stable name used in configs and fingerprints (`"leaky_relu"`, `"relu"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Relu => "relu",
            Activation::Elu => "elu",
            Activation::Softplus => "softplus",
            Activation::SmoothLeakyRelu => "smooth_leaky_relu",
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a leaky ReLU whose slope is not finite and `> 0`.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Activation::LeakyRelu { slope } if !(slope.is_finite() && slope > 0.0) => {
                Err(Error::param(
                    "slope",
                    format!("leaky ReLU slope must be finite and > 0, got {slope}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether [`Activation::inverse`] is defined (everything but ReLU, given a valid slope).
    pub fn is_invertible(&self) -> bool {
        !matches!(self, Activation::Relu) && self.validate().is_ok()
    }

    /// Applies the activation to one value.
    #[inline]
    pub fn apply(&self, x: f64) -> f64 {
        match *self {
            Activation::LeakyRelu { slope } => {
                if x >= 0.0 {
                    x
                } else {
                    slope * x
                }
            }
            Activation::Relu => x.max(0.0),
            Activation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Activation::Softplus => softplus(x),
            Activation::SmoothLeakyRelu => smooth_leaky(x),
        }
    }

    /// The derivative of the activation at `x` (for ReLU, 0 at `x ≤ 0`).
    #[inline]
    pub fn derivative(&self, x: f64) -> f64 {
        match *self {
            Activation::LeakyRelu { slope } => {
                if x >= 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Elu => {
                if x > 0.0 {
                    1.0
                } else {
                    x.exp()
                }
            }
            Activation::Softplus => sigmoid(x),
            Activation::SmoothLeakyRelu => 0.2 + 0.8 * sigmoid(x),
        }
    }

    /// The inverse of the activation at `y`.
    ///
    /// Exact up to rounding for the piecewise-linear and closed-form cases; the smooth leaky
    /// ReLU is inverted by safeguarded Newton iteration to full `f64` precision.
    ///
    /// # Errors
    /// - [`Error::Unsupported`] for ReLU (not injective).
    /// - [`Error::InvalidParameter`] for a leaky ReLU with slope not finite and `> 0`.
    /// - [`Error::Numerical`] if `y` is outside the image of the activation
    ///   (ELU: `y ≤ −1`; softplus: `y ≤ 0`) or is NaN.
    pub fn inverse(&self, y: f64) -> Result<f64> {
        if y.is_nan() {
            return Err(Error::Numerical(format!(
                "cannot invert {}: input is NaN",
                self.name()
            )));
        }
        match *self {
            Activation::LeakyRelu { slope } => {
                self.validate()?;
                Ok(if y >= 0.0 { y } else { y / slope })
            }
            Activation::Relu => Err(Error::Unsupported(
                "ReLU is not injective and has no inverse".into(),
            )),
            Activation::Elu => {
                if y > 0.0 {
                    Ok(y)
                } else if y > -1.0 {
                    Ok(y.ln_1p())
                } else {
                    Err(Error::Numerical(format!(
                        "ELU inverse needs y > -1, got {y}"
                    )))
                }
            }
            Activation::Softplus => {
                if y > 0.0 {
                    Ok(softplus_inv(y))
                } else {
                    Err(Error::Numerical(format!(
                        "softplus inverse needs y > 0, got {y}"
                    )))
                }
            }
            Activation::SmoothLeakyRelu => {
                if y.is_infinite() {
                    Ok(y)
                } else {
                    Ok(smooth_leaky_inv(y))
                }
            }
        }
    }

    /// Feeds the structure of the activation (name and parameters) into a fingerprint.
    pub(crate) fn fingerprint_into(&self, fp: &mut clica_core::Fingerprint) {
        fp.write_bytes(self.name().as_bytes());
        fp.write_bytes(b";");
        if let Activation::LeakyRelu { slope } = *self {
            fp.write_f64s(&[slope]);
        }
    }
}

impl fmt::Display for Activation {
    /// The name, with the slope for a leaky ReLU: `leaky_relu(0.2)`, `elu`, ….
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::LeakyRelu { slope } => write!(f, "leaky_relu({slope})"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;

    /// Parses `"leaky_relu"` (slope 0.2), `"leaky_relu(0.1)"`, `"relu"`, `"elu"`, `"softplus"`
    /// or `"smooth_leaky_relu"` (case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let a = match t.as_str() {
            "leaky_relu" => Activation::default(),
            "relu" => Activation::Relu,
            "elu" => Activation::Elu,
            "softplus" => Activation::Softplus,
            "smooth_leaky_relu" => Activation::SmoothLeakyRelu,
            _ => {
                let slope = t
                    .strip_prefix("leaky_relu(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|v| v.trim().parse::<f64>().ok());
                match slope {
                    Some(slope) => Activation::leaky_relu(slope)?,
                    None => {
                        return Err(Error::param(
                            "activation",
                            format!(
                                "unknown activation `{s}`; expected one of {}",
                                Activation::NAMES.join(", ")
                            ),
                        ))
                    }
                }
            }
        };
        Ok(a)
    }
}

/// The string form of [`FromStr`] and [`fmt::Display`], with the default leaky ReLU written
/// `"leaky_relu"`.
#[cfg(feature = "serde")]
mod serde_form {
    use super::{Activation, DEFAULT_LEAKY_SLOPE};
    use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for Activation {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match *self {
                Activation::LeakyRelu { slope } if slope == DEFAULT_LEAKY_SLOPE => {
                    s.serialize_str(self.name())
                }
                _ => s.collect_str(self),
            }
        }
    }

    impl<'de> Deserialize<'de> for Activation {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let name = String::deserialize(d)?;
            name.parse().map_err(|e| match e {
                crate::Error::InvalidParameter { reason, .. } => de::Error::custom(reason),
                other => de::Error::custom(other),
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_round_trip() {
            for (a, name) in [
                (Activation::default(), "\"leaky_relu\""),
                (Activation::LeakyRelu { slope: 0.1 }, "\"leaky_relu(0.1)\""),
                (Activation::Relu, "\"relu\""),
                (Activation::Elu, "\"elu\""),
                (Activation::Softplus, "\"softplus\""),
                (Activation::SmoothLeakyRelu, "\"smooth_leaky_relu\""),
            ] {
                assert_eq!(serde_json::to_string(&a).unwrap(), name);
                assert_eq!(serde_json::from_str::<Activation>(name).unwrap(), a);
            }
            let e = serde_json::from_str::<Activation>("\"tanh\"").unwrap_err();
            assert!(e.to_string().contains("unknown activation `tanh`"), "{e}");
            assert!(serde_json::from_str::<Activation>("\"leaky_relu(-1)\"").is_err());
        }
    }
}
