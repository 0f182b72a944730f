use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("the sentence encoder in {path} cannot be used: {message}")]
    Encoder { path: PathBuf, message: String },
    #[error("{0}")]
    Prompt(String),
    #[error(transparent)]
    Engine(#[from] prism_engine::EngineError),
    #[error("the sentence encoder failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("tokenizing the prompt failed: {0}")]
    Tokenizer(String),
}

pub type Result<T> = std::result::Result<T, TextError>;
