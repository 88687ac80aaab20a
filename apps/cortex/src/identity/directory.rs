//! Tenants and users: creating them, listing them and changing their status, roles and
//! attributes.

use super::*;

impl Identity {
    /// Creates a tenant and its first user, an administrator, in one transaction.
    pub async fn create_tenant(
        &self,
        name: &str,
        admin_email: &str,
        admin_password: &str,
    ) -> Result<Tenant, IdentityError> {
        if !prefiq::context::is_tenant_name(name) {
            return Err(IdentityError::Invalid {
                field: "name",
                message: "a tenant name is 1 to 63 of a-z, 0-9 and `-`, not starting with `-`"
                    .into(),
            });
        }
        let email = normalise_email(admin_email)?;
        let hash = prefiq_auth::hash_password(admin_password)
            .await
            .map_err(|e| IdentityError::Invalid {
                field: "password",
                message: e.to_string(),
            })?;
        let now = civil_now();
        let roles = serde_json::json!([ADMIN_ROLE]).to_string();
        let user_id = uuid::Uuid::now_v7().to_string();
        in_tx!(self.database()?, conn => {
            let inserted = conn
                .execute(&Sql::new(
                    "INSERT INTO cortex_tenants (name, status, created_at) VALUES ($1, 'active', $2) ON CONFLICT (name) DO NOTHING",
                    vec![name.into(), now.as_str().into()],
                ))
                .await?;
            if inserted == 0 {
                return Err(IdentityError::TenantExists(name.to_owned()));
            }
            conn.execute(&Sql::new(
                "INSERT INTO cortex_users (tenant_id, id, email, password_hash, roles, status, created_at) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
                vec![
                    name.into(),
                    user_id.as_str().into(),
                    email.as_str().into(),
                    hash.as_str().into(),
                    roles.as_str().into(),
                    now.as_str().into(),
                ],
            ))
            .await?;
        });
        tracing::info!(target: "cortex::identity", tenant = name, "tenant created");
        self.audit(
            name,
            None,
            "tenant_create",
            Some(&user_id),
            serde_json::json!({"admin": {"after": {"sha256": prefiq_data::audit::pii_hash(name, &serde_json::json!(email))}}}),
        )
        .await;
        Ok(Tenant {
            name: name.to_owned(),
            status: "active".into(),
            created_at: now,
        })
    }

    /// Adds a user to `tenant`.
    pub async fn create_user(
        &self,
        tenant: &str,
        email: &str,
        password: &str,
        roles: &[String],
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<UserInfo, IdentityError> {
        let email = normalise_email(email)?;
        check_roles(roles)?;
        check_attributes(attributes)?;
        let hash =
            prefiq_auth::hash_password(password)
                .await
                .map_err(|e| IdentityError::Invalid {
                    field: "password",
                    message: e.to_string(),
                })?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = civil_now();
        let sql = "INSERT INTO cortex_users (tenant_id, id, email, password_hash, roles, attributes, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7) ON CONFLICT (tenant_id, email) DO NOTHING";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                id.as_str().into(),
                email.as_str().into(),
                hash.as_str().into(),
                serde_json::json!(roles).to_string().into(),
                serde_json::Value::Object(attributes.clone())
                    .to_string()
                    .into(),
                now.as_str().into(),
            ],
        );
        let inserted = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        if inserted == 0 {
            return Err(IdentityError::UserExists(email));
        }
        tracing::info!(target: "cortex::identity", tenant, user = %id, "user created");
        Ok(UserInfo {
            id,
            email,
            roles: roles.to_vec(),
            attributes: attributes.clone(),
            status: "active".into(),
            created_at: now,
        })
    }

    /// The users of `tenant`, by email (at most [`MAX_LISTED_USERS`]).
    pub async fn users(&self, tenant: &str) -> Result<Vec<UserInfo>, IdentityError> {
        let sql = "SELECT id, email, roles, attributes, status, created_at FROM cortex_users WHERE tenant_id = $1 ORDER BY email LIMIT $2";
        let sql = Sql::new(sql, vec![tenant.into(), MAX_LISTED_USERS.into()]);
        let rows = on_reader!(self.database()?, conn => conn
            .fetch(&sql, &[SqlType::Text; 6])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = Cells::of(row);
                UserInfo {
                    id: c.text(),
                    email: c.text(),
                    roles: serde_json::from_str(&c.text()).unwrap_or_default(),
                    attributes: serde_json::from_str(&c.text()).unwrap_or_default(),
                    status: c.text(),
                    created_at: c.text(),
                }
            })
            .collect())
    }

    /// Changes a user's roles, attributes or status (`active` or `disabled`). Every token
    /// of the user stops at once: its refresh tokens are revoked and its session epoch
    /// bumped (access tokens carry roles and attributes, so they must not outlive them),
    /// and its API keys are read again on their next use.
    pub async fn update_user(
        &self,
        tenant: &str,
        id: &str,
        roles: Option<&[String]>,
        attributes: Option<&serde_json::Map<String, serde_json::Value>>,
        status: Option<&str>,
    ) -> Result<(), IdentityError> {
        if let Some(roles) = roles {
            check_roles(roles)?;
        }
        if let Some(attributes) = attributes {
            check_attributes(attributes)?;
        }
        if status.is_some_and(|s| s != "active" && s != "disabled") {
            return Err(IdentityError::Invalid {
                field: "status",
                message: "a user's status is `active` or `disabled`".into(),
            });
        }
        let sql = "UPDATE cortex_users SET roles = COALESCE($1, roles), attributes = COALESCE($2, attributes), status = COALESCE($3, status), session_epoch = session_epoch + 1 WHERE tenant_id = $4 AND id = $5";
        let roles = roles.map(|r| serde_json::json!(r).to_string());
        let attributes = attributes.map(|a| serde_json::Value::Object(a.clone()).to_string());
        let admins = Sql::new(
            crate::recovery::ACTIVE_ADMINS_SQL,
            vec![tenant.into(), crate::recovery::admin_pattern().into()],
        );
        let changed = in_tx!(self.database()?, conn => {
            // Changes to one tenant's users run one at a time (a row lock on PostgreSQL;
            // SQLite writes one at a time anyway), so two administrators cannot disable
            // each other at once and leave none.
            conn.execute(&Sql::new(crate::recovery::LOCK_TENANT_SQL, vec![tenant.into()]))
                .await?;
            let admins_before = conn
                .fetch_optional(&admins, &[SqlType::Int])
                .await?
                .map_or(0, |row| Cells::of(row).int());
            let changed = conn
                .execute(&Sql::new(
                    sql,
                    vec![
                        roles.into(),
                        attributes.into(),
                        status.into(),
                        tenant.into(),
                        id.into(),
                    ],
                ))
                .await?;
            let admins_after = conn
                .fetch_optional(&admins, &[SqlType::Int])
                .await?
                .map_or(0, |row| Cells::of(row).int());
            if admins_before > 0 && admins_after == 0 {
                return Err(IdentityError::LastAdministrator(tenant.to_owned()));
            }
            conn.execute(&Sql::new(
                "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                vec![unix_now().into(), tenant.into(), id.into()],
            ))
            .await?;
            changed
        });
        if changed == 0 {
            return Err(IdentityError::NoUser(id.to_owned()));
        }
        self.forget_user(tenant, id);
        tracing::info!(target: "cortex::identity", tenant, user = id, "user changed");
        Ok(())
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, IdentityError> {
        let sql = "SELECT name, status, created_at FROM cortex_tenants ORDER BY name";
        let sql = Sql::new(sql, vec![]);
        let rows = on_reader!(self.database()?, conn => conn
            .fetch(&sql, &[SqlType::Text; 3])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = Cells::of(row);
                Tenant {
                    name: c.text(),
                    status: c.text(),
                    created_at: c.text(),
                }
            })
            .collect())
    }

    /// Sets a tenant `active` or `suspended`. A suspended tenant's tokens stop working at
    /// once and its users cannot log in.
    pub async fn set_status(&self, name: &str, status: &str) -> Result<(), IdentityError> {
        let sql = "UPDATE cortex_tenants SET status = $1 WHERE name = $2";
        let sql = Sql::new(sql, vec![status.into(), name.into()]);
        let changed = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        self.cached.status.invalidate(name, "status");
        if changed == 0 {
            return Err(IdentityError::NoTenant(name.to_owned()));
        }
        tracing::info!(target: "cortex::identity", tenant = name, status, "tenant status changed");
        self.audit(
            name,
            None,
            if status == "active" {
                "tenant_resume"
            } else {
                "tenant_suspend"
            },
            None,
            serde_json::json!({"status": {"after": status}}),
        )
        .await;
        Ok(())
    }

    pub(crate) async fn tenant_active(&self, name: &str) -> Result<bool, IdentityError> {
        self.cached
            .status
            .get_or_load(name, "status", || self.read_tenant_active(name))
            .await
    }

    pub(crate) async fn read_tenant_active(&self, name: &str) -> Result<bool, IdentityError> {
        let sql = "SELECT status FROM cortex_tenants WHERE name = $1";
        let sql = Sql::new(sql, vec![name.into()]);
        let status: Option<String> = on_reader!(self.database()?, conn => conn
            .fetch_optional(&sql, &[SqlType::Text])
            .await?)
        .map(|row| Cells::of(row).text());
        Ok(status.as_deref() == Some("active"))
    }
}
