//! Single sign-on against a local stub OpenID Connect issuer that serves its JWKS over
//! HTTP: RS256 and EdDSA tokens sign users in (made on first sign-in), keys rotate, and
//! tokens with the wrong audience, an expired `exp`, `alg=none`, a tampered payload or
//! an unknown key are refused, on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Api, boot_with};
use prefiq_data::testing::databases;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde_json::{Value, json};

/// A 2048-bit RSA test key (made with `openssl genrsa 2048` for this test only).
const RSA_N: &str = "b4e088179671aeceaefec95d958f21e3e23387bcd082d177eefa914d062f79f858a118071e3b98c5cff0f9b0da8021a3f31433b4cf35312efb6161508db32baa009c76807ab04354502e71010e6c216919a30a19a8fdf540eb38aac8a37246d0491a68235d4a9929dab39515d4b78909b569f40d2c0e2c75b6642ca414acaa01977d105de5039b0f4938123210eeb6016ab86436035a7cf950754369e87958e527e332f134ccf2e812bbee20369233817834ccfe79d1623b4473d4ad66c8a7ea36b0690ef4d01776ebabb654b2dba391e8521b60ef227369399c1b1f999bea5d896bc7219c8941f82d1630d6e372322e223ff68c980269d7680ea80acba21337";
const RSA_D: &str = "1029076a64174ac64de841ac1f7d519fd49e9a000aa3c57c9bae1366a2fe2c3d935d9691fc3cd8376ee40420584549117c2efa8d0053aba34649105d6c1642a3c66389a037ab4be35a8e9656167dc9610f2dfbec5da6e2f9fbdf6ce8242cef9abdb7f84495ef364eabaae3cfb6d8f70b6bae9db96ce2e4a20266622954178bd0c0a068f417b7446f878c6539f4b78f1215264aa3b7f400c888067b9e8e27a6d0b66c500a27c566a6ff6411b54566852568390d741d820db15a2e8319e1d5e5706fa1baca16d879134f48e2851fc00043cac51b21303c5f7e7265f495ec03a1e1a39a2b50ecc02d03bfe3ebe892e7d5e19d5c8ddfabfa6531d4e13de1af3adae1";
const RSA_P: &str = "ed0e7ee6c80c7ce5edbb002694ad4c529c2144bb3b3d0633b5615059350946fbc2f8dd1855769f10c7f6bb75d8f0c6ea6af4b7ada35f3ae07f0742ad3da22ae229c6ebd3f9564b64db7afd1c6726b2f1a2b5bf07b00220937fa8c964a0f14808fc3998bfa21b3e7a71030c8ffd080e3426cb756c8e5f58eecec997d11b13245f";
const RSA_Q: &str = "c354c31c33eea11d4311045c0587ede192628cf4c41adde689320b80e5ffc818534b7678b95940bb6ce9d12af1a635a695ee4084e92e214277c827302010ec09e5ef5bc6fe0b98508a04662dd966888570bd117c56a35a24e519936010696fb44b2824bed69e34496f23f7ec2111ef908f8b72922056f83d78de93df39f6c029";

fn big(hex: &str) -> rsa::BigUint {
    rsa::BigUint::parse_bytes(hex.as_bytes(), 16).unwrap()
}

struct Issuer {
    url: String,
    rsa: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    ed: ed25519_dalek::SigningKey,
    /// The JWKS served; tests rotate keys by changing it.
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start() -> Issuer {
        let private = rsa::RsaPrivateKey::from_components(
            big(RSA_N),
            rsa::BigUint::from(65_537u32),
            big(RSA_D),
            vec![big(RSA_P), big(RSA_Q)],
        )
        .unwrap();
        let rsa_jwk = json!({
            "kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(big(RSA_N).to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode([1u8, 0, 1]),
        });
        let jwks = Arc::new(Mutex::new(json!({ "keys": [rsa_jwk] })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (served, counter) = (jwks.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let document = served.lock().unwrap().clone();
                counter.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(document) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Issuer {
            url,
            rsa: rsa::pkcs1v15::SigningKey::new(private),
            ed: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
            jwks,
            fetches,
        }
    }

    fn claims(&self, email: &str) -> Value {
        let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()).unwrap();
        json!({"iss": self.url, "aud": ["codexion", "other"], "sub": "idp|1", "email": email, "iat": now, "exp": now + 300})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match header["alg"].as_str() {
            Some("EdDSA") => ed25519_dalek::Signer::sign(&self.ed, input.as_bytes())
                .to_bytes()
                .to_vec(),
            _ => self.rsa.sign(input.as_bytes()).to_vec(),
        };
        format!("Bearer {input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn rs256(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}),
            claims,
        )
    }
}

async fn status(api: &Api, token: &str, tenant: Option<&str>) -> StatusCode {
    let mut headers = vec![("authorization", token)];
    if let Some(tenant) = tenant {
        headers.push(("x-tenant", tenant));
    }
    api.call("GET", "/api/v1/resources/todo", &headers, None)
        .await
        .0
}

#[tokio::test]
async fn external_tokens_sign_users_in_on_backends() {
    for db in databases("single sign-on").await {
        let issuer = Issuer::start().await;
        let oidc = format!(
            "[{{issuer=\"{0}\", audience=\"codexion\", tenant=\"acme\", jwks_uri=\"{0}/jwks.json\", provision=true, default_roles=[\"Clerk\"], jwks_refresh_interval_s=1}}]",
            issuer.url
        );
        let api = boot_with(&db, &[("PREFIQ__CORTEX__OIDC", &oidc)]).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "admin@acme.test", "correct horse battery")
            .await
            .unwrap();
        identity
            .create_tenant("globex", "admin@globex.test", "correct horse battery")
            .await
            .unwrap();

        // First sign-in makes the user, with the issuer's default roles.
        let token = issuer.rs256(&issuer.claims("New.Person@acme.test"));
        assert_eq!(status(&api, &token, None).await, StatusCode::OK);
        assert_eq!(status(&api, &token, Some("acme")).await, StatusCode::OK);
        assert_eq!(
            status(&api, &token, Some("globex")).await,
            StatusCode::FORBIDDEN
        );
        let users = identity.users("acme").await.unwrap();
        let made = users
            .iter()
            .find(|u| u.email == "new.person@acme.test")
            .unwrap();
        assert_eq!(made.roles, ["Clerk"]);
        // A known user signs in as itself, with its own roles.
        let admin = issuer.rs256(&issuer.claims("admin@acme.test"));
        let (code, created) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &[("authorization", &admin)],
                Some(json!({"description": "via SSO"})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        assert_eq!(identity.users("acme").await.unwrap().len(), 2);

        // Refusals.
        let mut wrong_audience = issuer.claims("x@acme.test");
        wrong_audience["aud"] = json!("someone-else");
        let mut expired = issuer.claims("x@acme.test");
        expired["exp"] = json!(1_000_000);
        let mut unverified = issuer.claims("x@acme.test");
        unverified["email_verified"] = json!(false);
        let mut no_email = issuer.claims("x@acme.test");
        no_email.as_object_mut().unwrap().remove("email");
        let none = format!(
            "Bearer {}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "rsa-1"}).to_string()),
            URL_SAFE_NO_PAD.encode(issuer.claims("admin@acme.test").to_string())
        );
        let hs256 = issuer.sign(
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &issuer.claims("admin@acme.test"),
        );
        let good = issuer.rs256(&issuer.claims("admin@acme.test"));
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(issuer.claims("admin@globex.test").to_string());
        parts[1] = &forged_payload;
        let tampered = parts.join(".");
        for (what, token) in [
            ("wrong audience", issuer.rs256(&wrong_audience)),
            ("expired", issuer.rs256(&expired)),
            ("email not verified", issuer.rs256(&unverified)),
            ("no email", issuer.rs256(&no_email)),
            ("alg none", none),
            ("alg HS256", hs256),
            ("tampered payload", tampered),
            (
                "EdDSA key not published yet",
                issuer.sign(
                    &json!({"alg": "EdDSA", "kid": "ed-1"}),
                    &issuer.claims("admin@acme.test"),
                ),
            ),
        ] {
            assert_eq!(
                status(&api, &token, None).await,
                StatusCode::UNAUTHORIZED,
                "{what}"
            );
        }
        // Unknown key ids do not make us fetch the JWKS more than once per interval.
        let before = issuer.fetches.load(Ordering::SeqCst);
        for n in 0..5 {
            let token = issuer.sign(
                &json!({"alg": "RS256", "kid": format!("made-up-{n}")}),
                &issuer.claims("admin@acme.test"),
            );
            assert_eq!(status(&api, &token, None).await, StatusCode::UNAUTHORIZED);
        }
        assert!(issuer.fetches.load(Ordering::SeqCst) - before <= 1);

        // Key rotation: a new EdDSA key is published and picked up on its first use.
        issuer.jwks.lock().unwrap()["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(issuer.ed.verifying_key().as_bytes()),
            }));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let rotated = issuer.sign(
            &json!({"alg": "EdDSA", "kid": "ed-1"}),
            &issuer.claims("admin@acme.test"),
        );
        assert_eq!(status(&api, &rotated, None).await, StatusCode::OK);
        // An EdDSA header on the RSA key is an algorithm mismatch, refused.
        let mismatched = issuer.sign(
            &json!({"alg": "EdDSA", "kid": "rsa-1"}),
            &issuer.claims("admin@acme.test"),
        );
        assert_eq!(
            status(&api, &mismatched, None).await,
            StatusCode::UNAUTHORIZED
        );
        db.cleanup().await;
    }
}
