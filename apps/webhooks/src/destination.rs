//! Where a webhook may point: an `http` or `https` URL whose host is not private or
//! loopback unless `webhooks.allow_private_destinations` is on (SSRF, OWASP API7). Names
//! are checked again when a delivery resolves them, by the client's resolver, so the
//! address a delivery connects to is the address that was checked (no DNS rebinding
//! between the check and the connection).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// Whether `ip` is loopback, private, link-local, shared (CGNAT), unspecified,
/// multicast, broadcast or reserved: not a public destination.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Checks a webhook URL; the error says what is wrong with it.
pub fn check_url(url: &str, allow_private: bool) -> Result<hyper::Uri, String> {
    if !url.contains("://") {
        return Err("the URL needs a scheme: http:// or https://".into());
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("the URL's scheme is `{other}`: use http or https")),
        None => return Err("the URL needs a scheme: http:// or https://".into()),
    }
    let authority = uri.authority().ok_or("the URL names no host")?;
    if authority.as_str().contains('@') {
        return Err("the URL may not carry a user name or password".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    if !allow_private {
        let literal = host.parse::<IpAddr>().ok();
        let local_name = host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost");
        if local_name || literal.is_some_and(is_private) {
            return Err(format!(
                "`{host}` is a private or loopback destination, refused unless webhooks.allow_private_destinations is on"
            ));
        }
    }
    Ok(uri)
}

/// The delivery client's resolver: resolves a name and refuses it when any of its
/// addresses is private (unless allowed).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Whether private and loopback addresses are allowed.
    pub allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !allow_private && let Some(private) = addresses.iter().find(|a| is_private(a.ip())) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{name} resolves to {}, a private address (webhooks.allow_private_destinations is off)",
                        private.ip()
                    ),
                ));
            }
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_known() {
        let check = |ip: &str, expected: bool| {
            assert_eq!(is_private(ip.parse().unwrap()), expected, "{ip}");
        };
        check("127.0.0.1", true);
        check("10.1.2.3", true);
        check("172.16.0.1", true);
        check("172.32.0.1", false);
        check("192.168.1.1", true);
        check("169.254.169.254", true);
        check("100.64.0.1", true);
        check("100.128.0.1", false);
        check("0.0.0.0", true);
        check("255.255.255.255", true);
        check("224.0.0.1", true);
        check("8.8.8.8", false);
        check("::1", true);
        check("::", true);
        check("fd00::1", true);
        check("fe80::1", true);
        check("::ffff:127.0.0.1", true);
        check("::ffff:8.8.8.8", false);
        check("2606:4700::1111", false);
    }

    #[test]
    fn urls_are_checked_with_a_reason() {
        let check = |url: &str, allow: bool, expected: Result<(), &str>| {
            let result = check_url(url, allow).map(|_| ());
            match expected {
                Ok(()) => assert!(result.is_ok(), "{url}: {result:?}"),
                Err(part) => {
                    let error = result.expect_err(url);
                    assert!(error.contains(part), "{url}: {error}");
                }
            }
        };
        check("https://example.com/hook", false, Ok(()));
        check("http://203.0.113.7:8080/x", false, Ok(()));
        check("http://127.0.0.1:9000/x", false, Err("private or loopback"));
        check("http://127.0.0.1:9000/x", true, Ok(()));
        check("http://localhost/x", false, Err("private or loopback"));
        check("http://api.localhost/x", false, Err("private or loopback"));
        check("http://[::1]/x", false, Err("private or loopback"));
        check("http://10.0.0.5/x", false, Err("private or loopback"));
        check("ftp://example.com/x", false, Err("scheme is `ftp`"));
        check("example.com/x", false, Err("needs a scheme"));
        check(
            "https://user:pw@example.com/",
            false,
            Err("user name or password"),
        );
        check("not a url", false, Err("needs a scheme"));
        check("http://exa mple.com/", false, Err("is not a URL"));
    }
}
