//! Creating a row: naming, children, links and the insert transaction.

use super::*;
use tracing::Instrument;

/// The parent id a tree row is written with (`None`: a root).
pub(super) fn tree_parent_of(schema: &EntitySchema, validated: &Validated) -> Option<String> {
    let field = schema.tree_parent()?;
    validated
        .columns
        .iter()
        .find(|(f, _)| f.name == field)
        .and_then(|(_, stored)| match stored {
            Stored::Text(id) => Some(id.clone()),
            _ => None,
        })
}

pub(super) async fn insert_children(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    parent_id: &str,
    validated: &Validated,
    now: &str,
    backend: Backend,
) -> Result<(), RepoError> {
    for (field, child, rows) in &validated.children {
        for (i, row) in rows.iter().enumerate() {
            let child_id = uuid::Uuid::now_v7().to_string();
            let mut sql = Sql::default();
            let mut columns: Vec<String> = [
                "tenant_id",
                "id",
                "name",
                "created_at",
                "modified_at",
                "parent_id",
                "parent_field",
                "idx",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let mut values = vec![
                sql.arg(Arg::Text(Some(scope.tenant.clone()))),
                sql.arg(Arg::Text(Some(child_id.clone()))),
                sql.arg(Arg::Text(Some(child_id.clone()))),
                sql.arg(Arg::Text(Some(now.to_owned()))),
                sql.arg(Arg::Text(Some(now.to_owned()))),
                sql.arg(Arg::Text(Some(parent_id.to_owned()))),
                sql.arg(Arg::Text(Some(field.name.clone()))),
                sql.arg(Arg::Int(Some(i as i64 + 1))),
            ];
            for (child_field, stored) in &row.columns {
                for (column, arg) in column_names(child_field)
                    .into_iter()
                    .zip(stored_args(child_field, stored))
                {
                    columns.push(column);
                    values.push(placeholder(&mut sql, arg, child_field, backend));
                }
            }
            sql.text = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(child.table()),
                columns.join(", "),
                values.join(", ")
            );
            conn.execute(&sql)
                .await
                .map_err(|e| unique_error(e, child))?;
        }
    }
    Ok(())
}

/// Every link must name a live row of the same tenant.
pub(super) async fn check_links(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    validated: &Validated,
    prefix: &str,
) -> Result<(), RepoError> {
    let mut errors = Vec::new();
    for (field, stored) in &validated.columns {
        if let (FieldKind::Link { target }, Stored::Text(id)) = (&field.kind, stored) {
            let mut sql = Sql::default();
            let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
            let id_arg = sql.arg(Arg::Text(Some(id.clone())));
            let table = validated.link_tables.get(target).unwrap_or(target);
            // On PostgreSQL the share lock makes a concurrent delete of the target wait
            // for this write, and this check wait for a delete in flight.
            let lock = match conn.backend() {
                Backend::Postgres => " FOR SHARE",
                Backend::Sqlite => "",
            };
            sql.text = format!(
                "SELECT CAST(1 AS BIGINT) FROM {} WHERE tenant_id = {tenant} AND id = {id_arg} AND deleted_at IS NULL{lock}",
                quote(table)
            );
            if conn.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
                errors.push(field_error(
                    format!("{prefix}/{}", field.name),
                    "dangling_link",
                    format!("no {target} `{id}` exists"),
                ));
            }
        }
    }
    for (field, _, rows) in &validated.children {
        for (i, row) in rows.iter().enumerate() {
            if let Err(RepoError::Invalid(e)) = Box::pin(check_links(
                conn,
                scope,
                row,
                &format!("{prefix}/{}/{i}", field.name),
            ))
            .await
            {
                errors.extend(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RepoError::Invalid(errors))
    }
}

/// The next name of a naming series such as `JE-.YYYY.-.#####`, counted per tenant and
/// per prefix (so the counter restarts each year when the prefix holds the year).
pub(super) async fn next_in_series(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    series: &str,
    now: &str,
) -> Result<String, RepoError> {
    let (year, month, day) = (&now[0..4], &now[5..7], &now[8..10]);
    let mut prefix = String::new();
    let mut suffix = String::new();
    let mut width = 0;
    for part in series.split('.') {
        let text = match part {
            "YYYY" => year.to_owned(),
            "YY" => year[2..].to_owned(),
            "MM" => month.to_owned(),
            "DD" => day.to_owned(),
            hashes if !hashes.is_empty() && hashes.chars().all(|c| c == '#') => {
                width = hashes.len();
                continue;
            }
            literal => literal.to_owned(),
        };
        if width == 0 {
            prefix.push_str(&text)
        } else {
            suffix.push_str(&text)
        }
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
    let key = sql.arg(Arg::Text(Some(format!("{prefix}#{suffix}"))));
    sql.text = format!(
        "INSERT INTO prefiq_series (tenant_id, prefix, current) VALUES ({tenant}, {key}, 1) ON CONFLICT (tenant_id, prefix) DO UPDATE SET current = prefiq_series.current + 1 RETURNING current"
    );
    let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
    let current = match rows.first().and_then(|r| r.first()) {
        Some(Cell::Int(n)) => *n,
        _ => 1,
    };
    Ok(format!("{prefix}{current:0width$}{suffix}"))
}

/// Turns a unique-index violation into a field error naming the field.
pub(super) fn unique_error(error: DataError, schema: &EntitySchema) -> RepoError {
    if error.is_unique_violation() {
        let message = error.database_message().unwrap_or_default().to_owned();
        let constraint = error.constraint().unwrap_or_default().to_owned();
        let field = schema
            .fields
            .iter()
            .find(|f| {
                constraint == crate::entity::ddl::unique_index(schema, &f.name)
                    || message.ends_with(&format!(".{}", f.name))
            })
            .map(|f| f.name.clone());
        return match field {
            Some(field) => RepoError::Unique(field_error(
                format!("/{field}"),
                "unique",
                format!("another {} already has this {field}", schema.name),
            )),
            None => RepoError::Unique(field_error(
                "/name",
                "unique",
                format!("another {} already has this name", schema.name),
            )),
        };
    }
    RepoError::Database(error)
}

impl Repository {
    /// The document as the API shows it, from validated values.
    pub(super) fn document(validated: &Validated) -> Map<String, Value> {
        let mut doc = Map::new();
        if let Some((_, shown)) = &validated.custom {
            doc.insert("custom".into(), Value::Object(shown.clone()));
        }
        for (field, stored) in &validated.columns {
            doc.insert(field.name.clone(), to_json(field, stored));
        }
        for (field, _, rows) in &validated.children {
            doc.insert(
                field.name.clone(),
                Value::Array(
                    rows.iter()
                        .map(|r| Value::Object(Self::document(r)))
                        .collect(),
                ),
            );
        }
        doc
    }

    /// Creates a row. Returns the stored record.
    pub async fn create(
        &self,
        scope: &TenantScope,
        entity: &str,
        input: Value,
    ) -> Result<Value, RepoError> {
        let span = super::repo_span("create", scope, entity);
        async {
            let schema = self.schema(scope, entity).await?;
            let input = object(input, "")?;
            self.check_writable(scope, &schema, &input, None)?;
            self.create_with(scope, &schema, input, None).await
        }
        .instrument(span)
        .await
    }

    pub(super) async fn create_with(
        &self,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        doc: Map<String, Value>,
        amended: Option<(String, String)>,
    ) -> Result<Value, RepoError> {
        let doc = self
            .run_hooks(EntityEvent::BeforeValidate, scope, schema, doc, None)
            .await?;
        let doc = self
            .run_hooks(EntityEvent::Validate, scope, schema, doc, None)
            .await?;
        let validated = self.validate_all(scope, schema, &doc, None).await?;
        let mut doc = Self::document(&validated);
        // The row is decided on as it will be stored: owned by its creator.
        doc.insert("created_by".into(), json!(scope.user));
        self.authorize(scope, schema, "create", Some(&doc)).await?;
        doc.remove("created_by");
        // Before-hooks may change the document: what is written is then validated again.
        let validated = if self.has_hooks(EntityEvent::BeforeInsert, scope, schema) {
            let doc = self
                .run_hooks(EntityEvent::BeforeInsert, scope, schema, doc, None)
                .await?;
            self.validate_all(scope, schema, &doc, None).await?
        } else {
            validated
        };

        let id = uuid::Uuid::now_v7().to_string();
        let now = civil_now();
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let record = in_tenant_tx!(database, &scope.tenant, conn => self
            .insert_tx(conn, scope, schema, &validated, &id, &now, amended.as_ref(), backend)
            .await?);
        self.committed(&handle, &scope.tenant);
        self.run_after_hooks(EntityEvent::AfterInsert, scope, schema, &record, None)
            .await;
        Ok(Value::Object(record))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn insert_tx(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        schema: &EntitySchema,
        validated: &Validated,
        id: &str,
        now: &str,
        amended: Option<&(String, String)>,
        backend: Backend,
    ) -> Result<Map<String, Value>, RepoError> {
        check_links(conn, scope, validated, "").await?;
        let name = match (amended, &schema.naming) {
            (Some((_, name)), _) => name.clone(),
            (None, Naming::Uuid) => id.to_owned(),
            (None, Naming::Series(series)) => next_in_series(conn, scope, series, now).await?,
        };
        let mut sql = Sql::default();
        let mut columns = vec![
            "tenant_id",
            "id",
            "name",
            "created_at",
            "created_by",
            "modified_at",
            "modified_by",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        let mut values = vec![
            sql.arg(Arg::Text(Some(scope.tenant.clone()))),
            sql.arg(Arg::Text(Some(id.to_owned()))),
            sql.arg(Arg::Text(Some(name.clone()))),
            sql.arg(Arg::Text(Some(now.to_owned()))),
            sql.arg(Arg::Text(scope.user.clone())),
            sql.arg(Arg::Text(Some(now.to_owned()))),
            sql.arg(Arg::Text(scope.user.clone())),
        ];
        if let Some((from, _)) = amended {
            columns.push("amended_from".into());
            values.push(sql.arg(Arg::Text(Some(from.clone()))));
        }
        if let Some((stored, _)) = &validated.custom {
            columns.push("custom".into());
            let p = sql.arg(Arg::Text(Some(Value::Object(stored.clone()).to_string())));
            values.push(if backend == Backend::Postgres {
                format!("{p}::jsonb")
            } else {
                p
            });
        }
        for (field, stored) in &validated.columns {
            for (column, arg) in column_names(field)
                .into_iter()
                .zip(stored_args(field, stored))
            {
                columns.push(column);
                values.push(placeholder(&mut sql, arg, field, backend));
            }
        }
        sql.text = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(schema.table()),
            columns.join(", "),
            values.join(", ")
        );

        let mut record = Map::new();
        record.insert("id".into(), json!(id));
        record.insert("name".into(), json!(name));
        record.insert("created_at".into(), json!(now));
        record.insert("created_by".into(), json!(scope.user));
        record.insert("modified_at".into(), json!(now));
        record.insert("modified_by".into(), json!(scope.user));
        record.insert("version".into(), json!(1));
        record.insert("docstatus".into(), json!(0));
        record.insert("custom".into(), json!({}));
        record.insert("amended_from".into(), json!(amended.map(|(from, _)| from)));
        record.extend(Self::document(validated));

        // SQLite runs several statements sent as one, each a round trip to the connection's
        // worker thread saved; PostgreSQL's extended protocol takes one statement at a time.
        let has_children = validated
            .children
            .iter()
            .any(|(_, _, rows)| !rows.is_empty());
        let action = if amended.is_some() { "amend" } else { "create" };
        if backend == Backend::Sqlite && !has_children {
            let outbox = outbox_statement(
                &mut sql,
                backend,
                scope,
                (&schema.name, id, "created"),
                &record,
                now,
            );
            let audit = audit_statement(
                &mut sql,
                backend,
                scope,
                schema,
                (id, action),
                None,
                &record,
                now,
            );
            sql.text = format!("{}; {outbox}; {audit}", sql.text);
            conn.execute(&sql)
                .await
                .map_err(|e| unique_error(e, schema))?;
        } else {
            conn.execute(&sql)
                .await
                .map_err(|e| unique_error(e, schema))?;
            insert_children(conn, scope, id, validated, now, backend).await?;
            write_outbox(
                conn,
                scope,
                schema,
                (id, "created", action),
                None,
                &record,
                now,
                self.audited,
            )
            .await?;
        }
        if schema.tree.is_some() {
            let parent = tree_parent_of(schema, validated);
            tree::insert_node(conn, scope, schema, id, parent.as_deref()).await?;
        }
        Ok(record)
    }
}
