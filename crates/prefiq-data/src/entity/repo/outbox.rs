//! The outbox event and audit record written with every change.

use super::*;

/// Writes the outbox event and the audit record of a change: one round trip on SQLite,
/// two on PostgreSQL (whose extended protocol takes one statement at a time).
/// `(record_id, event, action)`: the row, the outbox event, the audited action.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_outbox(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    (record_id, event, action): (&str, &str, &str),
    before: Option<&Map<String, Value>>,
    record: &Map<String, Value>,
    now: &str,
    audited: bool,
) -> Result<(), RepoError> {
    let backend = conn.backend();
    let mut sql = Sql::default();
    let outbox = outbox_statement(
        &mut sql,
        backend,
        scope,
        (&schema.name, record_id, event),
        record,
        now,
    );
    sql.text = outbox;
    if audited {
        if backend == Backend::Postgres {
            // The extended protocol takes one statement at a time.
            conn.execute(&sql).await?;
            sql = Sql::default();
        }
        let audit = audit_statement(
            &mut sql,
            backend,
            scope,
            schema,
            (record_id, action),
            before,
            record,
            now,
        );
        sql.text = if sql.text.is_empty() {
            audit
        } else {
            format!("{}; {audit}", sql.text)
        };
    }
    conn.execute(&sql).await?;
    Ok(())
}

/// The statements that append the audit record of a change to the tenant's log, their
/// arguments added to `sql`. A delete records what was deleted; other actions the fields
/// that changed.
#[allow(clippy::too_many_arguments)]
pub(super) fn audit_statement(
    sql: &mut Sql,
    backend: Backend,
    scope: &TenantScope,
    schema: &EntitySchema,
    (record_id, action): (&str, &str),
    before: Option<&Map<String, Value>>,
    record: &Map<String, Value>,
    now: &str,
) -> String {
    let after = (action != "delete").then_some(record);
    let changes = crate::audit::changes(schema, &scope.tenant, before, after);
    crate::audit::append_statement(
        sql,
        backend,
        &crate::audit::AuditRecord {
            tenant: &scope.tenant,
            time: now,
            actor: scope.user.as_deref(),
            action,
            entity: Some(&schema.name),
            id: Some(record_id),
            changes,
            trace: &scope.trace_id,
        },
    )
}

/// The `INSERT` of an outbox event, its arguments added to `sql`. `what` is the entity, the
/// record's id and the event.
pub(super) fn outbox_statement(
    sql: &mut Sql,
    backend: Backend,
    scope: &TenantScope,
    (entity, record_id, event): (&str, &str, &str),
    record: &Map<String, Value>,
    now: &str,
) -> String {
    let values = [
        sql.arg(Arg::Text(Some(uuid::Uuid::now_v7().to_string()))),
        sql.arg(Arg::Text(Some(scope.tenant.clone()))),
        sql.arg(Arg::Text(Some(entity.to_owned()))),
        sql.arg(Arg::Text(Some(record_id.to_owned()))),
        sql.arg(Arg::Text(Some(event.to_owned()))),
        {
            let p = sql.arg(Arg::Text(Some(Value::Object(record.clone()).to_string())));
            if backend == Backend::Postgres {
                format!("{p}::jsonb")
            } else {
                p
            }
        },
        // With trace export on, the row carries the write's `traceparent`, so the relay's
        // delivery (and the webhooks and jobs it causes) continues this trace.
        sql.arg(Arg::Text(Some(prefiq::telemetry::stored_trace(
            &scope.trace_id,
        )))),
        sql.arg(Arg::Text(Some(now.to_owned()))),
    ];
    format!(
        "INSERT INTO prefiq_outbox (id, tenant_id, entity, record_id, event, payload, trace_id, created_at) VALUES ({})",
        values.join(", ")
    )
}
