//! Tenant custom fields: definitions, their cache and their indexes.

use super::*;

/// Records a custom field definition and creates its index, in the caller's transaction.
pub(super) async fn insert_custom_field(
    conn: &mut Conn<'_>,
    sql: &Sql,
    index: Option<&str>,
) -> Result<(), RepoError> {
    conn.execute(sql).await.map_err(|e| match &e {
        e if e.is_unique_violation() => RepoError::Unique(field_error(
            "/name",
            "unique",
            "a custom field of that name already exists",
        )),
        _ => RepoError::Database(e),
    })?;
    if let Some(index) = index {
        conn.execute(&Sql {
            text: index.to_owned(),
            args: vec![],
        })
        .await?;
    }
    Ok(())
}

/// Replaces the stored `custom` object of a record by what the API shows.
pub(super) fn show_custom(definitions: &[FieldDef], record: &mut Map<String, Value>) {
    let shown = match record.get("custom") {
        Some(Value::Object(stored)) if !stored.is_empty() => custom::show(definitions, stored),
        _ => return,
    };
    record.insert("custom".into(), Value::Object(shown));
}

impl Repository {
    /// The tenant's custom fields of `entity`, by name.
    pub async fn custom_fields(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Arc<Vec<FieldDef>>, RepoError> {
        let key = (scope.tenant.clone(), entity.to_owned());
        if let Ok(cache) = self.custom_cache.lock()
            && let Some((read_at, fields)) = cache.get(&key)
            && read_at.elapsed() < CUSTOM_CACHE_TTL
        {
            return Ok(fields.clone());
        }
        let fields = Arc::new(self.read_custom_fields(scope, entity).await?);
        if let Ok(mut cache) = self.custom_cache.lock() {
            if cache.len() >= CUSTOM_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (std::time::Instant::now(), fields.clone()));
        }
        Ok(fields)
    }

    pub(super) fn forget_custom_fields(&self, scope: &TenantScope, entity: &str) {
        if let Ok(mut cache) = self.custom_cache.lock() {
            cache.remove(&(scope.tenant.clone(), entity.to_owned()));
        }
    }

    pub(super) async fn read_custom_fields(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Vec<FieldDef>, RepoError> {
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let entity_arg = sql.arg(Arg::Text(Some(entity.to_owned())));
        let handle = self.tenant_handle(scope).await?;
        let definition = if handle.get()?.backend() == Backend::Postgres {
            "definition::text"
        } else {
            "definition"
        };
        sql.text = format!(
            "SELECT {definition} FROM prefiq_custom_fields WHERE tenant_id = {tenant} AND entity = {entity_arg} ORDER BY name"
        );
        let rows = on_reader!(handle.get()?, conn => conn.fetch(&sql, &[SqlType::Text]).await?);
        Ok(rows
            .iter()
            .filter_map(|r| match r.first() {
                Some(Cell::Text(t)) => serde_json::from_str::<FieldDef>(t).ok(),
                _ => None,
            })
            .collect())
    }

    /// Adds a custom field to `entity` for this tenant; with `indexed`, also a per-tenant
    /// expression index on it.
    pub async fn add_custom_field(
        &self,
        scope: &TenantScope,
        entity: &str,
        body: &Value,
    ) -> Result<FieldDef, RepoError> {
        let schema = self.schema(scope, entity).await?;
        self.authorize(scope, &schema, "customize", None).await?;
        if !schema.storage.is_table() {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "view_entity",
                format!(
                    "{} is a view of rows its module writes: it has no column to hold a custom field",
                    schema.name
                ),
            )]));
        }
        let field = custom::parse_definition(&schema, body).map_err(|message| {
            RepoError::Invalid(vec![field_error("", "invalid_definition", message)])
        })?;
        let existing = self.custom_fields(scope, entity).await?;
        if existing.len() >= custom::MAX_CUSTOM_FIELDS {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "too_many",
                format!(
                    "at most {} custom fields per entity",
                    custom::MAX_CUSTOM_FIELDS
                ),
            )]));
        }
        if existing.iter().any(|f| f.name == field.name) {
            return Err(RepoError::Unique(field_error(
                "/name",
                "unique",
                format!("`{}` already has a custom field `{}`", entity, field.name),
            )));
        }
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let definition = serde_json::to_string(&field).map_err(|e| {
            RepoError::Invalid(vec![field_error("", "invalid_definition", e.to_string())])
        })?;
        let mut sql = Sql::default();
        let values = [
            sql.arg(Arg::Text(Some(scope.tenant.clone()))),
            sql.arg(Arg::Text(Some(entity.to_owned()))),
            sql.arg(Arg::Text(Some(field.name.clone()))),
            {
                let p = sql.arg(Arg::Text(Some(definition)));
                if backend == Backend::Postgres {
                    format!("{p}::jsonb")
                } else {
                    p
                }
            },
            sql.arg(Arg::Text(Some(civil_now()))),
        ];
        sql.text = format!(
            "INSERT INTO prefiq_custom_fields (tenant_id, entity, name, definition, created_at) VALUES ({})",
            values.join(", ")
        );
        let index = field
            .indexed
            .then(|| custom::index_statement(&schema, &field, &scope.tenant, backend));
        in_write_tx!(database, conn => insert_custom_field(conn, &sql, index.as_deref()).await?);
        self.forget_custom_fields(scope, entity);
        Ok(field)
    }

    /// Removes a custom field definition of this tenant. Stored values stay in the rows (and
    /// come back if the field is added again) but are no longer shown.
    pub async fn remove_custom_field(
        &self,
        scope: &TenantScope,
        entity: &str,
        name: &str,
    ) -> Result<(), RepoError> {
        let schema = self.schema(scope, entity).await?;
        self.authorize(scope, &schema, "customize", None).await?;
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let entity_arg = sql.arg(Arg::Text(Some(entity.to_owned())));
        let name_arg = sql.arg(Arg::Text(Some(name.to_owned())));
        sql.text = format!(
            "DELETE FROM prefiq_custom_fields WHERE tenant_id = {tenant} AND entity = {entity_arg} AND name = {name_arg}"
        );
        let handle = self.tenant_handle(scope).await?;
        let removed = on_writer!(handle.get()?, conn => conn.execute(&sql).await?);
        self.forget_custom_fields(scope, entity);
        if removed == 0 {
            return Err(RepoError::NotFound {
                entity: format!("custom field of {entity}"),
                id: name.to_owned(),
            });
        }
        Ok(())
    }
}
