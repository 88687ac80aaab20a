//! Single sign-on: bearer JWTs from the external OpenID Connect issuers configured under
//! `cortex.oidc`, each bound to one tenant. Their keys come from the issuer's JWKS
//! (`jwks_uri` over HTTPS or HTTP, or `jwks_file`), cached and fetched again when a token
//! names a key the cache does not have (at most once per `jwks_refresh_interval_s`). The
//! token's email claim names the user; with `provision` a user that does not exist yet is
//! created with the issuer's `default_roles` (and no usable password).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use prefiq::{ErrorKind, KernelError};
use prefiq_auth::AccessClaims;
use prefiq_data::entity::sql::{Sql, SqlType};

use crate::db::Cells;

use crate::identity::{Identity, IdentityError, normalise_email};
use prefiq_auth::oidc::{self, JwkSet, MAX_JWKS_BYTES};
use serde::Deserialize;

/// How often, by default, an unknown key id may make an issuer's JWKS be fetched again.
pub const JWKS_REFRESH_INTERVAL_S: u64 = 10;

/// How long a fetched JWKS is used before it is fetched again.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// How long a JWKS fetch may take.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// One external issuer, as configured.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry (or contain).
    pub audience: String,
    /// The tenant its users belong to.
    pub tenant: String,
    /// Where its JWKS is served (`https://`, or `http://` on a trusted network).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A file holding its JWKS, relative to the installation root.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The claim holding the user's email.
    #[serde(default = "email_claim")]
    pub email_claim: String,
    /// Create a user on first sign-in.
    #[serde(default)]
    pub provision: bool,
    /// The roles of a provisioned user.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// The least time between two fetches of the JWKS caused by unknown key ids, so
    /// that tokens with made-up key ids cannot make us hammer the issuer.
    #[serde(default = "refresh_interval_s")]
    pub jwks_refresh_interval_s: u64,
}

fn email_claim() -> String {
    "email".into()
}

fn refresh_interval_s() -> u64 {
    JWKS_REFRESH_INTERVAL_S
}

impl OidcIssuerConfig {
    /// Checks the entry; the message names the issuer.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.issuer;
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err("an OIDC issuer needs `issuer` and `audience`".into());
        }
        if !prefiq::context::is_tenant_name(&self.tenant) {
            return Err(format!("OIDC issuer {name}: `tenant` is not a tenant name"));
        }
        match (&self.jwks_uri, &self.jwks_file) {
            (Some(uri), None) if uri.starts_with("https://") || uri.starts_with("http://") => {
                Ok(())
            }
            (Some(_), None) => Err(format!(
                "OIDC issuer {name}: `jwks_uri` must be an https:// (or http://) URL"
            )),
            (None, Some(_)) => Ok(()),
            _ => Err(format!(
                "OIDC issuer {name}: give exactly one of `jwks_uri` and `jwks_file`"
            )),
        }
    }
}

/// An issuer with its cached keys.
pub struct ExternalIssuer {
    /// What was configured.
    pub config: OidcIssuerConfig,
    root: PathBuf,
    keys: tokio::sync::Mutex<Option<(JwkSet, Instant)>>,
}

fn unavailable(message: String) -> KernelError {
    KernelError::service(ErrorKind::Unauthenticated, message)
}

impl ExternalIssuer {
    /// The issuer of `config`, reading `jwks_file` relative to `root`.
    pub fn new(config: OidcIssuerConfig, root: PathBuf) -> Self {
        ExternalIssuer {
            config,
            root,
            keys: tokio::sync::Mutex::new(None),
        }
    }

    /// The issuer's keys, with key `kid`: fetched when there are none, when they are
    /// older than [`JWKS_MAX_AGE`], or when `kid` is unknown and the last fetch is older
    /// than `jwks_refresh_interval_s`.
    pub async fn keys(&self, kid: Option<&str>) -> Result<JwkSet, KernelError> {
        let mut cached = self.keys.lock().await;
        let stale = match cached.as_ref() {
            None => true,
            Some((keys, fetched)) => {
                fetched.elapsed() > JWKS_MAX_AGE
                    || (kid.is_some_and(|k| !keys.has(k))
                        && fetched.elapsed()
                            > Duration::from_secs(self.config.jwks_refresh_interval_s))
            }
        };
        if stale {
            match self.fetch().await {
                Ok(keys) => *cached = Some((keys, Instant::now())),
                // Keep serving the keys we have when a refresh fails.
                Err(e) if cached.is_some() => {
                    tracing::warn!(target: "cortex::sso", issuer = %self.config.issuer, error = %e, "JWKS refresh failed");
                }
                Err(e) => return Err(e),
            }
        }
        cached
            .as_ref()
            .map(|(keys, _)| keys.clone())
            .ok_or_else(|| unavailable("the issuer's keys are not available".into()))
    }

    async fn fetch(&self) -> Result<JwkSet, KernelError> {
        let document = match (&self.config.jwks_uri, &self.config.jwks_file) {
            (Some(uri), _) => fetch_http(uri).await?,
            (None, Some(file)) => {
                let path = self.root.join(file);
                tokio::fs::read(&path)
                    .await
                    .map_err(|e| unavailable(format!("{}: {e}", path.display())))?
            }
            (None, None) => return Err(unavailable("the issuer has no JWKS source".into())),
        };
        let keys = JwkSet::parse(&document).map_err(|e| unavailable(e.to_string()))?;
        tracing::info!(target: "cortex::sso", issuer = %self.config.issuer, keys = keys.len(), "JWKS fetched");
        Ok(keys)
    }

    /// Verifies `token` as this issuer's and returns its claims.
    pub async fn verify(
        &self,
        token: &str,
        now: i64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, KernelError> {
        let kid = oidc::peek(token)
            .map_err(|e| unavailable(e.to_string()))?
            .kid;
        let keys = self.keys(kid.as_deref()).await?;
        oidc::verify(
            token,
            &keys,
            &self.config.issuer,
            &self.config.audience,
            now,
        )
        .map_err(|e| unavailable(e.to_string()))
    }
}

/// GETs `uri` (https, or http for an issuer on a trusted network), with a timeout and a
/// size bound. Certificates are checked against Mozilla's roots, compiled in.
async fn fetch_http(uri: &str) -> Result<Vec<u8>, KernelError> {
    let failed = |what: String| unavailable(format!("JWKS {uri}: {what}"));
    let parsed: hyper::Uri = uri.parse().map_err(|e| failed(format!("{e}")))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<axum::body::Bytes>>(connector);
    let response = tokio::time::timeout(JWKS_TIMEOUT, client.get(parsed))
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    let body = tokio::time::timeout(
        JWKS_TIMEOUT,
        http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
    )
    .await
    .map_err(|_| failed("timed out".into()))?
    .map_err(|e| failed(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

impl Identity {
    /// The same service, accepting tokens of `issuers` too.
    pub fn with_issuers(mut self, issuers: Vec<ExternalIssuer>) -> Self {
        self.issuers = issuers;
        self
    }

    /// The configured external issuer a token names, if any.
    pub(crate) fn external_issuer(&self, bearer: &str) -> Option<&ExternalIssuer> {
        if self.issuers.is_empty() {
            return None;
        }
        let peeked = prefiq_auth::oidc::peek(bearer).ok()?;
        self.issuers
            .iter()
            .find(|issuer| issuer.config.issuer == peeked.issuer)
    }

    /// Verifies an external token and maps it to a user of the issuer's tenant (made on
    /// first sign-in when the issuer provisions), as the claims of a session token.
    pub(crate) async fn external_claims(
        &self,
        issuer: &ExternalIssuer,
        bearer: &str,
        now: i64,
    ) -> Result<AccessClaims, KernelError> {
        let refused = |message: String| KernelError::service(ErrorKind::Unauthenticated, message);
        let claims = issuer.verify(bearer, now).await?;
        let config = &issuer.config;
        if claims
            .get("email_verified")
            .and_then(serde_json::Value::as_bool)
            == Some(false)
        {
            return Err(refused(
                "the identity provider has not verified the email".into(),
            ));
        }
        let email = claims
            .get(&config.email_claim)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| refused(format!("the token has no `{}` claim", config.email_claim)))?;
        let email = normalise_email(email).map_err(|e| refused(e.to_string()))?;
        let tenant = &config.tenant;
        type Row = (String, String, String, String, i64);
        let sql = "SELECT id, roles, attributes, status, session_epoch FROM cortex_users WHERE tenant_id = $1 AND email = $2";
        let sql = Sql::new(sql, vec![tenant.into(), email.as_str().into()]);
        let types = [
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
        ];
        let row: Option<Row> = async {
            on_reader!(self.database()?, conn => conn.fetch_optional(&sql, &types).await?)
                .map(|row| {
                    let mut c = Cells::of(row);
                    Ok((c.text(), c.text(), c.text(), c.text(), c.int()))
                })
                .transpose()
        }
        .await
        .map_err(|e: IdentityError| e)?;
        let (user, roles, attributes, epoch) = match row {
            Some((id, roles, attributes, status, epoch)) if status == "active" => {
                (id, roles, attributes, epoch)
            }
            Some(_) => return Err(refused("the user is disabled".into())),
            None if config.provision => {
                // No password signs this user in: the hash is of a secret nobody keeps.
                let secret: [u8; 32] = rand::random();
                let unusable = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    secret,
                );
                match self
                    .create_user(
                        tenant,
                        &email,
                        &unusable,
                        &config.default_roles,
                        &serde_json::Map::new(),
                    )
                    .await
                {
                    Ok(created) => {
                        tracing::info!(target: "cortex::sso", tenant = %tenant, user = %created.id, issuer = %config.issuer, "user provisioned on first sign-in");
                        (
                            created.id,
                            serde_json::json!(created.roles).to_string(),
                            "{}".to_owned(),
                            0,
                        )
                    }
                    Err(e) => return Err(KernelError::from(e)),
                }
            }
            None => {
                return Err(refused(format!(
                    "no user of tenant {tenant} has the email this identity provider vouches for"
                )));
            }
        };
        Ok(AccessClaims {
            iss: config.issuer.clone(),
            sub: user,
            tenant: tenant.clone(),
            roles: serde_json::from_str(&roles).unwrap_or_default(),
            attrs: serde_json::from_str(&attributes).unwrap_or_default(),
            iat: now,
            nbf: now,
            exp: claims
                .get("exp")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(now),
            jti: String::new(),
            epoch,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(
        jwks_uri: Option<&str>,
        jwks_file: Option<&str>,
        tenant: &str,
        expected: Result<(), &str>,
    ) {
        let config = OidcIssuerConfig {
            issuer: "https://idp.example".into(),
            audience: "codexion".into(),
            tenant: tenant.into(),
            jwks_uri: jwks_uri.map(str::to_owned),
            jwks_file: jwks_file.map(PathBuf::from),
            email_claim: email_claim(),
            provision: false,
            default_roles: Vec::new(),
            jwks_refresh_interval_s: JWKS_REFRESH_INTERVAL_S,
        };
        match (config.check(), expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(expected)) => assert!(got.contains(expected), "{got}"),
            (got, expected) => panic!("{got:?} vs {expected:?}"),
        }
    }

    #[test]
    fn issuer_entries() {
        check(Some("https://idp.example/jwks"), None, "acme", Ok(()));
        check(Some("http://127.0.0.1:8080/jwks"), None, "acme", Ok(()));
        check(None, Some("config/idp-jwks.json"), "acme", Ok(()));
        check(
            Some("ftp://idp.example/jwks"),
            None,
            "acme",
            Err("must be an https://"),
        );
        check(None, None, "acme", Err("exactly one"));
        check(
            Some("https://idp.example/jwks"),
            Some("x.json"),
            "acme",
            Err("exactly one"),
        );
        check(
            Some("https://idp.example/jwks"),
            None,
            "Not A Tenant",
            Err("not a tenant name"),
        );
    }

    /// TLS is set up (a crypto provider is there) and a failure is an error, not a panic.
    #[tokio::test]
    async fn an_unreachable_https_issuer_is_an_error() {
        let error = fetch_http("https://127.0.0.1:9/jwks.json")
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("JWKS https://127.0.0.1:9/jwks.json"),
            "{error}"
        );
    }
}
