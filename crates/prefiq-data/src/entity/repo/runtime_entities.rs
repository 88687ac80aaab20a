//! Schemas as a tenant sees them, and entities a tenant creates at run time.

use super::*;

impl Repository {
    /// The entity `entity` as `scope`'s tenant sees it. An unknown name re-reads the runtime
    /// entities (at most once per [`RUNTIME_RELOAD_INTERVAL`]), so an entity another replica
    /// created is found without a restart.
    pub async fn schema(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Arc<EntitySchema>, RepoError> {
        let visible = |registry: &EntityRegistry| {
            registry
                .get_for(Some(&scope.tenant), entity)
                .filter(|s| !s.child)
                .cloned()
        };
        if let Some(schema) = visible(&self.entities.registry()) {
            return Ok(schema);
        }
        if self.reload_runtime_entities().await?
            && let Some(schema) = visible(&self.entities.registry())
        {
            return Ok(schema);
        }
        Err(RepoError::UnknownEntity(entity.to_owned()))
    }

    /// Adds runtime entities recorded since the registry was loaded; `false` when it is too
    /// soon to look again or the database is not connected.
    pub(super) async fn reload_runtime_entities(&self) -> Result<bool, RepoError> {
        {
            let Ok(mut last) = self.runtime_reload.lock() else {
                return Ok(false);
            };
            if last.is_some_and(|at| at.elapsed() < RUNTIME_RELOAD_INTERVAL) {
                return Ok(false);
            }
            *last = Some(std::time::Instant::now());
        }
        let Ok(database) = self.handle.get() else {
            return Ok(false);
        };
        let registry = self.entities.registry();
        let added: Vec<EntitySchema> = runtime::load(database)
            .await?
            .into_iter()
            .filter(|s| registry.get_for(s.owner_tenant(), &s.name).is_none())
            .collect();
        if added.is_empty() {
            return Ok(false);
        }
        self.entities.add(added).map_err(|e| {
            RepoError::Database(DataError::Sql(sqlx::Error::Decode(e.to_string().into())))
        })?;
        Ok(true)
    }

    /// The runtime entities `scope`'s tenant created, by name.
    pub fn runtime_entities(&self, scope: &TenantScope) -> Vec<Arc<EntitySchema>> {
        self.entities
            .registry()
            .runtime_of(scope.tenant())
            .cloned()
            .collect()
    }

    /// Creates a runtime entity for `scope`'s tenant from `definition` (a schema document):
    /// its table through a recorded migration, then its place in the registry, so its REST
    /// resource and OpenAPI schema exist at once. Returns the stored schema.
    pub async fn create_entity(
        &self,
        scope: &TenantScope,
        definition: &Value,
    ) -> Result<Arc<EntitySchema>, RepoError> {
        let invalid = |pointer: &str, code: &'static str, message: String| {
            RepoError::Invalid(vec![field_error(pointer, code, message)])
        };
        let schema = runtime::parse_definition(&scope.tenant, definition).map_err(|e| {
            invalid(
                &runtime::error_pointer(definition, &e),
                "invalid_schema",
                e.to_string(),
            )
        })?;
        self.authorize(scope, &schema, "customize", None).await?;
        let registry = self.entities.registry();
        // A declared entity (every tenant's) or one of this tenant's: another tenant's
        // entities are not in this tenant's namespace, so the answer says nothing of them.
        if registry
            .get_for(Some(&scope.tenant), &schema.name)
            .is_some()
        {
            return Err(RepoError::Unique(field_error(
                "/name",
                "unique",
                format!("an entity called `{}` already exists", schema.name),
            )));
        }
        if self.runtime_entities(scope).len() >= runtime::MAX_RUNTIME_ENTITIES {
            return Err(invalid(
                "",
                "too_many",
                format!(
                    "a tenant may create at most {} entities",
                    runtime::MAX_RUNTIME_ENTITIES
                ),
            ));
        }
        for (i, field) in schema.fields.iter().enumerate() {
            if let FieldKind::Link { target: entity } = &field.kind
                && registry.get_for(Some(&scope.tenant), entity).is_none()
                && *entity != schema.name
            {
                return Err(invalid(
                    &format!("/fields/{i}"),
                    "invalid_schema",
                    format!("field `{}` links to unknown entity `{entity}`", field.name),
                ));
            }
        }
        // Cross-checks (a link to a child entity, say) before any DDL runs.
        registry.with(vec![schema.clone()]).map_err(|e| {
            invalid(
                &runtime::error_pointer(definition, &e),
                "invalid_schema",
                e.to_string(),
            )
        })?;
        let database = self.database()?;
        let pending = crate::entity::ddl::plan_entity(&schema, None, database.backend())
            .map_err(|e| invalid("", "invalid_schema", e.to_string()))?
            .ok_or_else(|| invalid("", "invalid_schema", "the entity has no table".into()))?;
        let sum = crate::migrate::checksum(&pending.sql);
        match crate::migrate::apply_one(database, &pending, &sum).await {
            Ok(_) => {}
            // Another request (or replica) created the same name first.
            Err(e) if e.to_string().contains("already exists") => {
                return Err(RepoError::Unique(field_error(
                    "/name",
                    "unique",
                    format!("an entity called `{}` already exists", schema.name),
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if let Database::Postgres(pool) = database {
            crate::migrate::secure_tables(pool, crate::entity::ddl::tenant_tables(&schema)).await?;
        }
        // With a database per tenant, the definition stays in the main database (where
        // every replica finds it) and the rows live in the tenant's.
        let handle = self.tenant_handle(scope).await?;
        if !Arc::ptr_eq(&handle, &self.handle) {
            let tenant_database = handle.get()?;
            crate::migrate::apply_one(tenant_database, &pending, &sum).await?;
            if let Database::Postgres(pool) = tenant_database {
                crate::migrate::secure_tables(pool, crate::entity::ddl::tenant_tables(&schema))
                    .await?;
            }
        }
        tracing::info!(
            target: "prefiq::entity",
            tenant = %scope.tenant,
            entity = %schema.name,
            migration = %pending.id,
            trace_id = %scope.trace_id,
            "runtime entity created"
        );
        let name = schema.name.clone();
        self.entities.add(vec![schema]).map_err(|e| {
            RepoError::Database(DataError::Sql(sqlx::Error::Decode(e.to_string().into())))
        })?;
        self.schema(scope, &name).await
    }
}
