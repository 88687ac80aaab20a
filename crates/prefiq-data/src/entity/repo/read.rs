//! Reading: one row, and lists with filters, row access and keyset pages.

use super::*;
use tracing::Instrument;

/// `(a AND b) OR (c)` over the record-rule conditions of a principal's read grants.
/// A condition that cannot hold (a missing attribute) or cannot be expressed is false, so
/// the predicate fails closed.
pub(super) fn row_access_sql(
    schema: &EntitySchema,
    custom: &[FieldDef],
    any_of: &[Vec<RowCondition>],
    backend: Backend,
    sql: &mut Sql,
) -> String {
    let alternatives: Vec<String> = any_of
        .iter()
        .map(|conditions| {
            let all: Vec<String> = conditions
                .iter()
                .map(|condition| {
                    let Some(value) = &condition.value else {
                        return "1 = 0".to_owned();
                    };
                    let triple = json!([[condition.field, condition.op.filter(), value]]);
                    match filter::parse_filters(schema, custom, &triple) {
                        Ok(parsed) if parsed.len() == 1 => {
                            filter::condition_sql(&parsed[0], backend, sql)
                        }
                        _ => "1 = 0".to_owned(),
                    }
                })
                .collect();
            format!("({})", all.join(" AND "))
        })
        .collect();
    format!("({})", alternatives.join(" OR "))
}

impl Repository {
    pub(super) async fn load(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        schema: &EntitySchema,
        id: &str,
    ) -> Result<Map<String, Value>, RepoError> {
        let backend = conn.backend();
        let (select, slots, types) = select_list(schema, backend);
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
        sql.text = format!(
            "SELECT {select} FROM {} WHERE tenant_id = {tenant} AND id = {id_arg} AND deleted_at IS NULL",
            quote(schema.table())
        );
        let rows = conn.fetch(&sql, &types).await?;
        let Some(cells) = rows.first() else {
            return Err(RepoError::NotFound {
                entity: schema.name.clone(),
                id: id.to_owned(),
            });
        };
        let mut record = row_to_record(&slots, cells);
        if !schema.child
            && record
                .get("custom")
                .is_some_and(|c| c.as_object().is_some_and(|m| !m.is_empty()))
        {
            let custom = self.custom_fields(scope, &schema.name).await?;
            show_custom(&custom, &mut record);
        }
        let registry = self.entities.registry();
        for field in &schema.fields {
            if let FieldKind::Table { entity } = &field.kind
                && let Some(child) = registry.get(entity)
            {
                let (select, slots, types) = select_list(child, backend);
                let mut sql = Sql::default();
                let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
                let parent = sql.arg(Arg::Text(Some(id.to_owned())));
                let parent_field = sql.arg(Arg::Text(Some(field.name.clone())));
                sql.text = format!(
                    "SELECT {select} FROM {} WHERE tenant_id = {tenant} AND parent_id = {parent} AND parent_field = {parent_field} ORDER BY idx",
                    quote(child.table())
                );
                let rows = conn.fetch(&sql, &types).await?;
                let children = rows
                    .iter()
                    .map(|cells| Value::Object(child_record(&slots, cells)))
                    .collect();
                record.insert(field.name.clone(), Value::Array(children));
            }
        }
        Ok(record)
    }

    /// Reads one live row of this tenant.
    pub async fn get(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let span = super::repo_span("get", scope, entity);
        async {
        let schema = self.schema(scope, entity).await?;
        let handle = self.tenant_handle(scope).await?;
        let record = on_tenant_reader!(handle.get()?, &scope.tenant, conn => self.load(conn, scope, &schema, id).await?);
        self.authorize(scope, &schema, "read", Some(&record))
            .await?;
        let mut record = record;
        for name in self.field_access(scope, &schema).hidden {
            record.remove(&name);
        }
        Ok(Value::Object(record))
        }
        .instrument(span)
        .await
    }

    /// Lists live rows of this tenant: filters, order, keyset pagination.
    pub async fn list(
        &self,
        scope: &TenantScope,
        entity: &str,
        query: &ListQuery,
    ) -> Result<Page, RepoError> {
        let span = super::repo_span("list", scope, entity);
        async {
        let schema = self.schema(scope, entity).await?;
        let access = match &self.authorizer {
            Some(authorizer) => authorizer.row_access(scope, &schema).await,
            None => RowAccess::All,
        };
        if access == RowAccess::AnyOf(Vec::new()) {
            return Err(RepoError::Forbidden {
                action: "read".into(),
                reason: format!("`read` on {} is not permitted for you", schema.name),
            });
        }
        let hidden = self.field_access(scope, &schema).hidden;
        for (i, name) in query.fields.iter().enumerate() {
            if schema.field(name).is_none() && !SYSTEM_INPUT.contains(&name.as_str()) {
                return Err(RepoError::Invalid(vec![field_error(
                    format!("/fields/{i}"),
                    "unknown_field",
                    format!("`{name}` is not a field of `{}`", schema.name),
                )]));
            }
        }
        let custom = self.custom_fields(scope, &schema.name).await?;
        let conditions: Vec<Condition> = match &query.filters {
            Some(filters) => filter::parse_filters(&schema, &custom, filters)?,
            None => Vec::new(),
        };
        let order = filter::parse_order(&schema, &custom, query.order_by.as_deref())?;
        // Filtering or sorting on a hidden field would reveal its values row by row.
        if let Some(name) = conditions
            .iter()
            .map(|c| &c.column.name)
            .chain([&order.column.name])
            .find(|name| hidden.contains(name))
        {
            return Err(RepoError::Forbidden {
                action: "read".into(),
                reason: format!("`{name}` of {} is hidden from you", schema.name),
            });
        }
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(RepoError::Invalid(vec![field_error(
                "/limit",
                "out_of_range",
                format!("limit is between 1 and {MAX_LIMIT}"),
            )]));
        }
        let cursor = query
            .cursor
            .as_deref()
            .map(|c| filter::decode_cursor(c, order.column.ty))
            .transpose()?;
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let (select, slots, mut types) = select_list(&schema, backend);
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let mut clauses = vec![
            format!("tenant_id = {tenant}"),
            "deleted_at IS NULL".to_owned(),
        ];
        for condition in &conditions {
            clauses.push(filter::condition_sql(condition, backend, &mut sql));
        }
        if let RowAccess::AnyOf(any_of) = &access {
            clauses.push(row_access_sql(&schema, &custom, any_of, backend, &mut sql));
        }
        let total = if query.total && access != RowAccess::EachRow {
            let count = Sql {
                text: format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT {}) AS counted",
                    quote(schema.table()),
                    clauses.join(" AND "),
                    MAX_TOTAL + 1
                ),
                args: sql.args.clone(),
            };
            // The clauses so far bind the same arguments as the page's query, in order.
            let rows = on_tenant_reader!(database, &scope.tenant, conn => conn.fetch(&count, &[SqlType::Int]).await?);
            match rows.first().and_then(|r| r.first()) {
                Some(Cell::Int(n)) => Some(u64::try_from(*n).unwrap_or(0)),
                _ => None,
            }
        } else {
            None
        };
        if let Some((value, id)) = &cursor {
            clauses.push(order.after_sql(backend, value, id, &mut sql));
        }
        // The sort column is selected again at the end so the cursor can be built from it.
        let sort_select = order.column.raw(backend);
        types.push(order.column.ty);
        sql.text = format!(
            "SELECT {select}, {sort_select} FROM {} WHERE {} {} LIMIT {}",
            quote(schema.table()),
            clauses.join(" AND "),
            order.sql(backend),
            limit + 1
        );
        let mut rows =
            on_tenant_reader!(database, &scope.tenant, conn => conn.fetch(&sql, &types).await?);
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|cells| {
                let id = match &cells[0] {
                    Cell::Text(id) => id.clone(),
                    _ => String::new(),
                };
                filter::encode_cursor(&cells[cells.len() - 1], &id)
            })
        } else {
            None
        };
        let mut data = Vec::with_capacity(rows.len());
        for cells in &rows {
            let mut record = row_to_record(&slots, &cells[..cells.len() - 1]);
            show_custom(&custom, &mut record);
            // Policies the SQL form cannot express are checked row by row: a page may then
            // come back shorter than `limit`, but never with a row a GET would refuse.
            if access == RowAccess::EachRow
                && self
                    .authorize(scope, &schema, "read", Some(&record))
                    .await
                    .is_err()
            {
                continue;
            }
            if !query.fields.is_empty() {
                record.retain(|k, _| k == "id" || query.fields.iter().any(|f| f == k));
            }
            for name in &hidden {
                record.remove(name);
            }
            data.push(Value::Object(record));
        }
        Ok(Page {
            data,
            next_cursor,
            total,
        })
        }
        .instrument(span)
        .await
    }
}
