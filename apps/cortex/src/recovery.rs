//! Keeping a tenant administrable, and getting it back when it is not.
//!
//! Two guards keep an installation from locking itself out: a change to a user that would
//! leave its tenant without an active `System Manager` is refused (see
//! [`Identity::update_user`]), and so is a tenant policy under which an administrator
//! could no longer manage policies ([`check_policy_keeps_administrators`]), since that
//! policy could then never be removed.
//!
//! When a tenant is locked out all the same (a database edited by hand, a policy stored
//! before these guards), `prefiq tenant recover NAME` is the break-glass:
//! [`Identity::recover_tenant`] removes every policy of the tenant and restores an
//! administrator, and records what it did in the tenant's audit log.

use prefiq::Principal;
use prefiq_auth::TenantPolicy;
use prefiq_auth::authz::{CedarAuthorizer, Resource};
use prefiq_data::entity::sql::{Sql, SqlType};
use serde::Serialize;

use crate::access::MANAGE_POLICIES;
use crate::authenticate::BUMP_EPOCH_SQL;
use crate::db::Cells;
use crate::identity::{ADMIN_ROLE, Identity, IdentityError, normalise_email};

/// The columns of a user that recovery reads: id, email, roles, status.
const USER_TYPES: [SqlType; 4] = [SqlType::Text; 4];

/// Takes the tenant's row lock (PostgreSQL) for the rest of the transaction; binds `$1`
/// tenant. Changes to a tenant's users take it first, so they run one at a time.
pub(crate) const LOCK_TENANT_SQL: &str =
    "UPDATE cortex_tenants SET status = status WHERE name = $1";

/// Counts a tenant's active administrators; binds `$1` tenant and `$2`
/// [`admin_pattern`].
pub(crate) const ACTIVE_ADMINS_SQL: &str = "SELECT COUNT(*) FROM cortex_users WHERE tenant_id = $1 AND status = 'active' AND roles LIKE $2";

/// The `LIKE` pattern of a roles column (a JSON array of strings) that holds the
/// administrator role.
pub(crate) fn admin_pattern() -> String {
    format!("%{}%", serde_json::json!(ADMIN_ROLE))
}

/// Refuses `candidate` when, added to the tenant's `existing` policies, it would deny an
/// administrator (any `System Manager`, or the one adding it) the action of managing
/// policies: nobody could remove it afterwards.
pub fn check_policy_keeps_administrators(
    authorizer: &CedarAuthorizer,
    tenant: &str,
    existing: &[TenantPolicy],
    candidate: &TenantPolicy,
    caller: &Principal,
) -> Result<(), String> {
    let mut policies = existing.to_vec();
    policies.push(candidate.clone());
    let model = authorizer
        .candidate_model(tenant, &policies)
        .map_err(|e| e.to_string())?;
    let any_administrator = Principal {
        tenant: tenant.to_owned(),
        user: "any-administrator".to_owned(),
        roles: vec![ADMIN_ROLE.to_owned()],
        attributes: Default::default(),
        api_key: None,
    };
    let mut this_administrator = caller.clone();
    if !this_administrator.roles.iter().any(|r| r == ADMIN_ROLE) {
        this_administrator.roles.push(ADMIN_ROLE.to_owned());
    }
    for (who, principal) in [
        ("a System Manager", &any_administrator),
        ("you", &this_administrator),
    ] {
        let decision = model.decide(principal, tenant, MANAGE_POLICIES, Resource::Tenant);
        if !decision.allowed {
            return Err(format!(
                "policy `{}` would deny {who} `{MANAGE_POLICIES}`, and then it could not be removed; narrow it (for example `unless {{ principal in Role::\"{ADMIN_ROLE}\" }}`)",
                candidate.id
            ));
        }
    }
    Ok(())
}

/// What `prefiq tenant recover` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// The tenant.
    pub tenant: String,
    /// The ids of the policies removed.
    pub policies_removed: Vec<String>,
    /// The administrator's email.
    pub administrator: String,
    /// What was done to it: `created`, `re-enabled`, `given the role`,
    /// `re-enabled and given the role`, or `already active`.
    pub action: String,
}

impl std::fmt::Display for Recovery {
    /// One line per thing done, for the terminal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.policies_removed.is_empty() {
            writeln!(f, "tenant `{}` had no policies of its own", self.tenant)?;
        } else {
            writeln!(
                f,
                "removed {} policies of tenant `{}`: {}",
                self.policies_removed.len(),
                self.tenant,
                self.policies_removed.join(", ")
            )?;
        }
        writeln!(
            f,
            "administrator {} of tenant `{}`: {}",
            self.administrator, self.tenant, self.action
        )
    }
}

impl Identity {
    /// Break-glass recovery of `tenant`: removes every policy of its own and restores an
    /// administrator — `admin_email` when given (created with `admin_password` when it
    /// does not exist; re-enabled and given `System Manager` when it does), else the
    /// tenant's first `System Manager` (re-enabled). The administrator's old tokens stop
    /// working. Recorded in the tenant's audit log as `tenant_recover`.
    pub async fn recover_tenant(
        &self,
        tenant: &str,
        admin_email: Option<&str>,
        admin_password: Option<&str>,
    ) -> Result<Recovery, IdentityError> {
        if !self.tenants().await?.iter().any(|t| t.name == tenant) {
            return Err(IdentityError::NoTenant(tenant.to_owned()));
        }
        let policies_removed: Vec<String> = self
            .policies(tenant)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let email = admin_email.map(normalise_email).transpose()?;
        // The user to restore: the one named, else the first administrator.
        type Row = (String, String, String, String);
        let found: Option<Row> = match &email {
            Some(email) => {
                let sql = "SELECT id, email, roles, status FROM cortex_users WHERE tenant_id = $1 AND email = $2";
                let sql = Sql::new(sql, vec![tenant.into(), email.as_str().into()]);
                on_pool!(self.database()?, conn => conn.fetch_optional(&sql, &USER_TYPES).await?)
            }
            None => {
                let sql = "SELECT id, email, roles, status FROM cortex_users WHERE tenant_id = $1 AND roles LIKE $2 ORDER BY created_at, id LIMIT 1";
                let sql = Sql::new(sql, vec![tenant.into(), admin_pattern().into()]);
                on_pool!(self.database()?, conn => conn.fetch_optional(&sql, &USER_TYPES).await?)
            }
        }
        .map(|row| {
            let mut c = Cells::of(row);
            (c.text(), c.text(), c.text(), c.text())
        });
        let (administrator, action) = match (found, &email) {
            (Some((id, email, roles, status)), _) => {
                let mut roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
                let had_role = roles.iter().any(|r| r == ADMIN_ROLE);
                if !had_role {
                    roles.push(ADMIN_ROLE.to_owned());
                }
                let action = match (status == "active", had_role) {
                    (true, true) => "already active",
                    (true, false) => "given the role",
                    (false, true) => "re-enabled",
                    (false, false) => "re-enabled and given the role",
                };
                let roles = serde_json::json!(roles).to_string();
                in_tx!(self.database()?, conn => {
                    conn.execute(&Sql::new(
                        "DELETE FROM cortex_policies WHERE tenant_id = $1",
                        vec![tenant.into()],
                    ))
                    .await?;
                    conn.execute(&Sql::new(
                        "UPDATE cortex_users SET roles = $1, status = 'active' WHERE tenant_id = $2 AND id = $3",
                        vec![roles.as_str().into(), tenant.into(), id.as_str().into()],
                    ))
                    .await?;
                    conn.execute(&Sql::new(BUMP_EPOCH_SQL, vec![tenant.into(), id.as_str().into()]))
                        .await?;
                });
                self.forget_user(tenant, &id);
                (email, action)
            }
            (None, Some(email)) => {
                let password = admin_password.ok_or_else(|| IdentityError::Invalid {
                    field: "password",
                    message: format!(
                        "{email} is not a user of tenant `{tenant}`; give --admin-password (or PREFIQ_ADMIN_PASSWORD) to create it"
                    ),
                })?;
                let sql = "DELETE FROM cortex_policies WHERE tenant_id = $1";
                let sql = Sql::new(sql, vec![tenant.into()]);
                on_pool!(self.database()?, conn => conn.execute(&sql).await?);
                self.create_user(
                    tenant,
                    email,
                    password,
                    &[ADMIN_ROLE.to_owned()],
                    &serde_json::Map::new(),
                )
                .await?;
                (email.clone(), "created")
            }
            (None, None) => {
                return Err(IdentityError::Invalid {
                    field: "admin_email",
                    message: format!(
                        "tenant `{tenant}` has no System Manager to restore; name one with --admin-email"
                    ),
                });
            }
        };
        let recovery = Recovery {
            tenant: tenant.to_owned(),
            policies_removed,
            administrator,
            action: action.to_owned(),
        };
        tracing::warn!(target: "cortex::identity", tenant, administrator = %recovery.administrator, action, policies_removed = recovery.policies_removed.len(), "tenant recovered (break-glass)");
        self.audit(
            tenant,
            None,
            "tenant_recover",
            None,
            serde_json::json!({
                "policies": {"before": recovery.policies_removed, "after": []},
                "administrator": {"after": {
                    "sha256": prefiq_data::audit::pii_hash(tenant, &serde_json::json!(recovery.administrator)),
                    "action": recovery.action,
                }},
            }),
        )
        .await;
        Ok(recovery)
    }
}
