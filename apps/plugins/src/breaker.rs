//! The per-tenant circuit breaker: a plugin that fails its calls for one tenant again and
//! again is suspended for that tenant for a while, so that a broken plugin costs its
//! callers one quick refusal instead of a budget's worth of work each; other tenants and
//! other plugins are untouched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The breaker's settings (config `plugins.breaker`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker.
    pub failures: u32,
    /// How long it stays open; then one call is let through to try.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            open_ms: 30_000,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    failures: u32,
    open_until: Option<Instant>,
}

/// The most (tenant, plugin) pairs tracked; past it, entries without failures are dropped.
const MAX_TRACKED: usize = 100_000;

/// Breakers by (tenant, plugin).
#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    entries: Mutex<HashMap<(String, String), Entry>>,
    /// How many entries there are: while none, a call's admission and success touch no
    /// lock (the path of every healthy call).
    tracked: AtomicUsize,
}

/// Why a call was not made: the breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// The failures that opened it.
    pub failures: u32,
    /// When it lets a call through again.
    pub retry_in_ms: u64,
}

impl Breakers {
    /// Breakers with `config`.
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            entries: Mutex::default(),
            tracked: AtomicUsize::new(0),
        }
    }

    /// `Err` when calls of `plugin` for `tenant` are suspended.
    pub fn admit(&self, tenant: &str, plugin: &str) -> Result<(), Open> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let Ok(entries) = self.entries.lock() else {
            return Ok(());
        };
        match entries.get(&(tenant.to_owned(), plugin.to_owned())) {
            Some(Entry {
                failures,
                open_until: Some(until),
            }) => {
                let now = Instant::now();
                if *until > now {
                    Err(Open {
                        failures: *failures,
                        retry_in_ms: u64::try_from((*until - now).as_millis()).unwrap_or(u64::MAX),
                    })
                } else {
                    // Half open: this call is the trial; its outcome closes or reopens.
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Records a call that ran (a refusal by the plugin counts as running).
    pub fn succeeded(&self, tenant: &str, plugin: &str) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(tenant.to_owned(), plugin.to_owned()));
            self.tracked.store(entries.len(), Ordering::Relaxed);
        }
    }

    /// Records a failed call (trap, budget, memory); `true` when this failure opened it.
    pub fn failed(&self, tenant: &str, plugin: &str) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        if entries.len() >= MAX_TRACKED {
            entries.retain(|_, e| e.open_until.is_some());
        }
        let entry = entries
            .entry((tenant.to_owned(), plugin.to_owned()))
            .or_default();
        entry.failures = entry.failures.saturating_add(1);
        let opened = if entry.failures >= self.config.failures.max(1) {
            entry.open_until = Some(Instant::now() + Duration::from_millis(self.config.open_ms));
            true
        } else {
            false
        };
        self.tracked.store(entries.len(), Ordering::Relaxed);
        opened
    }

    /// Closes every breaker of `plugin` (after an upgrade or a re-enable).
    pub fn reset(&self, plugin: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(_, p), _| p != plugin);
            self.tracked.store(entries.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_suspend_one_tenant_only_and_a_success_closes() {
        let breakers = Breakers::new(BreakerConfig {
            failures: 3,
            open_ms: 60_000,
        });
        for _ in 0..2 {
            assert!(!breakers.failed("acme", "p"));
            assert_eq!(breakers.admit("acme", "p"), Ok(()));
        }
        assert!(breakers.failed("acme", "p"));
        let open = breakers.admit("acme", "p").err();
        assert!(
            open.is_some_and(|o| o.failures == 3 && o.retry_in_ms > 50_000),
            "{open:?}"
        );
        assert_eq!(breakers.admit("globex", "p"), Ok(()));
        assert_eq!(breakers.admit("acme", "other"), Ok(()));
        breakers.reset("p");
        assert_eq!(breakers.admit("acme", "p"), Ok(()));
    }

    #[test]
    fn an_expired_breaker_lets_a_trial_through() {
        let breakers = Breakers::new(BreakerConfig {
            failures: 1,
            open_ms: 0,
        });
        assert!(breakers.failed("acme", "p"));
        assert_eq!(breakers.admit("acme", "p"), Ok(()));
        breakers.succeeded("acme", "p");
        assert_eq!(breakers.admit("acme", "p"), Ok(()));
    }
}
