//! Publishers' keys, the `SIGNATURE` entry, and whom an installation trusts.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::PackageError;

/// The prefix of a public key's text.
const PUBLIC_PREFIX: &str = "ed25519:";
/// The prefix of a secret key's text.
const SECRET_PREFIX: &str = "ed25519-secret:";

/// A publisher key pair's public half, as text `ed25519:<base64 of its 32 bytes>`: what an
/// installation lists in `plugins.trusted_keys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The Ed25519 key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// The public half of a secret key.
    pub fn of(key: &SigningKey) -> PublicKey {
        PublicKey(key.verifying_key())
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> PublicKey {
        PublicKey(key)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

impl FromStr for PublicKey {
    type Err = PackageError;

    fn from_str(text: &str) -> Result<PublicKey, PackageError> {
        let text = text.trim();
        let bad = |why: &str| PackageError::Key(format!("public key {text:?} {why}"));
        let encoded = text
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| bad("must be written ed25519:<base64>"))?;
        let bytes: [u8; 32] = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| bad("is not the base64 of 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("is not an Ed25519 point"))?;
        if key.is_weak() {
            return Err(bad("is a weak key (of small order)"));
        }
        Ok(PublicKey(key))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Generates a publisher's key pair from the thread's cryptographic random generator:
/// the secret key's file text (`ed25519-secret:<base64 of 32 bytes>`, with a newline) and
/// the public key.
pub fn generate_key() -> (String, PublicKey) {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let text = format!("{SECRET_PREFIX}{}\n", STANDARD.encode(key.as_bytes()));
    (text, PublicKey::of(&key))
}

/// Reads a secret key's text as [`generate_key`] writes it (surrounding whitespace is
/// ignored). The error never repeats the text.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, PackageError> {
    let encoded = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        PackageError::Key(format!(
            "a secret key must be written {SECRET_PREFIX}<base64>"
        ))
    })?;
    let bytes: [u8; 32] = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| PackageError::Key("the secret key is not the base64 of 32 bytes".into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Whom an installation trusts to publish plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// The publishers' keys whose signatures are accepted.
    pub keys: Vec<PublicKey>,
    /// Whether unsigned packages are accepted (development only). A signed package must
    /// still verify under a listed key.
    pub allow_unsigned: bool,
}

/// The `SIGNATURE` entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    key: String,
    signature: String,
}

/// The `SIGNATURE` entry of `key`'s signature over `manifest` (the bytes of
/// `MANIFEST.json`).
pub(super) fn signature_file(key: &SigningKey, manifest: &[u8]) -> Result<Vec<u8>, PackageError> {
    let file = SignatureFile {
        key: STANDARD.encode(key.verifying_key().as_bytes()),
        signature: STANDARD.encode(key.sign(manifest).to_bytes()),
    };
    serde_json::to_vec(&file).map_err(|e| PackageError::Malformed(format!("SIGNATURE: {e}")))
}

/// Checks `signature` (the `SIGNATURE` entry, `None` when unsigned) over `manifest`
/// against `trust`: the signer, when there is one.
pub(super) fn verify(
    manifest: &[u8],
    signature: Option<&[u8]>,
    trust: &TrustPolicy,
) -> Result<Option<PublicKey>, PackageError> {
    let Some(signature) = signature else {
        return if trust.allow_unsigned {
            Ok(None)
        } else {
            Err(PackageError::Unsigned)
        };
    };
    let key = verified_signer(manifest, signature)?;
    if !trust.keys.contains(&key) {
        return Err(PackageError::Untrusted(key.to_string()));
    }
    Ok(Some(key))
}

/// The key `signature` names, once the signature verifies over `manifest` under it;
/// whether that key is trusted is the caller's question.
pub(super) fn verified_signer(
    manifest: &[u8],
    signature: &[u8],
) -> Result<PublicKey, PackageError> {
    let bad = |why: String| PackageError::BadSignature(format!("SIGNATURE {why}"));
    let file: SignatureFile = serde_json::from_slice(signature)
        .map_err(|e| bad(format!("is not {{\"key\", \"signature\"}} JSON: {e}")))?;
    let key: [u8; 32] = STANDARD
        .decode(&file.key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| bad("key is not the base64 of 32 bytes".into()))?;
    let key = PublicKey(
        VerifyingKey::from_bytes(&key).map_err(|_| bad("key is not an Ed25519 point".into()))?,
    );
    let bytes: [u8; 64] = STANDARD
        .decode(&file.signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| bad("signature is not the base64 of 64 bytes".into()))?;
    key.0
        .verify_strict(manifest, &Signature::from_bytes(&bytes))
        .map_err(|_| bad(format!("does not verify MANIFEST.json under its key {key}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn public_keys_round_trip_as_text() {
        let (secret, public) = generate_key();
        assert!(secret.starts_with("ed25519-secret:") && secret.ends_with('\n'));
        let text = public.to_string();
        assert!(text.starts_with("ed25519:"), "{text}");
        assert_eq!(text.parse::<PublicKey>().ok(), Some(public));
        assert_eq!(format!(" {text}\n").parse::<PublicKey>().ok(), Some(public));
        let parsed = parse_secret_key(&secret).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(PublicKey::of(&parsed), public);
        let json = serde_json::to_string(&public).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json, format!("{text:?}"));
        let back: PublicKey = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, public);
        assert_ne!(generate_key().1, public);
    }

    #[test]
    fn bad_keys_are_refused() {
        let identity = format!(
            "ed25519:{}",
            STANDARD.encode({
                let mut b = [0u8; 32];
                b[0] = 1;
                b
            })
        );
        for (text, fragment) in [
            ("", "must be written ed25519:<base64>"),
            ("ssh-ed25519 AAAA", "must be written ed25519:<base64>"),
            ("ed25519:!!!", "not the base64 of 32 bytes"),
            ("ed25519:AAAA", "not the base64 of 32 bytes"),
            (identity.as_str(), "weak key"),
        ] {
            match text.parse::<PublicKey>() {
                Err(e @ PackageError::Key(_)) => {
                    assert!(e.to_string().contains(fragment), "{text} → {e}")
                }
                got => panic!("{text} → {got:?}"),
            }
        }
        let secret = STANDARD.encode([9u8; 31]);
        for text in [
            secret.clone(),
            format!("ed25519-secret:{secret}"),
            format!("ed25519:{}", STANDARD.encode([9u8; 32])),
        ] {
            match parse_secret_key(&text) {
                Err(e @ PackageError::Key(_)) => {
                    assert!(
                        !e.to_string().contains(&secret),
                        "the error repeats the secret: {e}"
                    )
                }
                got => panic!("{text} → {got:?}"),
            }
        }
    }

    #[test]
    fn signatures_are_verified_against_the_trust_policy() {
        let manifest = br#"{"format":1}"#;
        let (a, b) = (key(1), key(2));
        let signed = signature_file(&a, manifest).unwrap_or_else(|e| panic!("{e}"));
        let trusting = |keys: Vec<PublicKey>, allow_unsigned| TrustPolicy {
            keys,
            allow_unsigned,
        };
        let swapped = String::from_utf8_lossy(&signed)
            .replace(
                &STANDARD.encode(a.verifying_key().as_bytes()),
                &STANDARD.encode(b.verifying_key().as_bytes()),
            )
            .into_bytes();
        let a_key = PublicKey::of(&a);
        for (signature, manifest, trust, expected) in [
            (
                Some(&signed[..]),
                &manifest[..],
                trusting(vec![a_key], false),
                Ok(Some(a_key)),
            ),
            (
                None,
                manifest,
                trusting(vec![a_key], false),
                Err("not signed".to_owned()),
            ),
            (None, manifest, trusting(vec![], true), Ok(None)),
            (
                Some(&signed),
                manifest,
                trusting(vec![PublicKey::of(&b)], true),
                Err(format!("signed by {a_key}, which")),
            ),
            (
                Some(&signed),
                b"{\"format\":2}",
                trusting(vec![a_key], false),
                Err("does not verify".into()),
            ),
            (
                Some(&swapped),
                manifest,
                trusting(vec![a_key, PublicKey::of(&b)], true),
                Err("does not verify".into()),
            ),
            (
                Some(b"{}"),
                manifest,
                trusting(vec![a_key], true),
                Err("is not {\"key\", \"signature\"} JSON".into()),
            ),
            (
                Some(br#"{"key":"AAAA","signature":""}"#),
                manifest,
                trusting(vec![a_key], true),
                Err("key is not the base64 of 32 bytes".into()),
            ),
        ] {
            match (verify(manifest, signature, &trust), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(e), Err(fragment)) => assert!(
                    e.to_string().contains(&fragment),
                    "{e}, wanted {fragment:?}"
                ),
                (got, want) => panic!("{got:?}, wanted {want:?}"),
            }
        }
    }
}
