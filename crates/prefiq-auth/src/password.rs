//! Password hashes: argon2id with explicit parameters, computed off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB (OWASP's argon2id minimum: 19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest accepted password, in bytes: a bound on the work one request can ask for.
pub const MAX_BYTES: usize = 1024;

/// Why a password cannot be hashed or checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than [`MIN_CHARS`] or longer than [`MAX_BYTES`].
    #[error("a password has at least {MIN_CHARS} characters and at most {MAX_BYTES} bytes")]
    Length,
    /// The hashing itself failed (or its blocking task was lost).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn argon2() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks a new password's length.
pub fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_CHARS || password.len() > MAX_BYTES {
        return Err(PasswordError::Length);
    }
    Ok(())
}

/// Hashes a new password (PHC string), on a blocking thread.
pub async fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_length(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt =
            SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
        argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Whether `password` matches the PHC string `hash`, on a blocking thread. An oversized
/// password or an unreadable hash is simply no match.
pub async fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    let (hash, password) = (hash.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, to verify against when a login names no known user, so
/// that such a login costs the same time as a wrong password.
pub async fn decoy_hash() -> String {
    let random: [u8; 24] = rand::random();
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    hash_password(&password).await.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse").await);
        assert!(!verify_password(&hash, "correct horsE").await);
        assert!(!verify_password("not a hash", "correct horse").await);
        // The same password hashes differently each time (a fresh salt).
        assert_ne!(hash, hash_password("correct horse").await.unwrap());
    }

    #[tokio::test]
    async fn lengths_are_bounded() {
        assert_eq!(hash_password("short").await, Err(PasswordError::Length));
        let long = "x".repeat(MAX_BYTES + 1);
        assert_eq!(hash_password(&long).await, Err(PasswordError::Length));
        assert!(!verify_password("$argon2id$v=19$m=19456,t=2,p=1$x$y", &long).await);
    }
}
