//! The memory app's errors, and how the API shows them.

use prefiq_data::entity::repo::{FieldError, RepoError};
use prefiq_http::Problem;

/// What can go wrong in the memory app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The repository refused or failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The vector index failed.
    #[error("the memory index failed: {0}")]
    Index(String),
    /// The embedding model failed.
    #[error("the embedding model failed: {0}")]
    Embed(String),
    /// The tokenizer asked for is not available.
    #[error("{0}")]
    Tokenizer(String),
}

impl MemoryError {
    /// An invalid-input error at `pointer`.
    pub fn invalid(
        pointer: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        MemoryError::Repo(RepoError::Invalid(vec![FieldError {
            pointer: pointer.into(),
            code,
            message: message.into(),
        }]))
    }
}

impl From<FieldError> for MemoryError {
    fn from(e: FieldError) -> Self {
        MemoryError::Repo(RepoError::Invalid(vec![e]))
    }
}

impl From<MemoryError> for Problem {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Repo(e) => Problem::from(e),
            MemoryError::Tokenizer(message) => {
                Problem::from(RepoError::Invalid(vec![FieldError {
                    pointer: "/tokenizer".into(),
                    code: "unknown_tokenizer",
                    message,
                }]))
            }
            other => Problem::from(prefiq::KernelError::service(
                prefiq::ErrorKind::Internal,
                other.to_string(),
            )),
        }
    }
}
