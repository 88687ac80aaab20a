//! Submit, cancel and amend: status changes of submittable documents.

use super::*;
use tracing::Instrument;

/// A status change of a stored document.
#[derive(Debug, Clone, Copy)]
pub(super) enum Transition<'v> {
    Delete,
    /// With the document's validated values, whose links are checked again.
    Submit(&'v Validated),
    Cancel,
}

/// Refuses a write whose caller expected another version than the stored one.
pub(super) fn expect_version(
    schema: &EntitySchema,
    current: &Map<String, Value>,
    expected: Option<i64>,
) -> Result<(), RepoError> {
    match expected {
        Some(expected) if stored_version(current) != expected => {
            Err(RepoError::PreconditionFailed {
                entity: schema.name.clone(),
                expected,
                actual: Some(stored_version(current)),
            })
        }
        _ => Ok(()),
    }
}

/// A write that lost the race for its row: with an expected version the caller's
/// precondition failed; without one, the row changed under it.
pub(super) fn lost_race(error: RepoError, expected: Option<i64>) -> RepoError {
    match (error, expected) {
        (RepoError::VersionConflict { entity, .. }, Some(expected)) => {
            RepoError::PreconditionFailed {
                entity,
                expected,
                actual: None,
            }
        }
        (error, _) => error,
    }
}

pub(super) fn expect_docstatus(
    current: &Map<String, Value>,
    expected: i64,
    message: &str,
) -> Result<(), RepoError> {
    if docstatus(current) == Some(expected) {
        Ok(())
    } else {
        Err(RepoError::Invalid(vec![field_error(
            "",
            "wrong_status",
            message.to_owned(),
        )]))
    }
}

impl Repository {
    /// Submits a draft of a submittable entity.
    pub async fn submit(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        self.submit_at(scope, entity, id, None).await
    }

    /// [`Repository::submit`] only while the document is at version `expected` (from
    /// `If-Match`): another version, now or when the write lands, is `PreconditionFailed`.
    pub async fn submit_at(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<Value, RepoError> {
        let span = super::repo_span("submit", scope, entity);
        async {
            let schema = self.submittable(scope, entity).await?;
            let current = self.read_current(scope, &schema, id).await?;
            expect_version(&schema, &current, expected)?;
            expect_docstatus(&current, 0, "only draft documents can be submitted")?;
            let validated = self
                .validate_all(scope, &schema, &current, Some(&current))
                .await?;
            self.authorize(scope, &schema, "submit", Some(&current))
                .await?;
            let doc = self
                .run_hooks(
                    EntityEvent::BeforeSubmit,
                    scope,
                    &schema,
                    current.clone(),
                    Some(&current),
                )
                .await?;
            let version = stored_version(&current);
            let record = self
                .transition(
                    scope,
                    &schema,
                    id,
                    version,
                    Transition::Submit(&validated),
                    &doc,
                )
                .await
                .map_err(|e| lost_race(e, expected))?;
            self.run_after_hooks(
                EntityEvent::OnSubmit,
                scope,
                &schema,
                &record,
                Some(&current),
            )
            .await;
            Ok(Value::Object(record))
        }
        .instrument(span)
        .await
    }

    /// Cancels a submitted document.
    pub async fn cancel(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        self.cancel_at(scope, entity, id, None).await
    }

    /// [`Repository::cancel`] only while the document is at version `expected` (from
    /// `If-Match`): another version, now or when the write lands, is `PreconditionFailed`.
    pub async fn cancel_at(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<Value, RepoError> {
        let span = super::repo_span("cancel", scope, entity);
        async {
            let schema = self.submittable(scope, entity).await?;
            let current = self.read_current(scope, &schema, id).await?;
            expect_version(&schema, &current, expected)?;
            expect_docstatus(&current, 1, "only submitted documents can be cancelled")?;
            self.authorize(scope, &schema, "cancel", Some(&current))
                .await?;
            let version = stored_version(&current);
            let record = self
                .transition(scope, &schema, id, version, Transition::Cancel, &current)
                .await
                .map_err(|e| lost_race(e, expected))?;
            self.run_after_hooks(
                EntityEvent::OnCancel,
                scope,
                &schema,
                &record,
                Some(&current),
            )
            .await;
            Ok(Value::Object(record))
        }
        .instrument(span)
        .await
    }

    /// Makes a new draft from a cancelled document, named after it (`NAME-1`, `NAME-2`, ...).
    pub async fn amend(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        self.amend_at(scope, entity, id, None).await
    }

    /// [`Repository::amend`] only while the cancelled document is at version `expected`
    /// (from `If-Match`). A cancelled document changes no more, so the read is the check.
    pub async fn amend_at(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<Value, RepoError> {
        let span = super::repo_span("amend", scope, entity);
        async {
            let schema = self.submittable(scope, entity).await?;
            let current = self.read_current(scope, &schema, id).await?;
            expect_version(&schema, &current, expected)?;
            expect_docstatus(&current, 2, "only cancelled documents can be amended")?;
            self.authorize(scope, &schema, "amend", Some(&current))
                .await?;
            let old_name = current
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = match old_name.rsplit_once('-') {
                Some((base, n))
                    if current.get("amended_from").is_some_and(|v| !v.is_null())
                        && n.parse::<u32>().is_ok() =>
                {
                    format!("{base}-{}", n.parse::<u32>().unwrap_or(0) + 1)
                }
                _ => format!("{old_name}-1"),
            };
            let mut doc = current.clone();
            doc.retain(|k, _| schema.field(k).is_some() || k == "custom");
            for rows in doc.values_mut() {
                if let Value::Array(rows) = rows {
                    for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                        for system in SYSTEM_INPUT {
                            row.remove(*system);
                        }
                    }
                }
            }
            self.create_with(scope, &schema, doc, Some((id.to_owned(), name)))
                .await
        }
        .instrument(span)
        .await
    }

    pub(super) async fn submittable(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Arc<EntitySchema>, RepoError> {
        let schema = self.schema(scope, entity).await?;
        if !schema.submittable {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "not_submittable",
                format!("`{entity}` is not submittable"),
            )]));
        }
        Ok(schema)
    }

    /// One status change (`set` is an SQL assignment, `{now}` replaced by the time) with its
    /// outbox event, guarded by the version read before.
    pub(super) async fn transition(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        id: &str,
        version: i64,
        change: Transition<'_>,
        doc: &Map<String, Value>,
    ) -> Result<Map<String, Value>, RepoError> {
        let (set, event, action) = match change {
            Transition::Delete => ("deleted_at = {now}", "deleted", "delete"),
            Transition::Submit(_) => ("docstatus = 1", "submitted", "submit"),
            Transition::Cancel => ("docstatus = 2", "cancelled", "cancel"),
        };
        let now = civil_now();
        let mut sql = Sql::default();
        let now_arg = sql.arg(Arg::Text(Some(now.clone())));
        let user = sql.arg(Arg::Text(scope.user.clone()));
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
        let version_arg = sql.arg(Arg::Int(Some(version)));
        sql.text = format!(
            "UPDATE {} SET {}, modified_at = {now_arg}, modified_by = {user}, version = version + 1 WHERE tenant_id = {tenant} AND id = {id_arg} AND version = {version_arg} AND deleted_at IS NULL",
            quote(schema.table()),
            set.replace("{now}", &now_arg)
        );
        let mut record = doc.clone();
        record.insert("modified_at".into(), json!(now));
        record.insert("modified_by".into(), json!(scope.user));
        record.insert("version".into(), json!(version + 1));
        if let Some(status) = set.strip_prefix("docstatus = ") {
            record.insert(
                "docstatus".into(),
                json!(status.parse::<i64>().unwrap_or(0)),
            );
        }
        let conflict = || RepoError::VersionConflict {
            entity: schema.name.clone(),
            expected: version,
            actual: version + 1,
        };
        let delete_node = matches!(change, Transition::Delete) && schema.tree.is_some();
        // Only a delete asks what refers to the row; submits, a hot path, skip the view.
        let registry = matches!(change, Transition::Delete)
            .then(|| self.registry().visible_to(Some(&scope.tenant)));
        let handle = self.tenant_handle(scope).await?;
        in_tenant_tx!(handle.get()?, &scope.tenant, conn => {
            if delete_node && tree::has_live_children(conn, scope, schema, id).await? {
                return Err(RepoError::Invalid(vec![field_error(
                    "",
                    "has_children",
                    format!("this {} has children; move or delete them first", schema.name),
                )]));
            }
            if conn.execute(&sql).await? == 0 {
                return Err(conflict());
            }
            match change {
                // The row is locked now: a reference committed before this point is seen,
                // and a later one finds the row gone when it checks its links.
                Transition::Delete => {
                    if let Some(registry) = &registry {
                        let found =
                            protecting_references(conn, registry, scope, &schema.name, doc).await?;
                        if !found.0.is_empty() {
                            return Err(referenced(schema, id, found));
                        }
                    }
                }
                // A submitted document protects what it links to, so its links must be
                // live when it is submitted, not only when it was saved as a draft.
                Transition::Submit(validated) => {
                    check_links(conn, scope, validated, "").await?;
                }
                Transition::Cancel => {}
            }
            // Hooks run before the outbox and audit rows: the audit head's row lock is then
            // the last lock a write takes, so a module's own locks (the ledger's period row)
            // are always taken before it and two writes cannot wait on each other.
            let hook_event = match change {
                Transition::Submit(_) => Some(EntityEvent::OnSubmit),
                Transition::Cancel => Some(EntityEvent::OnCancel),
                Transition::Delete => None,
            };
            if let Some(hook_event) = hook_event {
                for hook in self.transaction_hooks.iter().filter(|h| h.entity() == schema.name) {
                    hook.run(conn, scope, hook_event, &record).await?;
                }
            }
            write_outbox(conn, scope, schema, (id, event, action), Some(doc), &record, &now, self.audited).await?;
        });
        self.committed(&handle, &scope.tenant);
        Ok(record)
    }
}
