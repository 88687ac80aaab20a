//! The shared tier in Redis.
//!
//! A value is stored under `cxv:{namespace}:{tenant length}:{tenant}:{key}` as
//! `{generation}\n{json}`, where the generation is that of the tenant's namespace,
//! `cxg:{namespace}:{tenant length}:{tenant}`, read before the value was loaded. Every
//! invalidation increments that generation, so that a value stored by a load that raced
//! an invalidation is never served: one `MGET` reads both, and a value of an older
//! generation counts as a miss.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::CacheError;

/// A connection to the shared tier.
#[derive(Clone)]
pub(crate) struct Remote {
    pub(crate) connection: ConnectionManager,
    pub(crate) timeout: Duration,
}

fn scope(namespace: &str, tenant: &str) -> String {
    format!("{namespace}:{}:{tenant}", tenant.len())
}

pub(crate) fn value_key(namespace: &str, tenant: &str, key: &str) -> String {
    format!("cxv:{}:{key}", scope(namespace, tenant))
}

pub(crate) fn generation_key(namespace: &str, tenant: &str) -> String {
    format!("cxg:{}", scope(namespace, tenant))
}

fn failed(e: impl std::fmt::Display) -> CacheError {
    CacheError::Redis(e.to_string())
}

impl Remote {
    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, CacheError> {
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.timeout, command.query_async::<T>(&mut connection))
            .await
            .map_err(|_| CacheError::Redis("no answer in time".into()))?
            .map_err(failed)
    }

    /// The current generation of `tenant`'s namespace and, when one of that generation
    /// is stored, the value of `key`.
    pub(crate) async fn get(
        &self,
        namespace: &str,
        tenant: &str,
        key: &str,
    ) -> Result<(u64, Option<Vec<u8>>), CacheError> {
        let mut command = redis::cmd("MGET");
        command
            .arg(value_key(namespace, tenant, key))
            .arg(generation_key(namespace, tenant));
        let (stored, generation): (Option<Vec<u8>>, Option<u64>) = self.run(command).await?;
        let generation = generation.unwrap_or(0);
        let value = stored.and_then(|stored| {
            let split = stored.iter().position(|b| *b == b'\n')?;
            let tagged: u64 = std::str::from_utf8(&stored[..split]).ok()?.parse().ok()?;
            (tagged == generation).then(|| stored[split + 1..].to_vec())
        });
        Ok((generation, value))
    }

    /// Stores `json` as `key`'s value of `generation` for `ttl`.
    pub(crate) async fn set(
        &self,
        namespace: &str,
        tenant: &str,
        key: &str,
        generation: u64,
        json: &[u8],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut stored = format!("{generation}\n").into_bytes();
        stored.extend_from_slice(json);
        let mut command = redis::cmd("SET");
        command
            .arg(value_key(namespace, tenant, key))
            .arg(stored)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        self.run::<()>(command).await
    }

    /// Makes every stored value of `tenant`'s namespace stale (and drops `key`'s).
    pub(crate) async fn invalidate(
        &self,
        namespace: &str,
        tenant: &str,
        key: Option<&str>,
    ) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(generation_key(namespace, tenant))
            .ignore();
        if let Some(key) = key {
            pipe.cmd("DEL")
                .arg(value_key(namespace, tenant, key))
                .ignore();
        }
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut connection))
            .await
            .map_err(|_| CacheError::Redis("no answer in time".into()))?
            .map_err(failed)
    }

    /// Publishes `payload` on `channel`.
    pub(crate) async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), CacheError> {
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        self.run::<i64>(command).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_tenant_unambiguously() {
        // A tenant containing the separator cannot collide with another tenant's key.
        assert_eq!(value_key("ns", "a", "b:c"), "cxv:ns:1:a:b:c");
        assert_eq!(value_key("ns", "a:b", "c"), "cxv:ns:3:a:b:c");
        assert_ne!(value_key("ns", "a", "b:c"), value_key("ns", "a:b", "c"));
        assert_eq!(generation_key("ns", "acme"), "cxg:ns:4:acme");
    }
}
