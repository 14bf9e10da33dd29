use thiserror::Error as ThisError;

/// Errors of the composing crate.
#[derive(Debug, ThisError)]
pub enum Error {
    /// The run configuration is invalid; the message names the field.
    #[error("config: {0}")]
    Config(String),
    /// A component failed (invalid parameter, numerical failure, …).
    #[error(transparent)]
    Core(#[from] clica_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Training diverged: a NaN or ∞ appeared.
    #[error("diverged at step {step}: {what} is not finite")]
    Diverged {
        /// The step (1-based).
        step: u64,
        /// The quantity (loss, gradient, parameters, …).
        what: String,
    },
    /// A checkpoint is missing, malformed, truncated, from another format version, or does
    /// not belong to this run.
    #[error("{path}: cannot resume from this checkpoint: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configuration given for a resumed run differs from the checkpoint's.
    #[error("{0}")]
    ConfigMismatch(String),
    /// The run was stopped (SIGINT/SIGTERM) after a step; a checkpoint was written.
    #[error("interrupted after step {step} of the {phase} phase; {resume}")]
    Interrupted {
        /// Steps completed in the phase.
        step: u64,
        /// `contrastive` or `supervised`.
        phase: String,
        /// How to continue.
        resume: String,
    },
    /// Another live process holds the run folder's lock ([`crate::lock::RunLock`]); the
    /// message names the folder and the holder's process id.
    #[error("{0}")]
    Locked(String),
    /// A data file (an image, an image set's layout) is missing a piece or malformed; the
    /// message names the file.
    #[error("{0}")]
    Data(String),
    /// `--resume` on a run that has already completed.
    #[error("the run in {0} is already complete; nothing to resume")]
    AlreadyComplete(std::path::PathBuf),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
