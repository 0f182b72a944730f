//! The engine's error type: every variant reads as a sentence a user can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Image(String),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Adapter(String),
    #[error("{0}")]
    Job(String),
    /// A backend could not start or run (no GPU, a device lost, a limit exceeded).
    #[error("{0}")]
    Backend(String),
    #[error("the job was cancelled")]
    Cancelled,
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl EngineError {
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File { path: path.into(), message: message.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
