//! Identity mechanisms, free of HTTP and of any database: argon2id password hashes
//! ([`password`]), EdDSA-signed access tokens ([`token`]) and Cedar authorization
//! compiled from the entity schemas' permissions blocks ([`authz`]). Who the users are and
//! where they and their policies are stored is cortex's business; this crate only proves,
//! checks and decides.

pub mod authz;
pub mod oidc;
pub mod password;
pub mod token;

pub use authz::{CedarAuthorizer, Decision, Model, PolicyStore, TenantPolicy};
pub use password::{PasswordError, hash_password, verify_password};
pub use token::{AccessClaims, SigningKey, TokenError};
