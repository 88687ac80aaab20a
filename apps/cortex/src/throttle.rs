//! Throttling failed logins without telling anyone which accounts exist, and without
//! letting an attacker lock the real user out.
//!
//! Failures are counted per *(tenant, email, client address)* and per *client address*,
//! never per account alone: guessing at an account from one address slows that address
//! down and then locks it out of that account, while the account's owner, signing in from
//! another address, is not affected; one address guessing at many accounts is locked out
//! as a whole. Each failure adds [`FAILURE_DELAY_MS`] per failure of its pair to the answer
//! (capped), [`PAIR_LOCK_AFTER`] failures of a pair or [`ADDRESS_LOCK_AFTER`] of an address
//! lock it for a time that doubles with every further failure, up to [`MAX_LOCK_S`].
//!
//! Unknown emails are counted exactly as real ones, and a locked pair gets the same answer
//! as a wrong password (a 401 that says "the email or password is wrong"), after the same
//! password verification and the same delay: neither the status, the body nor the timing
//! says whether an account exists or is locked.
//!
//! The counts live in this process, bounded by [`MAX_ENTRIES`]; behind a load balancer
//! each replica counts the attempts it sees.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins of one (account, address) pair before the pair is locked.
pub const PAIR_LOCK_AFTER: u32 = 5;
/// Failed logins from one address, on any accounts, before the address is locked.
pub const ADDRESS_LOCK_AFTER: u32 = 20;
/// The first lock, in seconds; it doubles with each failure after.
pub const FIRST_LOCK_S: u64 = 60;
/// The longest lock, in seconds.
pub const MAX_LOCK_S: u64 = 3600;
/// Added to the answer of a failed login per failure of its pair, in milliseconds.
pub const FAILURE_DELAY_MS: u64 = 200;
/// The longest such delay, in milliseconds.
pub const MAX_FAILURE_DELAY_MS: u64 = 2000;
/// Failures are forgotten this long after the last one, when no lock is running.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// At most this many pairs and addresses are remembered; when full, forgotten entries
/// are dropped first, then everything.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

impl Entry {
    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    fn forgotten(&self, now: Instant) -> bool {
        !self.locked(now) && now.duration_since(self.last_failure) > FAILURE_MEMORY
    }
}

/// The counts of failed logins.
#[derive(Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

fn pair_key(tenant: &str, email: &str, address: &str) -> String {
    format!("pair\u{0}{tenant}\u{0}{email}\u{0}{address}")
}

fn address_key(address: &str) -> String {
    format!("address\u{0}{address}")
}

/// How long a key that has failed `failures` times (its threshold being `after`) is
/// locked: nothing below the threshold, then [`FIRST_LOCK_S`] doubling per failure.
fn lock_for(failures: u32, after: u32) -> Option<Duration> {
    (failures >= after).then(|| {
        let doublings = (failures - after).min(16);
        Duration::from_secs((FIRST_LOCK_S << doublings).min(MAX_LOCK_S))
    })
}

impl LoginThrottle {
    /// Whether a login of `email` in `tenant` from `address` is refused without looking
    /// at the password: its pair or its address is locked.
    pub fn locked(&self, tenant: &str, email: &str, address: &str) -> bool {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        [pair_key(tenant, email, address), address_key(address)]
            .iter()
            .any(|key| entries.get(key).is_some_and(|e| e.locked(now)))
    }

    /// Counts a failed login (a wrong password, an unknown email, a disabled user or a
    /// locked pair) and returns how long its answer is to be delayed.
    pub fn failed(&self, tenant: &str, email: &str, address: &str) -> Duration {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() + 2 > MAX_ENTRIES {
            entries.retain(|_, entry| !entry.forgotten(now));
            if entries.len() + 2 > MAX_ENTRIES {
                entries.clear();
            }
        }
        let mut count = |key: String, after: u32| {
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if entry.forgotten(now) {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if let Some(lock) = lock_for(entry.failures, after) {
                entry.locked_until = Some(now + lock);
            }
            entry.failures
        };
        let pair_failures = count(pair_key(tenant, email, address), PAIR_LOCK_AFTER);
        count(address_key(address), ADDRESS_LOCK_AFTER);
        Duration::from_millis(
            (FAILURE_DELAY_MS * u64::from(pair_failures)).min(MAX_FAILURE_DELAY_MS),
        )
    }

    /// Forgets the failures of a pair after a successful login from it.
    pub fn succeeded(&self, tenant: &str, email: &str, address: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pair_key(tenant, email, address));
    }

    /// How many pairs and addresses are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After `failures` of a pair (threshold `after`), the lock in seconds.
    fn check(failures: u32, after: u32, expected: Option<u64>) {
        assert_eq!(
            lock_for(failures, after).map(|d| d.as_secs()),
            expected,
            "{failures} failures, lock after {after}"
        );
    }

    #[test]
    fn locks_start_at_the_threshold_and_double_up_to_the_longest() {
        check(0, PAIR_LOCK_AFTER, None);
        check(4, PAIR_LOCK_AFTER, None);
        check(5, PAIR_LOCK_AFTER, Some(FIRST_LOCK_S));
        check(6, PAIR_LOCK_AFTER, Some(FIRST_LOCK_S * 2));
        check(9, PAIR_LOCK_AFTER, Some(FIRST_LOCK_S * 16));
        check(11, PAIR_LOCK_AFTER, Some(MAX_LOCK_S));
        check(u32::MAX, PAIR_LOCK_AFTER, Some(MAX_LOCK_S));
        check(19, ADDRESS_LOCK_AFTER, None);
        check(20, ADDRESS_LOCK_AFTER, Some(FIRST_LOCK_S));
    }

    #[test]
    fn attacker_locks_its_own_address_not_the_account() {
        let throttle = LoginThrottle::default();
        for _ in 0..PAIR_LOCK_AFTER {
            throttle.failed("acme", "ann@acme.test", "10.0.0.66");
        }
        assert!(throttle.locked("acme", "ann@acme.test", "10.0.0.66"));
        assert!(!throttle.locked("acme", "ann@acme.test", "10.0.0.7"));
        assert!(!throttle.locked("acme", "bob@acme.test", "10.0.0.66"));
        assert!(!throttle.locked("globex", "ann@acme.test", "10.0.0.66"));
    }

    #[test]
    fn address_guessing_at_many_accounts_is_locked_as_a_whole() {
        let throttle = LoginThrottle::default();
        for i in 0..ADDRESS_LOCK_AFTER {
            throttle.failed("acme", &format!("user{i}@acme.test"), "10.0.0.66");
        }
        assert!(throttle.locked("acme", "someone-else@acme.test", "10.0.0.66"));
        assert!(!throttle.locked("acme", "someone-else@acme.test", "10.0.0.7"));
    }

    #[test]
    fn delay_grows_per_failure_up_to_the_longest() {
        let throttle = LoginThrottle::default();
        let delays: Vec<u64> = (0..12)
            .map(|_| {
                throttle
                    .failed("acme", "ann@acme.test", "10.0.0.66")
                    .as_millis() as u64
            })
            .collect();
        let expected: Vec<u64> = (1..=12)
            .map(|n| (FAILURE_DELAY_MS * n).min(MAX_FAILURE_DELAY_MS))
            .collect();
        assert_eq!(delays, expected);
        throttle.succeeded("acme", "ann@acme.test", "10.0.0.66");
        assert_eq!(
            throttle.failed("acme", "ann@acme.test", "10.0.0.66"),
            Duration::from_millis(FAILURE_DELAY_MS)
        );
    }

    #[test]
    fn remembered_entries_are_bounded() {
        let throttle = LoginThrottle::default();
        for i in 0..(MAX_ENTRIES / 2 + 10) {
            throttle.failed("acme", "ann@acme.test", &format!("address-{i}"));
        }
        assert!(throttle.len() <= MAX_ENTRIES, "{}", throttle.len());
    }
}
