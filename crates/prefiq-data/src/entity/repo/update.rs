//! Changing and deleting drafts.

use super::*;
use tracing::Instrument;

#[allow(clippy::too_many_arguments)]
pub(super) async fn update_tx(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    id: &str,
    version: i64,
    validated: &Validated,
    current: &Map<String, Value>,
    now: &str,
    backend: Backend,
    audited: bool,
) -> Result<Map<String, Value>, RepoError> {
    check_links(conn, scope, validated, "").await?;
    let mut sql = Sql::default();
    let mut sets = Vec::new();
    if let Some((stored, _)) = &validated.custom {
        let p = sql.arg(Arg::Text(Some(Value::Object(stored.clone()).to_string())));
        sets.push(if backend == Backend::Postgres {
            format!("custom = {p}::jsonb")
        } else {
            format!("custom = {p}")
        });
    }
    for (field, stored) in &validated.columns {
        for (column, arg) in column_names(field)
            .into_iter()
            .zip(stored_args(field, stored))
        {
            let p = placeholder(&mut sql, arg, field, backend);
            sets.push(format!("{column} = {p}"));
        }
    }
    let now_arg = sql.arg(Arg::Text(Some(now.to_owned())));
    let user = sql.arg(Arg::Text(scope.user.clone()));
    let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
    let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
    let version_arg = sql.arg(Arg::Int(Some(version)));
    sets.push(format!("modified_at = {now_arg}"));
    sets.push(format!("modified_by = {user}"));
    sets.push("version = version + 1".into());
    sql.text = format!(
        "UPDATE {} SET {} WHERE tenant_id = {tenant} AND id = {id_arg} AND version = {version_arg} AND deleted_at IS NULL AND docstatus = 0",
        quote(schema.table()),
        sets.join(", ")
    );
    if conn
        .execute(&sql)
        .await
        .map_err(|e| unique_error(e, schema))?
        == 0
    {
        return Err(RepoError::VersionConflict {
            entity: schema.name.clone(),
            expected: version,
            actual: version + 1,
        });
    }
    for (field, child, _) in &validated.children {
        let mut delete = Sql::default();
        let tenant = delete.arg(Arg::Text(Some(scope.tenant.clone())));
        let parent = delete.arg(Arg::Text(Some(id.to_owned())));
        let parent_field = delete.arg(Arg::Text(Some(field.name.clone())));
        delete.text = format!(
            "DELETE FROM {} WHERE tenant_id = {tenant} AND parent_id = {parent} AND parent_field = {parent_field}",
            quote(child.table())
        );
        conn.execute(&delete).await?;
    }
    insert_children(conn, scope, id, validated, now, backend).await?;
    if let Some(field) = schema.tree_parent() {
        let parent = tree_parent_of(schema, validated);
        if current.get(&field).and_then(Value::as_str) != parent.as_deref() {
            tree::move_node(
                conn,
                scope,
                schema,
                id,
                parent.as_deref(),
                &format!("/{field}"),
            )
            .await?;
        }
    }
    let mut record = current.clone();
    record.extend(Repository::document(validated));
    record.insert("modified_at".into(), json!(now));
    record.insert("modified_by".into(), json!(scope.user));
    record.insert("version".into(), json!(version + 1));
    write_outbox(
        conn,
        scope,
        schema,
        (id, "updated", "update"),
        Some(current),
        &record,
        now,
        audited,
    )
    .await?;
    Ok(record)
}

/// How often an update without an expected version starts again from the row as it now
/// is, when another writer changed it first (another replica: in this process updates
/// of one record take turns). A replica that loses to another's steady stream of writes
/// to one record waits longer each time (see [`conflict_pause_us`]), so these attempts
/// span a few seconds: a stream of one replica's queued patches is over long before.
const MAX_UPDATE_ATTEMPTS: u32 = 48;

/// The first pause before an update starts again after a conflict, in microseconds. The
/// pause doubles with each attempt up to [`CONFLICT_BACKOFF_MAX_US`] and is drawn at
/// random below that, so two replicas that keep colliding fall out of step.
const CONFLICT_BACKOFF_US: u64 = 500;

/// The longest pause between two attempts of one update, in microseconds.
const CONFLICT_BACKOFF_MAX_US: u64 = 80_000;

/// The random pause before attempt `attempt + 1`, in microseconds.
fn conflict_pause_us(attempt: u32) -> u64 {
    let ceiling = CONFLICT_BACKOFF_US
        .saturating_mul(1u64 << attempt.min(16))
        .min(CONFLICT_BACKOFF_MAX_US);
    rand::random_range(ceiling / 2..=ceiling)
}

tokio::task_local! {
    /// Set while a task runs an update: an update a hook makes inside it is nested.
    static IN_UPDATE: ();
}

/// What one attempt of an update did.
enum Updated {
    /// The patch changed nothing: the record as it is.
    Unchanged(Map<String, Value>),
    /// The row was written: the record now, and before.
    Written {
        record: Map<String, Value>,
        before: Map<String, Value>,
    },
}

impl Repository {
    /// Changes a draft.
    ///
    /// With `expected_version` (from `If-Match`) the patch applies only to that version:
    /// another one is [`RepoError::PreconditionFailed`]. Without it the last writer wins:
    /// the patch is applied to the row as it is when it is written, so concurrent patches
    /// all apply, in some order. A patch that changes nothing writes nothing (no new
    /// version, audit record or event) and answers the record as it is.
    pub async fn update(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
        patch: Value,
        expected_version: Option<i64>,
    ) -> Result<Value, RepoError> {
        let span = super::repo_span("update", scope, entity);
        async {
            let schema = self.schema(scope, entity).await?;
            let patch = object(patch, "")?;
            // A hook that updates a record runs inside this update, in this task: it does not
            // wait for a turn (which could be this one's), it relies on starting again.
            let nested = IN_UPDATE.try_with(|_| ()).is_ok();
            let turn = match expected_version {
                None if !nested => Some(
                    self.update_turns
                        .take(&scope.tenant, &schema.name, id)
                        .await,
                ),
                _ => None,
            };
            let attempt = async {
                let mut attempts = 1;
                loop {
                    match self
                        .update_once(scope, &schema, id, &patch, expected_version)
                        .await
                    {
                        Err(RepoError::VersionConflict { entity, .. })
                            if let Some(expected) = expected_version =>
                        {
                            return Err(RepoError::PreconditionFailed {
                                entity,
                                expected,
                                actual: None,
                            });
                        }
                        Err(RepoError::VersionConflict { .. })
                            if attempts < MAX_UPDATE_ATTEMPTS =>
                        {
                            let pause = conflict_pause_us(attempts);
                            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                            attempts += 1;
                        }
                        result => return result,
                    }
                }
            };
            let outcome = if nested {
                attempt.await
            } else {
                IN_UPDATE.scope((), attempt).await
            }?;
            // After-hooks run once the turn is over: one that updates a record waits for no one.
            drop(turn);
            match outcome {
                Updated::Unchanged(current) => Ok(Value::Object(current)),
                Updated::Written { record, before } => {
                    self.run_after_hooks(
                        EntityEvent::AfterUpdate,
                        scope,
                        &schema,
                        &record,
                        Some(&before),
                    )
                    .await;
                    Ok(Value::Object(record))
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One attempt of [`Repository::update`]: read, merge, validate, write if anything
    /// changed. A row that changed between the read and the write is a
    /// [`RepoError::VersionConflict`].
    async fn update_once(
        &self,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        id: &str,
        patch: &Map<String, Value>,
        expected_version: Option<i64>,
    ) -> Result<Updated, RepoError> {
        let schema = schema.clone();
        let current = self.read_current(scope, &schema, id).await?;
        let version = stored_version(&current);
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(RepoError::PreconditionFailed {
                entity: schema.name.clone(),
                expected,
                actual: Some(version),
            });
        }
        if docstatus(&current) != Some(0) {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "document_submitted",
                format!(
                    "this {} is submitted or cancelled and cannot be edited; amend it instead",
                    schema.name
                ),
            )]));
        }
        // The row as it is must be updatable too: otherwise a patch could move a row the
        // principal may not touch into its reach (`department` changed to its own).
        self.authorize(scope, &schema, "update", Some(&current))
            .await?;
        self.check_writable(scope, &schema, patch, Some(&current))?;
        let mut doc = current.clone();
        doc.extend(patch.clone());
        let doc = self
            .run_hooks(
                EntityEvent::BeforeValidate,
                scope,
                &schema,
                doc,
                Some(&current),
            )
            .await?;
        let doc = self
            .run_hooks(EntityEvent::Validate, scope, &schema, doc, Some(&current))
            .await?;
        // Unknown keys are reported against the patch, where the client wrote them.
        self.validate(&schema, patch, Some(&current), "")
            .map_err(RepoError::Invalid)?;
        let validated = self
            .validate_all(scope, &schema, &doc, Some(&current))
            .await?;
        let mut doc = Self::document(&validated);
        // The owner and status do not change with an update; decide with them.
        for system in ["created_by", "docstatus"] {
            if let Some(value) = current.get(system) {
                doc.insert(system.into(), value.clone());
            }
        }
        self.authorize(scope, &schema, "update", Some(&doc)).await?;
        doc.remove("created_by");
        doc.remove("docstatus");
        // Before-hooks may change the document: what is written is then validated again.
        let validated = if self.has_hooks(EntityEvent::BeforeUpdate, scope, &schema) {
            let doc = self
                .run_hooks(
                    EntityEvent::BeforeUpdate,
                    scope,
                    &schema,
                    doc,
                    Some(&current),
                )
                .await?;
            self.validate_all(scope, &schema, &doc, Some(&current))
                .await?
        } else {
            validated
        };
        // Nothing to write: no new version, no audit record, no event.
        if Self::document(&validated)
            .iter()
            .all(|(key, value)| current.get(key).unwrap_or(&Value::Null) == value)
        {
            return Ok(Updated::Unchanged(current));
        }
        let now = civil_now();
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let record = in_tenant_tx!(database, &scope.tenant, conn => update_tx(
            conn, scope, &schema, id, version, &validated, &current, &now, backend, self.audited,
        )
        .await?);
        self.committed(&handle, &scope.tenant);
        Ok(Updated::Written {
            record,
            before: current,
        })
    }

    pub(super) async fn read_current(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        id: &str,
    ) -> Result<Map<String, Value>, RepoError> {
        // WAL readers see every committed write, so the current state comes from a reader.
        Ok(
            on_tenant_reader!(self.tenant_handle(scope).await?.get()?, &scope.tenant, conn => self.load(conn, scope, schema, id).await?),
        )
    }

    /// Soft-deletes a draft or cancelled document.
    pub async fn delete(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<(), RepoError> {
        self.delete_at(scope, entity, id, None).await
    }

    /// [`Repository::delete`] of the row only while it is at version `expected` (from
    /// `If-Match`): another version, now or when the write lands, is `PreconditionFailed`.
    pub async fn delete_at(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
        expected: Option<i64>,
    ) -> Result<(), RepoError> {
        let span = super::repo_span("delete", scope, entity);
        async {
            let schema = self.schema(scope, entity).await?;
            super::validate::refuse_view_writes(&schema, "delete")?;
            let current = self.read_current(scope, &schema, id).await?;
            expect_version(&schema, &current, expected)?;
            if docstatus(&current) == Some(1) {
                return Err(RepoError::Invalid(vec![field_error(
                    "",
                    "document_submitted",
                    format!(
                        "this {} is submitted; cancel it before deleting",
                        schema.name
                    ),
                )]));
            }
            self.authorize(scope, &schema, "delete", Some(&current))
                .await?;
            let doc = self
                .run_hooks(
                    EntityEvent::BeforeDelete,
                    scope,
                    &schema,
                    current.clone(),
                    Some(&current),
                )
                .await?;
            let version = stored_version(&current);
            self.transition(scope, &schema, id, version, Transition::Delete, &doc)
                .await
                .map_err(|e| lost_race(e, expected))?;
            self.run_after_hooks(
                EntityEvent::AfterDelete,
                scope,
                &schema,
                &doc,
                Some(&current),
            )
            .await;
            Ok(())
        }
        .instrument(span)
        .await
    }
}
