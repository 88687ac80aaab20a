//! The kernel's error type.

use std::fmt;

/// What kind of failure an error is, without saying how a transport reports it.
///
/// Only `prefiq-http` maps kinds to HTTP status codes; the kernel and apps speak in kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input was malformed or failed validation.
    Invalid,
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// The write conflicts with the current state (version mismatch, duplicate key).
    Conflict,
    /// The caller is known but not allowed to do this.
    Forbidden,
    /// The caller is not known.
    Unauthenticated,
    /// A dependency (database, broker) is not available right now.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

/// An error raised while configuring, booting or running the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The module graph cannot be ordered.
    #[error(transparent)]
    Modules(#[from] crate::module::ModuleGraphError),
    /// A service was asked for that nobody bound.
    #[error("service `{service}` is not bound (requested by {requested_by})")]
    MissingService {
        /// The type name of the service.
        service: &'static str,
        /// Who asked for it: a provider, a hook or a command.
        requested_by: String,
    },
    /// A service was bound twice.
    #[error("service `{service}` is bound twice (second binding by {bound_by})")]
    DuplicateService {
        /// The type name of the service.
        service: &'static str,
        /// The provider that tried to bind it again.
        bound_by: String,
    },
    /// A provider failed to boot or shut down.
    #[error("provider `{provider}` failed to {phase}: {message}")]
    Provider {
        /// The provider's name.
        provider: String,
        /// `boot` or `shutdown`.
        phase: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A lifecycle hook failed.
    #[error("{hook} hook of module `{module}` failed: {message}")]
    Hook {
        /// The lifecycle point.
        hook: &'static str,
        /// The module that registered the hook.
        module: String,
        /// What went wrong.
        message: String,
    },
    /// A migration could not be planned or applied.
    #[error("migration error: {0}")]
    Migration(String),
    /// Two modules claim the same route.
    #[error("route {method} {path} is declared by both `{first}` and `{second}`")]
    RouteConflict {
        /// HTTP method.
        method: String,
        /// Route path.
        path: String,
        /// The module that declared it first.
        first: String,
        /// The module that declared it again.
        second: String,
    },
    /// A failure described by its kind and a message, raised by a service.
    #[error("{message}")]
    Service {
        /// What kind of failure it is.
        kind: ErrorKind,
        /// A sentence for the caller.
        message: String,
    },
}

impl KernelError {
    /// A service failure of the given kind.
    pub fn service(kind: ErrorKind, message: impl fmt::Display) -> Self {
        KernelError::Service {
            kind,
            message: message.to_string(),
        }
    }

    /// The kind of this error, for transports that map kinds to their own codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KernelError::Config(_) | KernelError::Modules(_) => ErrorKind::Invalid,
            KernelError::Service { kind, .. } => *kind,
            _ => ErrorKind::Internal,
        }
    }
}
