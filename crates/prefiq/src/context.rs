//! The operation context handed to handlers, services, hooks and jobs.

use std::fmt;

use rand::RngCore;

/// A W3C-compatible trace id: 32 lower-case hex digits, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// A fresh random trace id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        loop {
            rand::rng().fill_bytes(&mut bytes);
            if bytes != [0u8; 16] {
                return TraceId(bytes);
            }
        }
    }

    /// The id of these 16 bytes; `None` for all zeros, which W3C trace context reserves.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0u8; 16]).then_some(TraceId(bytes))
    }

    /// The id's 16 bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Parses 32 hex digits; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        (bytes != [0u8; 16]).then_some(TraceId(bytes))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// Whether `name` can name a tenant: 1 to 63 of a-z, 0-9 and `-`, not starting with `-`
/// (it becomes a host name label and a database name).
pub fn is_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Who and what an operation runs for: a request, a job, a hook or a CLI command.
///
/// It is cheap to clone and carries no connections, so it can cross task boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Correlates every log line, event and audit record of one operation.
    pub correlation_id: String,
    /// The trace this operation belongs to.
    pub trace_id: TraceId,
    /// The tenant the operation is scoped to, once known.
    pub tenant: Option<String>,
    /// The acting user, once authenticated.
    pub user: Option<String>,
    /// The verified principal behind `user`, with its roles and attributes; `None` for
    /// system operations (boot, CLI commands, jobs acting for nobody), which are not
    /// subject to authorization.
    pub principal: Option<std::sync::Arc<crate::identity::Principal>>,
    /// The locale for messages and formatting (BCP 47, such as `en` or `de-CH`).
    pub locale: String,
}

impl Context {
    /// A context for a system operation (boot, a CLI command) with a fresh trace.
    pub fn system(locale: impl Into<String>) -> Self {
        let trace_id = TraceId::generate();
        Context {
            correlation_id: trace_id.to_string(),
            trace_id,
            tenant: None,
            user: None,
            principal: None,
            locale: locale.into(),
        }
    }

    /// The same context scoped to a tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The same context acting as a user.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The same context acting as a verified principal: its tenant and user too.
    pub fn with_principal(mut self, principal: crate::identity::Principal) -> Self {
        self.tenant = Some(principal.tenant.clone());
        self.user = Some(principal.user.clone());
        self.principal = Some(std::sync::Arc::new(principal));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(
            TraceId::parse(input).map(|t| t.to_string()).as_deref(),
            expected,
            "{input:?}"
        );
    }

    #[test]
    fn trace_id_parsing() {
        check(
            "0af7651916cd43dd8448eb211c80319c",
            Some("0af7651916cd43dd8448eb211c80319c"),
        );
        check(
            "0AF7651916CD43DD8448EB211C80319C",
            Some("0af7651916cd43dd8448eb211c80319c"),
        );
        check("00000000000000000000000000000000", None);
        check("0af7651916cd43dd8448eb211c80319", None);
        check("0af7651916cd43dd8448eb211c80319cc", None);
        check("zzf7651916cd43dd8448eb211c80319c", None);
        check("", None);
        check("ééf7651916cd43dd8448eb211c8031", None);
    }

    #[test]
    fn tenant_names() {
        for (name, ok) in [
            ("acme", true),
            ("acme-2", true),
            ("a", true),
            ("", false),
            ("-acme", false),
            ("Acme", false),
            ("acme_co", false),
            ("a.b", false),
            ("../x", false),
        ] {
            assert_eq!(is_tenant_name(name), ok, "{name:?}");
        }
        assert!(is_tenant_name(&"a".repeat(63)));
        assert!(!is_tenant_name(&"a".repeat(64)));
    }

    #[test]
    fn generated_trace_ids_round_trip() {
        for _ in 0..100 {
            let id = TraceId::generate();
            assert_eq!(TraceId::parse(&id.to_string()), Some(id));
        }
    }
}
