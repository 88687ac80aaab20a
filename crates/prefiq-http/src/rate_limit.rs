//! Rate limits: a fixed one-minute window per key, kept in memory.
//!
//! Keys are a user (by token: tenant and user id) or, without a token, the client
//! address; logins count separately, per client address and tenant, under a much smaller
//! limit. Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds until the window ends); a refused request gets a 429
//! problem with `Retry-After`.
//!
//! A fixed window can let through up to twice the limit across a window boundary; that is
//! the price of one counter per key. Limits are per process: with several replicas each
//! counts on its own (a shared counter in Redis is for when replicas arrive).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Keys tracked at most; past this, windows that have ended are dropped, and if that is not
/// enough the oldest half goes (a bound on memory under a flood of addresses).
pub const MAX_KEYS: usize = 100_000;

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit of this key's window.
    pub limit: u32,
    /// Requests left in the window.
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset_s: u64,
}

/// Counters by key.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts one request of `key` at `now` against `limit` per window.
    pub fn check(&self, key: &str, limit: u32, now: Instant) -> Decision {
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock means a panic elsewhere; do not turn it into an outage.
            return Decision {
                allowed: true,
                limit,
                remaining: limit,
                reset_s: WINDOW.as_secs(),
            };
        };
        if windows.len() >= MAX_KEYS && !windows.contains_key(key) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if windows.len() >= MAX_KEYS {
                let mut starts: Vec<Instant> = windows.values().map(|(s, _)| *s).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                windows.retain(|_, (start, _)| *start > cut);
            }
        }
        // A known key (the common case) is counted without copying it.
        if !windows.contains_key(key) {
            windows.insert(key.to_owned(), (now, 0));
        }
        let Some(entry) = windows.get_mut(key) else {
            return Decision {
                allowed: true,
                limit,
                remaining: limit,
                reset_s: WINDOW.as_secs(),
            };
        };
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        let reset = WINDOW.saturating_sub(now.duration_since(entry.0));
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(entry.1),
            reset_s: reset.as_secs().max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `requests` (key, seconds after start) against a limit of 3 and compares the
    /// (allowed, remaining) answers.
    fn check(requests: &[(&str, u64)], expected: &[(bool, u32)]) {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        let got: Vec<(bool, u32)> = requests
            .iter()
            .map(|(key, at)| {
                let d = limiter.check(key, 3, start + Duration::from_secs(*at));
                (d.allowed, d.remaining)
            })
            .collect();
        assert_eq!(got, expected, "{requests:?}");
    }

    #[test]
    fn windows() {
        check(
            &[("a", 0), ("a", 1), ("a", 2), ("a", 3)],
            &[(true, 2), (true, 1), (true, 0), (false, 0)],
        );
        // Keys count apart.
        check(
            &[("a", 0), ("a", 0), ("a", 0), ("b", 0), ("a", 0)],
            &[(true, 2), (true, 1), (true, 0), (true, 2), (false, 0)],
        );
        // A new window starts afresh.
        check(
            &[("a", 0), ("a", 0), ("a", 0), ("a", 59), ("a", 60)],
            &[(true, 2), (true, 1), (true, 0), (false, 0), (true, 2)],
        );
    }

    #[test]
    fn the_number_of_keys_is_bounded() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            limiter.check(&format!("k{i}"), 3, start + Duration::from_millis(i as u64));
        }
        let kept = limiter.windows.lock().map(|w| w.len()).unwrap_or(0);
        assert!(kept <= MAX_KEYS, "{kept} keys kept");
    }
}
