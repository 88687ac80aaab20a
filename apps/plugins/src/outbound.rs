//! A plugin's outbound HTTP (`fetch`). The sandbox has already checked the URL's host
//! against the manifest's `capabilities.http`; here the name is resolved through the
//! webhooks' guarded resolver, so a granted name that resolves to a private or loopback
//! address is refused too (unless `plugins.allow_private_hosts`, on outside production),
//! and the request and its answer are bounded in time and size.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use webhooks::destination::GuardedResolver;

/// The longest a request may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer body handed to a plugin.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// The client plugins' requests go out through.
pub struct Outbound {
    client: HttpClient,
}

/// What a plugin asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    body: Value,
}

fn get() -> String {
    "GET".into()
}

impl Outbound {
    /// The client; `allow_private` lets names resolve to private addresses.
    pub fn new(allow_private: bool) -> Outbound {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Outbound {
            client: Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// Sends `request` (`{"method","url","headers","body"}`; a body that is not a string is
    /// sent as JSON) and answers `{"status","headers","body"}` with the body as text.
    pub async fn fetch(&self, request: &str) -> Result<String, String> {
        let request: FetchRequest =
            serde_json::from_str(request).map_err(|e| format!("fetch: the request: {e}"))?;
        let method = hyper::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| format!("fetch: method {:?}: {e}", request.method))?;
        let (body, json_body) = match request.body {
            Value::Null => (Bytes::new(), false),
            Value::String(text) => (Bytes::from(text), false),
            other => (Bytes::from(other.to_string()), true),
        };
        let mut builder = hyper::Request::builder().method(method).uri(&request.url);
        for (name, value) in &request.headers {
            let value = value
                .as_str()
                .ok_or_else(|| format!("fetch: header {name} must be a string"))?;
            builder = builder.header(name.as_str(), value);
        }
        if json_body
            && !request
                .headers
                .keys()
                .any(|h| h.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        let outgoing = builder
            .body(Full::new(body))
            .map_err(|e| format!("fetch: {e}"))?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(outgoing))
            .await
            .map_err(|_| {
                format!(
                    "fetch: {} did not answer within {} s",
                    request.url,
                    FETCH_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("fetch: {}: {e}", request.url))?;
        let status = response.status().as_u16();
        let headers: Map<String, Value> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.to_string(), json!(v))))
            .collect();
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
        )
        .await
        .map_err(|_| "fetch: the answer took too long".to_owned())?
        .map_err(|e| format!("fetch: the answer: {e} (at most {MAX_ANSWER_BYTES} bytes)"))?
        .to_bytes();
        Ok(json!({
            "status": status,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        })
        .to_string())
    }
}
