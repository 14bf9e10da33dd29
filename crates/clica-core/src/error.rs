use thiserror::Error as ThisError;

/// Errors shared by every clica crate. Algorithm crates wrap or convert into this type.
#[derive(Debug, ThisError, Clone, PartialEq)]
pub enum Error {
    /// A parameter is outside its valid range (e.g. κ ≤ 0, radius ≤ 0, low ≥ high).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Name of the offending parameter.
        name: String,
        /// Human-readable explanation.
        reason: String,
    },
    /// Two arrays have incompatible shapes.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An input contains NaN or ±∞.
    #[error("non-finite value in {what} at row {row}, column {col}")]
    NonFinite {
        /// What array was being checked.
        what: String,
        /// Row of the first offending entry.
        row: usize,
        /// Column of the first offending entry.
        col: usize,
    },
    /// A numerical routine failed (singular matrix, no convergence, …).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// An operation that the object does not support (e.g. inverting a ReLU network).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
