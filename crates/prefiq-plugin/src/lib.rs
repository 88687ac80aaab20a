//! Codexion's plugins, below the application: the manifest (`plugin.yml`), the signed
//! package (`.cxp`), and the wasmtime sandbox that runs a plugin's component against the
//! `codexion:plugin` WIT world.
//!
//! This crate knows nothing of entities, tenants' data or HTTP: what a plugin may reach is
//! the [`sandbox::Host`] trait, which the plugins app implements on the repository. So the
//! sandbox can be tested, and its limits measured, without a database.

pub mod manifest;
pub mod package;
pub mod registry;
pub mod sandbox;
pub mod testing;

pub use manifest::PluginManifest;
pub use package::PackageError;

/// The WIT world plugins are built against (`codexion:plugin@0.1.0`).
pub const WIT: &str = include_str!("../wit/plugin.wit");

/// What went wrong with a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// `plugin.yml` is malformed or asks for something it may not.
    #[error("{0}")]
    Manifest(String),
    /// A tenant's settings do not fit the plugin's config schema.
    #[error("config: {0}")]
    Config(String),
    /// The package is unreadable, tampered with, unsigned or untrusted.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The module is not a valid plugin for the `codexion:plugin` world.
    #[error("plugin {plugin}: {message}")]
    Invalid {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// A call into the plugin failed: it trapped, ran out of its instruction budget or
    /// its memory, or answered something the host cannot read.
    #[error("plugin {plugin}: {failure}")]
    Call {
        /// The plugin.
        plugin: String,
        /// What happened.
        failure: CallFailure,
    },
}

/// How a call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallFailure {
    /// It used its whole instruction budget.
    #[error("ran out of its instruction budget ({fuel} instructions)")]
    Budget {
        /// The budget.
        fuel: u64,
    },
    /// It ran past its wall-clock deadline.
    #[error("ran past its deadline of {deadline_ms} ms")]
    Deadline {
        /// The deadline.
        deadline_ms: u64,
    },
    /// It asked for more memory than its cap.
    #[error("ran out of memory (its cap is {cap_bytes} bytes)")]
    Memory {
        /// The cap.
        cap_bytes: u64,
    },
    /// It trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// It answered something that is not what the world says.
    #[error("answered badly: {0}")]
    BadAnswer(String),
    /// Its circuit breaker is open after repeated failures.
    #[error(
        "is suspended for this tenant after {failures} failures in a row; it is retried in {retry_in_ms} ms"
    )]
    Suspended {
        /// The failures that opened it.
        failures: u32,
        /// When it is tried again.
        retry_in_ms: u64,
    },
}
