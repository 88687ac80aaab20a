//! Identity mechanisms, free of HTTP and of any database: argon2id password hashes
//! ([`password`]) and EdDSA-signed access tokens ([`token`]). Who the users are and where
//! they are stored is cortex's business; this crate only proves and checks.

pub mod password;
pub mod token;

pub use password::{PasswordError, hash_password, verify_password};
pub use token::{AccessClaims, SigningKey, TokenError};
