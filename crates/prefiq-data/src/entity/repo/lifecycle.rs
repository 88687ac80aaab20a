//! Submit, cancel and amend: status changes of submittable documents.

use super::*;

/// A status change of a stored document.
#[derive(Debug, Clone, Copy)]
pub(super) enum Transition {
    Delete,
    Submit,
    Cancel,
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
        let schema = self.submittable(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
        expect_docstatus(&current, 0, "only draft documents can be submitted")?;
        self.validate_all(scope, &schema, &current, Some(&current))
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
            .transition(scope, &schema, id, version, Transition::Submit, &doc)
            .await?;
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

    /// Cancels a submitted document.
    pub async fn cancel(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let schema = self.submittable(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
        expect_docstatus(&current, 1, "only submitted documents can be cancelled")?;
        self.authorize(scope, &schema, "cancel", Some(&current))
            .await?;
        let version = stored_version(&current);
        let record = self
            .transition(scope, &schema, id, version, Transition::Cancel, &current)
            .await?;
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

    /// Makes a new draft from a cancelled document, named after it (`NAME-1`, `NAME-2`, ...).
    pub async fn amend(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let schema = self.submittable(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
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
        change: Transition,
        doc: &Map<String, Value>,
    ) -> Result<Map<String, Value>, RepoError> {
        let (set, event, action) = match change {
            Transition::Delete => ("deleted_at = {now}", "deleted", "delete"),
            Transition::Submit => ("docstatus = 1", "submitted", "submit"),
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
            quote(&schema.name),
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
            // Hooks run before the outbox and audit rows: the audit head's row lock is then
            // the last lock a write takes, so a module's own locks (the ledger's period row)
            // are always taken before it and two writes cannot wait on each other.
            let hook_event = match change {
                Transition::Submit => Some(EntityEvent::OnSubmit),
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
        self.audit.appended(&scope.tenant);
        Ok(record)
    }
}
