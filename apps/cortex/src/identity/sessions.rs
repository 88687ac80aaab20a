//! Logins and sessions: login, refresh-token rotation, password change and logout.

use super::*;

impl Identity {
    /// Checks an email and password in `tenant`, tried from client `address`, and issues
    /// an access token. Every failure reads `BadCredentials` — a wrong password, an
    /// unknown email, a disabled user, a suspended tenant, and a locked (account, address)
    /// pair or address alike — after one password verification and the throttle's delay
    /// (see [`crate::throttle`]), so the answer says nothing about the account.
    pub async fn login(
        &self,
        tenant: &str,
        email: &str,
        password: &str,
        address: &str,
    ) -> Result<Session, IdentityError> {
        let email = normalise_email(email).map_err(|_| IdentityError::BadCredentials)?;
        let locked = self.throttle.locked(tenant, &email, address);
        let active = self.tenant_active(tenant).await?;
        let sql = "SELECT id, password_hash, roles, attributes, status, session_epoch FROM cortex_users WHERE tenant_id = $1 AND email = $2";
        let sql = Sql::new(sql, vec![tenant.into(), email.as_str().into()]);
        let types = [
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
        ];
        let row: Option<UserRow> = on_reader!(self.database()?, conn => conn
            .fetch_optional(&sql, &types)
            .await?)
        .map(|row| {
            let mut c = Cells::of(row);
            UserRow {
                id: c.text(),
                hash: c.text(),
                roles: c.text(),
                attributes: c.text(),
                status: c.text(),
                epoch: c.int(),
            }
        });
        let row = row.filter(|_| active);
        // One verification on every path, against the decoy when there is no user.
        // A user imported without a password hash (`prefiq tenant import` of an export
        // made without `--include-password-hashes`) has an empty one, which never
        // verifies; it is checked against the decoy like an unknown email, so that the
        // answer's timing does not tell such an account apart either.
        let verified = match row.as_ref().filter(|user| !user.hash.is_empty()) {
            Some(user) => prefiq_auth::verify_password(&user.hash, password).await,
            None => {
                let decoy = self
                    .decoy
                    .get_or_init(prefiq_auth::password::decoy_hash)
                    .await;
                let _ = prefiq_auth::verify_password(decoy, password).await;
                false
            }
        };
        let Some(UserRow {
            id,
            roles,
            attributes,
            epoch,
            ..
        }) = row
            .as_ref()
            .filter(|user| verified && !locked && user.status == "active")
        else {
            let delay = self.throttle.failed(tenant, &email, address);
            // The audit record is written during the delay, so a real user's failure
            // takes no longer than an unknown email's.
            let record = async {
                if let Some(user) = &row {
                    self.audit(
                        tenant,
                        None,
                        "login_failed",
                        Some(&user.id),
                        serde_json::json!({"locked": {"after": locked}}),
                    )
                    .await;
                }
            };
            tokio::join!(record, tokio::time::sleep(delay));
            return Err(IdentityError::BadCredentials);
        };
        self.throttle.succeeded(tenant, &email, address);
        let session = self
            .issue_session(tenant, id, roles, attributes, *epoch, None)
            .await?;
        self.audit(tenant, Some(id), "login", Some(id), serde_json::json!({}))
            .await;
        Ok(session)
    }

    /// A new access token and a new refresh token (in `family`, or a new one).
    async fn issue_session(
        &self,
        tenant: &str,
        user: &str,
        roles: &str,
        attributes: &str,
        epoch: i64,
        family: Option<&str>,
    ) -> Result<Session, IdentityError> {
        let now = unix_now();
        let secret: [u8; 32] = rand::random();
        let refresh_token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
        let family = family.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let sql = "INSERT INTO cortex_refresh_tokens (tenant_id, id, family_id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                uuid::Uuid::now_v7().to_string().into(),
                family.as_str().into(),
                user.into(),
                sha256_hex(&refresh_token).into(),
                (now + self.refresh_ttl_s).into(),
                civil_now().into(),
            ],
        );
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        let claims = AccessClaims {
            iss: String::new(),
            sub: user.to_owned(),
            tenant: tenant.to_owned(),
            roles: serde_json::from_str(roles).unwrap_or_default(),
            attrs: serde_json::from_str(attributes).unwrap_or_default(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_s,
            jti: uuid::Uuid::now_v7().to_string(),
            epoch,
        };
        Ok(Session {
            access_token: self.key.issue(claims),
            token_type: "Bearer",
            expires_in: self.ttl_s,
            refresh_token,
            refresh_expires_in: self.refresh_ttl_s,
        })
    }

    async fn find_refresh(&self, refresh_token: &str) -> Result<Option<RefreshRow>, IdentityError> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Ok(None);
        }
        let sql = "SELECT tenant_id, id, family_id, user_id, expires_at, used_at, revoked_at FROM cortex_refresh_tokens WHERE token_hash = $1";
        let sql = Sql::new(sql, vec![sha256_hex(refresh_token).into()]);
        let types = [
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
            SqlType::Int,
            SqlType::Int,
        ];
        let row = on_pool!(self.database()?, conn => conn
            .fetch_optional(&sql, &types)
            .await?)
        .map(|row| {
            let mut c = Cells::of(row);
            RefreshRow {
                tenant: c.text(),
                id: c.text(),
                family: c.text(),
                user: c.text(),
                expires_at: c.int(),
                used_at: c.opt_int(),
                revoked_at: c.opt_int(),
            }
        });
        Ok(row)
    }

    async fn revoke_family(&self, tenant: &str, family: &str) -> Result<(), IdentityError> {
        let sql = "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND family_id = $3 AND revoked_at IS NULL";
        let sql = Sql::new(sql, vec![unix_now().into(), tenant.into(), family.into()]);
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        Ok(())
    }

    /// Exchanges a refresh token for a new session. Each refresh token works once: a second
    /// use (a stolen copy, or the thief's) revokes every token of its login.
    pub async fn refresh(
        &self,
        tenant: Option<&str>,
        refresh_token: &str,
    ) -> Result<Session, IdentityError> {
        let now = unix_now();
        let Some(row) = self.find_refresh(refresh_token).await? else {
            return Err(IdentityError::RefreshInvalid);
        };
        if tenant.is_some_and(|t| t != row.tenant)
            || row.revoked_at.is_some()
            || row.expires_at < now
        {
            return Err(IdentityError::RefreshInvalid);
        }
        if row.used_at.is_some() {
            self.revoke_family(&row.tenant, &row.family).await?;
            tracing::warn!(target: "cortex::identity", tenant = %row.tenant, user = %row.user, "refresh token reused; its login is revoked");
            return Err(IdentityError::RefreshReused);
        }
        // Only one of two concurrent uses wins this update; the other counts as a reuse.
        let sql = "UPDATE cortex_refresh_tokens SET used_at = $1 WHERE tenant_id = $2 AND id = $3 AND used_at IS NULL AND revoked_at IS NULL";
        let sql = Sql::new(
            sql,
            vec![
                now.into(),
                row.tenant.as_str().into(),
                row.id.as_str().into(),
            ],
        );
        let won = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        if won == 0 {
            self.revoke_family(&row.tenant, &row.family).await?;
            return Err(IdentityError::RefreshReused);
        }
        if !self.read_tenant_active(&row.tenant).await? {
            return Err(IdentityError::RefreshInvalid);
        }
        let sql = "SELECT roles, attributes, status, session_epoch FROM cortex_users WHERE tenant_id = $1 AND id = $2";
        let sql = Sql::new(
            sql,
            vec![row.tenant.as_str().into(), row.user.as_str().into()],
        );
        let types = [SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Int];
        let user: Option<(String, String, String, i64)> = on_pool!(self.database()?, conn => conn
            .fetch_optional(&sql, &types)
            .await?)
        .map(|row| {
            let mut c = Cells::of(row);
            (c.text(), c.text(), c.text(), c.int())
        });
        let Some((roles, attributes, "active", epoch)) = user
            .as_ref()
            .map(|(r, a, s, e)| (r.as_str(), a.as_str(), s.as_str(), *e))
        else {
            return Err(IdentityError::RefreshInvalid);
        };
        self.issue_session(
            &row.tenant,
            &row.user,
            roles,
            attributes,
            epoch,
            Some(&row.family),
        )
        .await
    }

    /// Changes a user's password after checking the current one, and revokes every token
    /// of the user: its refresh tokens, and (through its session epoch) its access tokens.
    pub async fn change_password(
        &self,
        tenant: &str,
        user: &str,
        current: &str,
        new: &str,
    ) -> Result<(), IdentityError> {
        let new_hash =
            prefiq_auth::hash_password(new)
                .await
                .map_err(|e| IdentityError::Invalid {
                    field: "new_password",
                    message: e.to_string(),
                })?;
        // Guessing the current password with a stolen session is throttled as logins
        // are, per user (the user stands where a login's address does).
        let guesser = format!("user\u{0}{user}");
        if self.throttle.locked(tenant, PASSWORD_CHANGE, &guesser) {
            return Err(IdentityError::WrongPassword);
        }
        let sql = "SELECT password_hash FROM cortex_users WHERE tenant_id = $1 AND id = $2 AND status = 'active'";
        let sql = Sql::new(sql, vec![tenant.into(), user.into()]);
        let hash: Option<String> = on_pool!(self.database()?, conn => conn
            .fetch_optional(&sql, &[SqlType::Text])
            .await?)
        .map(|row| Cells::of(row).text());
        let Some(hash) = hash else {
            return Err(IdentityError::WrongPassword);
        };
        if !prefiq_auth::verify_password(&hash, current).await {
            let delay = self.throttle.failed(tenant, PASSWORD_CHANGE, &guesser);
            tokio::time::sleep(delay).await;
            return Err(IdentityError::WrongPassword);
        }
        self.throttle.succeeded(tenant, PASSWORD_CHANGE, &guesser);
        let now = unix_now();
        in_tx!(self.database()?, conn => {
            conn.execute(&Sql::new(
                "UPDATE cortex_users SET password_hash = $1, failed_logins = 0, locked_until = NULL, session_epoch = session_epoch + 1 WHERE tenant_id = $2 AND id = $3",
                vec![new_hash.as_str().into(), tenant.into(), user.into()],
            ))
            .await?;
            conn.execute(&Sql::new(
                "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                vec![now.into(), tenant.into(), user.into()],
            ))
            .await?;
        });
        self.forget_user(tenant, user);
        tracing::info!(target: "cortex::identity", tenant, user, "password changed");
        Ok(())
    }

    /// Ends the login a refresh token belongs to: every token of its family is revoked,
    /// and the user's session epoch bumped, so the access tokens issued so far stop at
    /// once (the user's other logins get new ones with their own refresh tokens).
    /// Unknown tokens are ignored, so logging out twice is not an error.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        if let Some(row) = self.find_refresh(refresh_token).await? {
            self.revoke_family(&row.tenant, &row.family).await?;
            self.bump_epoch(&row.tenant, &row.user).await?;
            self.audit(
                &row.tenant,
                Some(&row.user),
                "logout",
                Some(&row.user),
                serde_json::json!({}),
            )
            .await;
        }
        Ok(())
    }
}
