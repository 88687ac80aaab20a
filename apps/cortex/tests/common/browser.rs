//! A browser for tests of the desk (cortex's and, through a `#[path]`, accounting's and
//! webhooks'): keeps cookies, sends forms with their CSRF token, and reads pages, all
//! through the installation's router on a tenant's host name; and the checks those tests
//! make of a page.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use tower::ServiceExt;

use super::Api;

/// One answer.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// Where a redirect goes.
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The value of the first `name="…" value="…"` input on the page.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\"");
        let at = self.body.find(&marker)?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag_end = at + self.body[at..].find('>')?;
        let tag = &self.body[tag_start..tag_end];
        let value = tag.split("value=\"").nth(1)?;
        Some(value[..value.find('"')?].to_owned())
    }
}

pub struct Browser<'a> {
    pub api: &'a Api,
    pub host: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

/// Percent-encodes a form value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl<'a> Browser<'a> {
    /// A browser on `tenant`'s host name.
    pub fn new(api: &'a Api, tenant: &str) -> Self {
        Browser {
            api,
            host: format!("{tenant}.localhost"),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    async fn send(&self, request: axum::http::request::Builder, body: Body) -> Page {
        let cookies = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = request.header("host", &self.host);
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        let response = self
            .api
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(Request::builder().method("GET").uri(path), Body::empty())
            .await
    }

    /// Posts `pairs` as a form, with the CSRF cookie's token unless `pairs` has one.
    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Page {
        self.post_with(path, pairs, &[]).await
    }

    /// [`Browser::post`] with extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        if !pairs.iter().any(|(k, _)| *k == "_csrf")
            && let Some(csrf) = self.cookie("prefiq_csrf")
        {
            body.push(format!("_csrf={csrf}"));
        }
        let mut request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, Body::from(body.join("&"))).await
    }

    /// Signs in through the login form; panics unless it succeeds.
    pub async fn login(&self, email: &str, password: &str) {
        let page = self.get("/app/login").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = self
            .post(
                "/app/login",
                &[("email", email), ("password", password), ("next", "/app")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), "/app");
    }
}

/// Fails, showing the page, unless its body holds `text`.
pub fn assert_has(page: &Page, text: &str) {
    assert!(
        page.body.contains(text),
        "expected {text:?} in the page ({}):\n{}",
        page.status,
        page.body
    );
}

/// Fails, showing the page, if its body holds `text`.
pub fn assert_lacks(page: &Page, text: &str) {
    assert!(
        !page.body.contains(text),
        "{text:?} should not be in the page ({}):\n{}",
        page.status,
        page.body
    );
}

/// The page with its random parts (UUIDs, 64-hex-digit tokens) replaced, so that a
/// snapshot is stable.
pub fn redact_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let hex = |b: u8| b.is_ascii_hexdigit() && !b.is_ascii_uppercase();
    while i < bytes.len() {
        // A UUID: 8-4-4-4-12 lower-case hex digits.
        let uuid = bytes.len() - i >= 36
            && (0..36).all(|k| {
                let b = bytes[i + k];
                if [8, 13, 18, 23].contains(&k) {
                    b == b'-'
                } else {
                    hex(b)
                }
            });
        if uuid {
            out.push_str("[uuid]");
            i += 36;
            continue;
        }
        // A token: 64 hex digits.
        if bytes.len() - i >= 64 && (0..64).all(|k| hex(bytes[i + k])) {
            out.push_str("[token]");
            i += 64;
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}
