//! Tokens from external OpenID Connect issuers: their JWKS documents, and strict
//! verification of the JWTs they sign (RS256 with RSA keys of at least 2048 bits, or
//! EdDSA with Ed25519 keys). Fetching the JWKS is the caller's business: this module
//! knows no HTTP.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::signature::Verifier as _;
use serde::Deserialize;
use serde_json::Value;

use crate::token::{LEEWAY_S, MAX_TOKEN_BYTES, TokenError};

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// At most this many keys in one JWKS document.
pub const MAX_JWKS_KEYS: usize = 50;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A verifying key of an issuer.
#[derive(Clone)]
pub enum PublicKey {
    /// RS256.
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<sha2::Sha256>>),
    /// EdDSA (Ed25519).
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PublicKey::Rsa(_) => "PublicKey::Rsa",
            PublicKey::Ed25519(_) => "PublicKey::Ed25519",
        })
    }
}

/// An issuer's keys, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    keys: BTreeMap<String, PublicKey>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
}

fn b64(text: Option<&str>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text?).ok()
}

impl JwkSet {
    /// Parses a JWKS document. Keys that are not for signatures, have no `kid`, or are of
    /// a type or size this module does not accept are skipped; a document without one
    /// usable key is an error.
    pub fn parse(document: &[u8]) -> Result<JwkSet, TokenError> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(TokenError::Key("the JWKS document is too large".into()));
        }
        let raw: RawJwks = serde_json::from_slice(document)
            .map_err(|e| TokenError::Key(format!("the JWKS document is invalid: {e}")))?;
        let mut keys = BTreeMap::new();
        for jwk in raw.keys.into_iter().take(MAX_JWKS_KEYS) {
            let Some(kid) = jwk.kid.clone() else {
                continue;
            };
            if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let key = match (jwk.kty.as_str(), jwk.alg.as_deref()) {
                ("RSA", None | Some("RS256")) => {
                    let (Some(n), Some(e)) = (b64(jwk.n.as_deref()), b64(jwk.e.as_deref())) else {
                        continue;
                    };
                    let Ok(key) = rsa::RsaPublicKey::new(
                        rsa::BigUint::from_bytes_be(&n),
                        rsa::BigUint::from_bytes_be(&e),
                    ) else {
                        continue;
                    };
                    if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_RSA_BITS {
                        continue;
                    }
                    PublicKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(key)))
                }
                ("OKP", None | Some("EdDSA")) if jwk.crv.as_deref() == Some("Ed25519") => {
                    let Some(x) = b64(jwk.x.as_deref()).and_then(|x| <[u8; 32]>::try_from(x).ok())
                    else {
                        continue;
                    };
                    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&x) else {
                        continue;
                    };
                    PublicKey::Ed25519(key)
                }
                _ => continue,
            };
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err(TokenError::Key(
                "the JWKS document has no usable signing key (RS256 of 2048 bits or more, or Ed25519)".into(),
            ));
        }
        Ok(JwkSet { keys })
    }

    /// Whether the set has a key `kid`.
    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The header and payload of a token, unverified: enough to pick the issuer and key.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// `iss`.
    pub issuer: String,
    /// The header's `kid`.
    pub kid: Option<String>,
}

fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(TokenError::Malformed),
    }
}

fn json(part: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Reads the issuer and key id of `token` without verifying anything.
pub fn peek(token: &str) -> Result<Unverified, TokenError> {
    let (header, payload, _) = split(token)?;
    let header = json(header)?;
    let payload = json(payload)?;
    Ok(Unverified {
        issuer: payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenError::Malformed)?
            .to_owned(),
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Verifies an external token: an accepted algorithm matching the key's type, a known
/// `kid`, the signature, `iss`, an `aud` that is or contains `audience`, `exp` (required)
/// and `nbf`. Returns the claims.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<serde_json::Map<String, Value>, TokenError> {
    let (header_part, payload_part, signature_part) = split(token)?;
    let header: Header =
        serde_json::from_value(json(header_part)?).map_err(|_| TokenError::Malformed)?;
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.keys.get(kid))
        .ok_or(TokenError::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| TokenError::Malformed)?;
    let signing_input = format!("{header_part}.{payload_part}");
    match (header.alg.as_str(), key) {
        ("RS256", PublicKey::Rsa(key)) => {
            let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                .map_err(|_| TokenError::Signature)?;
            key.verify(signing_input.as_bytes(), &signature)
                .map_err(|_| TokenError::Signature)?;
        }
        ("EdDSA", PublicKey::Ed25519(key)) => {
            let signature: [u8; 64] = signature.try_into().map_err(|_| TokenError::Signature)?;
            key.verify_strict(
                signing_input.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .map_err(|_| TokenError::Signature)?;
        }
        (alg, _) => return Err(TokenError::Algorithm(alg.chars().take(16).collect())),
    }
    let Value::Object(claims) = json(payload_part)? else {
        return Err(TokenError::Malformed);
    };
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(TokenError::Issuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenError::Audience);
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenError::Malformed)?;
    if now > exp + LEEWAY_S {
        return Err(TokenError::Expired);
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| now + LEEWAY_S < nbf)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ed_jwk(kid: &str) -> Value {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
    }

    /// Parses `keys` as a JWKS and answers the usable key ids, or the error.
    fn check(keys: Value, expected: Result<&[&str], &str>) {
        let document = serde_json::json!({ "keys": keys }).to_string();
        let got = JwkSet::parse(document.as_bytes())
            .map(|set| set.keys.keys().cloned().collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected),
            (Err(got), Err(expected)) => assert!(got.contains(expected), "{got}"),
            (got, expected) => panic!("{got:?} vs {expected:?}"),
        }
    }

    #[test]
    fn jwks_documents() {
        let small_rsa = serde_json::json!({"kty": "RSA", "kid": "small", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128]), "e": "AQAB"});
        let mut encryption = ed_jwk("enc");
        encryption["use"] = "enc".into();
        let mut no_kid = ed_jwk("x");
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut wrong_alg = ed_jwk("hs");
        wrong_alg["alg"] = "HS256".into();
        check(
            serde_json::json!([ed_jwk("a"), ed_jwk("b")]),
            Ok(&["a", "b"]),
        );
        check(serde_json::json!([ed_jwk("a"), small_rsa]), Ok(&["a"]));
        check(
            serde_json::json!([ed_jwk("a"), encryption, no_kid, wrong_alg]),
            Ok(&["a"]),
        );
        check(
            serde_json::json!([{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]),
            Err("no usable signing key"),
        );
        check(serde_json::json!("not a list"), Err("invalid"));
        let huge = vec![ed_jwk("a"); 3000];
        check(serde_json::json!(huge), Err("too large"));
    }

    #[test]
    fn tokens_are_checked_strictly() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let keys = JwkSet::parse(
            serde_json::json!({"keys": [ed_jwk("k1")]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let sign = |header: Value, claims: Value| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = ed25519_dalek::Signer::sign(&key, input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
        };
        let header = serde_json::json!({"alg": "EdDSA", "kid": "k1"});
        let claims = serde_json::json!({"iss": "https://idp", "aud": "app", "exp": 1000});
        let check = |token: &str, expected: Result<(), TokenError>| {
            assert_eq!(
                verify(token, &keys, "https://idp", "app", 900).map(|_| ()),
                expected,
                "{token}"
            );
        };
        check(&sign(header.clone(), claims.clone()), Ok(()));
        check(
            &sign(
                header.clone(),
                serde_json::json!({"iss": "https://idp", "aud": ["x", "app"], "exp": 1000}),
            ),
            Ok(()),
        );
        check(
            &sign(
                header.clone(),
                serde_json::json!({"iss": "https://other", "aud": "app", "exp": 1000}),
            ),
            Err(TokenError::Issuer),
        );
        check(
            &sign(
                header.clone(),
                serde_json::json!({"iss": "https://idp", "aud": "x", "exp": 1000}),
            ),
            Err(TokenError::Audience),
        );
        check(
            &sign(
                header.clone(),
                serde_json::json!({"iss": "https://idp", "aud": "app"}),
            ),
            Err(TokenError::Malformed),
        );
        check(
            &sign(
                header.clone(),
                serde_json::json!({"iss": "https://idp", "aud": "app", "exp": 800}),
            ),
            Err(TokenError::Expired),
        );
        check(
            &sign(
                header.clone(),
                serde_json::json!({"iss": "https://idp", "aud": "app", "exp": 2000, "nbf": 1000}),
            ),
            Err(TokenError::NotYetValid),
        );
        check(
            &sign(
                serde_json::json!({"alg": "EdDSA", "kid": "k2"}),
                claims.clone(),
            ),
            Err(TokenError::UnknownKey),
        );
        check(
            &sign(
                serde_json::json!({"alg": "RS256", "kid": "k1"}),
                claims.clone(),
            ),
            Err(TokenError::Algorithm("RS256".into())),
        );
        check(
            &sign(
                serde_json::json!({"alg": "none", "kid": "k1"}),
                claims.clone(),
            ),
            Err(TokenError::Algorithm("none".into())),
        );
        check("a.b", Err(TokenError::Malformed));
        let good = sign(header, claims);
        let (input, _) = good.rsplit_once('.').unwrap();
        check(
            &format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
            Err(TokenError::Signature),
        );
    }
}
