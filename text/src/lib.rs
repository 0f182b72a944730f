//! Prism's prompts: a real sentence encoder (all-MiniLM-L6-v2, shipped as int8) and routing a
//! typed request to tools by meaning, with today's keyword matcher kept as the baseline it is
//! measured against.

pub mod compact;
pub mod encoder;
pub mod error;
pub mod keywords;
pub mod look;
pub mod prompter;
pub mod request;
pub mod router;

pub use encoder::{Embedding, SentenceEncoder};
pub use error::{Result, TextError};
pub use prompter::{Chosen, Prompter};
pub use router::{Choice, Router, Routing};
