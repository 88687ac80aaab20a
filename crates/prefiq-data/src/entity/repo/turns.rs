//! Turns: concurrent updates of one record in this process wait for each other instead of
//! each reading the same version and all but one failing to write.
//!
//! The locks are striped: a fixed number of them, a record's chosen by a hash of (tenant,
//! entity, id), so memory stays the same however many records are written. Two records
//! that share a stripe take turns too, which costs a short wait, never a wrong answer.

use std::hash::BuildHasher;

/// How many locks records share.
const STRIPES: usize = 64;

/// The striped locks.
pub(super) struct Turns {
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Turns {
    fn default() -> Self {
        Turns {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl std::fmt::Debug for Turns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turns")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

impl Turns {
    /// Waits for the turn of the record `id` of `entity` in `tenant`; it lasts as long as
    /// the guard.
    pub(super) async fn take(
        &self,
        tenant: &str,
        entity: &str,
        id: &str,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        let hash = self.hasher.hash_one((tenant, entity, id));
        let stripe = usize::try_from(hash % STRIPES as u64).unwrap_or(0);
        self.stripes[stripe].lock().await
    }
}
