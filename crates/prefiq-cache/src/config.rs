//! The `cache` section of the configuration.

use serde::Deserialize;

/// `cache.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Redis (`redis://host:port/db`): the shared tier and the invalidation channel.
    pub redis_url: Option<String>,
    /// How long an entry is trusted while invalidations reach this process (a namespace
    /// may ask for less).
    pub ttl_ms: u64,
    /// How long an entry is trusted while no transport carries other replicas'
    /// invalidations here.
    pub unshared_ttl_ms: u64,
    /// At most this many entries per namespace in process.
    pub max_entries: u64,
    /// A Redis command that takes longer counts as a miss (the database answers instead).
    pub redis_timeout_ms: u64,
    /// The Redis channel, or NATS subject, invalidations travel on. On NATS it must not
    /// fall under `events.subject_prefix`, or the events' stream would store it.
    pub channel: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            ttl_ms: 300_000,
            unshared_ttl_ms: 1_000,
            max_entries: 100_000,
            redis_timeout_ms: 250,
            // Not under the events' subject prefix (`codexion.>`), whose JetStream stream
            // would otherwise store every invalidation beside the events.
            channel: "codexion-cache.invalidate".into(),
        }
    }
}

impl CacheConfig {
    /// Refuses settings that cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.ttl_ms == 0 || self.unshared_ttl_ms == 0 {
            return Err("cache.ttl_ms and cache.unshared_ttl_ms must be above 0".into());
        }
        if self.max_entries == 0 || self.max_entries > 10_000_000 {
            return Err("cache.max_entries must be between 1 and 10000000".into());
        }
        if self.redis_timeout_ms == 0 || self.redis_timeout_ms > 10_000 {
            return Err("cache.redis_timeout_ms must be between 1 and 10000".into());
        }
        if self.channel.is_empty()
            || self
                .channel
                .chars()
                .any(|c| c.is_whitespace() || c == '*' || c == '>')
        {
            return Err("cache.channel must be a plain name (no spaces or wildcards)".into());
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(format!(
                "cache.redis_url must start with redis:// or rediss://, not `{url}`"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut CacheConfig), expected: Result<(), &str>) {
        let mut config = CacheConfig::default();
        edit(&mut config);
        assert_eq!(config.check(), expected.map_err(str::to_owned));
    }

    #[test]
    fn settings_are_checked() {
        check(|_| {}, Ok(()));
        check(
            |c| c.redis_url = Some("redis://127.0.0.1:6379/0".into()),
            Ok(()),
        );
        check(
            |c| c.redis_url = Some("http://x".into()),
            Err("cache.redis_url must start with redis:// or rediss://, not `http://x`"),
        );
        check(
            |c| c.ttl_ms = 0,
            Err("cache.ttl_ms and cache.unshared_ttl_ms must be above 0"),
        );
        check(
            |c| c.max_entries = 0,
            Err("cache.max_entries must be between 1 and 10000000"),
        );
        check(
            |c| c.channel = "a.*".into(),
            Err("cache.channel must be a plain name (no spaces or wildcards)"),
        );
        check(
            |c| c.redis_timeout_ms = 0,
            Err("cache.redis_timeout_ms must be between 1 and 10000"),
        );
    }
}
