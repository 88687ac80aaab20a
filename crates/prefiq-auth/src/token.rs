//! Access tokens: compact JWS (RFC 7515) JWTs signed with Ed25519 (`alg: EdDSA`).
//!
//! Verification is strict: the header must say exactly `EdDSA` (so `none` and any HMAC
//! confusion are refused before the signature is looked at), the key id must be ours, the
//! signature must verify, and `iss`, `exp` and `nbf` are checked against the clock with a
//! small leeway. A token is bound to one tenant (`tenant` claim) and carries its user's
//! session epoch (`epoch` claim), which the issuer compares with the user's current one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_S: i64 = 30;

/// Why a token was refused. The message is safe to show to the caller.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts of JSON, or too long.
    #[error("the token is malformed")]
    Malformed,
    /// The header names another algorithm (`none`, `HS256`, ...).
    #[error("the token's algorithm `{0}` is not accepted")]
    Algorithm(String),
    /// Signed by a key we do not know.
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// Issued by someone else.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// Meant for another audience.
    #[error("the token was issued for another audience")]
    Audience,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Not valid yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The key material is unusable.
    #[error("invalid signing key: {0}")]
    Key(String),
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user's id.
    pub sub: String,
    /// The tenant the token was issued for.
    pub tenant: String,
    /// The user's roles when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user's attributes (for record rules) when the token was issued.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attrs: std::collections::BTreeMap<String, serde_json::Value>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// The user's session epoch when the token was issued. The issuer bumps a user's
    /// epoch when something must end the user's tokens at once (a logout, a password
    /// change or reset, a change of roles, attributes or status), and refuses a token
    /// whose epoch is not the current one; tokens made before epochs existed read 0.
    #[serde(default)]
    pub epoch: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// The Ed25519 key that signs and checks access tokens.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
    issuer: String,
}

impl std::fmt::Debug for SigningKey {
    /// Shows the key id, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from its 32-byte seed; the key id is derived from the public key.
    pub fn from_seed(seed: &[u8], issuer: &str) -> Result<Self, TokenError> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| TokenError::Key("an Ed25519 seed is 32 bytes".into()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let digest = Sha256::digest(key.verifying_key().as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
        Ok(SigningKey {
            key,
            kid,
            issuer: issuer.to_owned(),
        })
    }

    /// A fresh random seed.
    pub fn generate_seed() -> [u8; 32] {
        rand::random()
    }

    /// A 32-byte secret for `purpose` (such as `desk csrf`), derived from this key's seed
    /// with HMAC-SHA-256: every replica that holds the key derives the same secret, and
    /// no secret tells anything about the key or about another purpose's secret.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(self.key.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"prefiq derived secret\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key id written in each token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, base64url (for a JWKS document).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// Signs `claims` (whose `iss` is replaced by this key's issuer).
    pub fn issue(&self, mut claims: AccessClaims) -> String {
        claims.iss.clone_from(&self.issuer);
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: Some(self.kid.clone()),
        };
        let signing_input = format!("{}.{}", b64_json(&header), b64_json(&claims));
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// Checks `token` at time `now` (Unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let signing_input = format!("{header}.{payload}");
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        if header.alg != "EdDSA" {
            return Err(TokenError::Algorithm(header.alg.chars().take(16).collect()));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        let signature: [u8; 64] = decode(signature)?
            .try_into()
            .map_err(|_| TokenError::Signature)?;
        self.key
            .verifying_key()
            .verify(signing_input.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| TokenError::Signature)?;
        let claims: AccessClaims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if now > claims.exp + LEEWAY_S {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY_S < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// A value as base64url-encoded JSON.
fn b64_json<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7u8; 32], "codexion").unwrap()
    }

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: String::new(),
            sub: "u1".into(),
            tenant: "acme".into(),
            roles: vec!["System Manager".into()],
            attrs: Default::default(),
            iat: now,
            nbf: now,
            exp: now + 900,
            jti: "j1".into(),
            epoch: 0,
        }
    }

    fn forge(header: &str, payload: &AccessClaims, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap())
        )
    }

    /// Verifies `token` at `now` with the test key: the tenant, or the error.
    fn check(token: &str, now: i64, expected: Result<&str, TokenError>) {
        let got = key().verify(token, now).map(|c| c.tenant);
        assert_eq!(got.as_deref().map_err(Clone::clone), expected, "{token}");
    }

    #[test]
    fn derived_secrets_differ_by_purpose_and_key() {
        let a = key().derive_secret("desk csrf");
        assert_eq!(a, key().derive_secret("desk csrf"));
        assert_ne!(a, key().derive_secret("something else"));
        let other = SigningKey::from_seed(&[8u8; 32], "codexion").unwrap();
        assert_ne!(a, other.derive_secret("desk csrf"));
        assert_ne!(&a, other.key.as_bytes());
    }

    #[test]
    fn tokens() {
        let now = 1_800_000_000;
        let good = key().issue(claims(now));
        check(&good, now, Ok("acme"));
        check(&good, now + 900 + LEEWAY_S, Ok("acme"));
        check(&good, now + 901 + LEEWAY_S, Err(TokenError::Expired));
        check(&good, now - LEEWAY_S - 1, Err(TokenError::NotYetValid));
        check("", now, Err(TokenError::Malformed));
        check("a.b", now, Err(TokenError::Malformed));
        check("a.b.c.d", now, Err(TokenError::Malformed));
        check(&format!("{good}x"), now, Err(TokenError::Malformed));
        let (unsigned, _) = good.rsplit_once('.').unwrap();
        let zeros = URL_SAFE_NO_PAD.encode([0u8; 64]);
        check(
            &format!("{unsigned}.{zeros}"),
            now,
            Err(TokenError::Signature),
        );

        // alg=none with an empty signature, and an HMAC header: refused before any key use.
        let kid = key().kid().to_owned();
        let none = forge(r#"{"alg":"none","typ":"JWT"}"#, &claims(now), "");
        check(&none, now, Err(TokenError::Algorithm("none".into())));
        let hs = forge(r#"{"alg":"HS256"}"#, &claims(now), "AAAA");
        check(&hs, now, Err(TokenError::Algorithm("HS256".into())));

        // A tampered payload (another tenant) under the original signature.
        let signature = good.rsplit('.').next().unwrap();
        let mut other = claims(now);
        other.tenant = "globex".into();
        let tampered = forge(
            &format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#),
            &other,
            signature,
        );
        check(&tampered, now, Err(TokenError::Signature));

        // Another key, and another issuer.
        let stranger = SigningKey::from_seed(&[8u8; 32], "codexion").unwrap();
        check(
            &stranger.issue(claims(now)),
            now,
            Err(TokenError::UnknownKey),
        );
        let elsewhere = SigningKey::from_seed(&[7u8; 32], "elsewhere").unwrap();
        check(&elsewhere.issue(claims(now)), now, Err(TokenError::Issuer));
        check(
            &"x".repeat(MAX_TOKEN_BYTES + 1),
            now,
            Err(TokenError::Malformed),
        );
    }

    proptest::proptest! {
        /// Flipping any one byte of a token makes it invalid.
        #[test]
        fn any_changed_byte_is_refused(position in 0usize..400, bit in 0u8..8) {
            let now = 1_800_000_000;
            let token = key().issue(claims(now));
            let mut bytes = token.clone().into_bytes();
            let i = position % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(changed) = String::from_utf8(bytes) {
                // Base64 has spare bits in its last character: a flip there may decode
                // to the same bytes, which is the same token, not a forgery.
                let same = URL_SAFE_NO_PAD.decode(changed.split('.').nth(2).unwrap_or(""))
                    .ok() == URL_SAFE_NO_PAD.decode(token.split('.').nth(2).unwrap_or("")).ok()
                    && changed.split('.').take(2).eq(token.split('.').take(2));
                if !same {
                    proptest::prop_assert!(key().verify(&changed, now).is_err());
                }
            }
        }
    }
}
