//! The event a committed write leaves: what subscribers, live listeners, NATS and
//! webhooks receive.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event id (a UUIDv7): the same on every re-send, so receivers drop duplicates
    /// by it (it is JetStream's `Nats-Msg-Id` and the webhook's `webhook-id`).
    pub id: String,
    /// The tenant whose write it was.
    pub tenant: String,
    /// The entity.
    pub entity: String,
    /// The record's id.
    pub record_id: String,
    /// What happened: `created`, `updated`, `deleted`, `submitted` or `cancelled`.
    pub action: String,
    /// The record as the write left it.
    pub data: Value,
    /// The trace id of the write.
    pub trace_id: String,
    /// The write's `traceparent`, when trace export was on: what the delivery of the event
    /// continues. Not part of the event on the wire (NATS carries it as a header).
    #[serde(skip)]
    pub trace_parent: Option<String>,
    /// When the write ran (RFC 3339, UTC).
    pub occurred_at: String,
    /// Its number in its database's outbox: one record's events have rising numbers.
    pub seq: i64,
}

impl Event {
    /// The event as the outbox row `row` holds it.
    pub fn from_row(row: prefiq_data::outbox::OutboxRow) -> Event {
        Event {
            id: row.id,
            tenant: row.tenant,
            entity: row.entity,
            record_id: row.record_id,
            action: row.action,
            data: row.payload,
            trace_id: prefiq::telemetry::trace_id_of_stored(&row.trace_id)
                .map_or_else(|| row.trace_id.clone(), |t| t.to_string()),
            trace_parent: prefiq::telemetry::traceparent_of_stored(&row.trace_id)
                .map(str::to_owned),
            occurred_at: row.created_at,
            seq: row.seq,
        }
    }

    /// What a job or message this event causes stores as its trace: the write's
    /// `traceparent` when there is one, else its trace id.
    pub fn stored_trace(&self) -> String {
        self.trace_parent
            .clone()
            .unwrap_or_else(|| self.trace_id.clone())
    }

    /// `{entity}.{action}`, such as `journal_entry.submitted`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.entity, self.action)
    }

    /// The NATS subject: `{prefix}.{tenant}.{entity}.{action}`.
    pub fn subject(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}.{}", self.tenant, self.entity, self.action)
    }

    /// Whether `pattern` selects this event (see [`matches`]).
    pub fn matches(&self, pattern: &str) -> bool {
        matches(pattern, &self.entity, &self.action)
    }
}

/// Whether `pattern` selects events of `entity` and `action`: `*` selects all,
/// `{entity}.*` every action of an entity, `*.{action}` one action of every entity,
/// `{entity}.{action}` one.
pub fn matches(pattern: &str, entity: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((e, a)) = pattern.split_once('.') else {
        return false;
    };
    (e == "*" || e == entity) && (a == "*" || a == action)
}

/// The actions an event can have.
pub const ACTIONS: &[&str] = &["created", "updated", "deleted", "submitted", "cancelled"];

/// Checks an event pattern's form; `entity_exists` says whether an entity name is known.
/// The error says what is wrong.
pub fn check_pattern(pattern: &str, entity_exists: impl Fn(&str) -> bool) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let Some((entity, action)) = pattern.split_once('.') else {
        return Err(format!(
            "`{pattern}` is not an event pattern: use `entity.action`, `entity.*`, `*.action` or `*`"
        ));
    };
    if entity != "*" && !entity_exists(entity) {
        return Err(format!("`{pattern}` names no known entity `{entity}`"));
    }
    if action != "*" && !ACTIONS.contains(&action) {
        return Err(format!(
            "`{pattern}` names no known action `{action}` (one of {})",
            ACTIONS.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_entities_and_actions() {
        let check = |pattern: &str, expected: bool| {
            assert_eq!(matches(pattern, "todo", "created"), expected, "{pattern}");
        };
        check("*", true);
        check("todo.*", true);
        check("todo.created", true);
        check("*.created", true);
        check("*.*", true);
        check("todo.updated", false);
        check("journal_entry.*", false);
        check("todo", false);
        check("", false);
    }

    #[test]
    fn pattern_checks_name_what_is_wrong() {
        let known = |e: &str| e == "todo";
        let check = |pattern: &str, expected: Result<(), &str>| {
            assert_eq!(
                check_pattern(pattern, known).map_err(|e| e.contains(expected.unwrap_err())),
                expected.map_err(|_| true),
                "{pattern}"
            );
        };
        check("*", Ok(()));
        check("todo.*", Ok(()));
        check("*.submitted", Ok(()));
        check("todo.created", Ok(()));
        check("todo", Err("not an event pattern"));
        check("invoice.created", Err("no known entity `invoice`"));
        check("todo.exploded", Err("no known action `exploded`"));
    }
}
