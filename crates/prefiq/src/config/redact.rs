//! Secrets in config: which keys hold them, and how a value is hidden before it is
//! printed.

/// Whether the key names a secret whose value must never be printed.
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    [
        "secret",
        "password",
        "token",
        "private",
        "_key",
        "credential",
    ]
    .iter()
    .any(|s| last.contains(s))
        || last == "key"
}

/// Hides secrets: whole values under secret keys, and the password in a URL.
pub fn redact(key: &str, value: &serde_json::Value) -> serde_json::Value {
    if is_secret_key(key) {
        return serde_json::Value::String("***".into());
    }
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(redact_url_password(s)),
        other => other.clone(),
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`; other text is unchanged.
pub fn redact_url_password(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return text.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:***@{}",
            &text[..scheme_end],
            &userinfo[..colon],
            &rest[at + 1..]
        ),
        None => text.to_owned(),
    }
}
