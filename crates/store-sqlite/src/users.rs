//! `UserRepo` and `AdminRepo` on SQLite. Usernames are unique regardless of case and
//! looked up regardless of case, so "Alice" and "alice" are one account.

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::model::{Admin, AdminRole, Revocation, User};
use portcullis_core::repo::{AdminRepo, StoreResult, UserRepo};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::{Found, ResultExt};
use crate::grants::revoke_user;

/// The condition under which an account may stop having the admin role (demoted or
/// deleted): it does not have it, or another account does.
macro_rules! keeps_an_admin {
    () => {
        "(role <> 'admin' OR EXISTS (SELECT 1 FROM admins o WHERE o.role = 'admin' AND o.id <> $1))"
    };
}

macro_rules! user_columns {
    () => {
        "id, username, email, email_verified, name, given_name, family_name, password_hash, disabled, created_at, updated_at"
    };
}

#[derive(FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    password_hash: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    fn into_user(self) -> StoreResult<User> {
        Ok(User {
            id: codec::uuid("users.id", &self.id)?,
            username: self.username,
            email: self.email,
            email_verified: self.email_verified,
            name: self.name,
            given_name: self.given_name,
            family_name: self.family_name,
            password_hash: self.password_hash,
            disabled: self.disabled,
            created_at: codec::time("users.created_at", self.created_at)?,
            updated_at: codec::time("users.updated_at", self.updated_at)?,
        })
    }
}

#[derive(FromRow)]
struct AdminRow {
    id: String,
    username: String,
    password_hash: String,
    role: String,
    created_at: i64,
}

impl AdminRow {
    fn into_admin(self) -> StoreResult<Admin> {
        Ok(Admin {
            id: codec::uuid("admins.id", &self.id)?,
            username: self.username,
            password_hash: self.password_hash,
            role: codec::named("admins.role", &self.role, AdminRole::parse)?,
            created_at: codec::time("admins.created_at", self.created_at)?,
        })
    }
}

#[async_trait]
impl UserRepo for SqliteStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(codec::uuid_text(u.id))
        .bind(&u.username)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(&u.password_hash)
        .bind(u.disabled)
        .bind(codec::ts(u.created_at))
        .bind(codec::ts(u.updated_at))
        .execute(&self.writer)
        .await
        .conflict("username")?;
        Ok(())
    }

    async fn get_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(codec::uuid_text(id))
            .fetch_optional(&self.pool)
            .await
            .db()?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(UserRow::into_user)
        .transpose()
    }

    async fn users_page(&self, search: Option<&str>, limit: u32, offset: u32) -> StoreResult<Vec<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE $1 IS NULL \
              OR instr(lower(username), lower($1)) > 0 \
              OR instr(lower(email), lower($1)) > 0 \
              OR instr(lower(name), lower($1)) > 0 \
             ORDER BY lower(username), id LIMIT $2 OFFSET $3"
        ))
        .bind(search)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(UserRow::into_user)
        .collect()
    }

    async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: &str,
        replacing: Option<&str>,
        now: OffsetDateTime,
        revocations: &[Revocation],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let written = sqlx::query(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 AND ($4 IS NULL OR password_hash = $4)",
        )
        .bind(codec::uuid_text(id))
        .bind(password_hash)
        .bind(codec::ts(now))
        .bind(replacing)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if written == 0 {
            return Err(match replacing {
                Some(_) if self.get_user(id).await?.is_some() => {
                    StoreError::Conflict("the password changed meanwhile".into())
                }
                _ => StoreError::NotFound,
            });
        }
        revoke_user(&mut tx, id, now, revocations).await?;
        tx.commit().await.db()
    }

    async fn set_user_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: OffsetDateTime,
        revocations: &[Revocation],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1")
            .bind(codec::uuid_text(id))
            .bind(disabled)
            .bind(codec::ts(now))
            .execute(&mut *tx)
            .await
            .found()?;
        if disabled {
            revoke_user(&mut tx, id, now, revocations).await?;
        }
        tx.commit().await.db()
    }

    async fn delete_user(&self, id: Uuid, now: OffsetDateTime, revocations: &[Revocation]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        revoke_user(&mut tx, id, now, revocations).await?;
        // Codes, grants, refresh tokens, consents and sessions go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(codec::uuid_text(id))
            .execute(&mut *tx)
            .await
            .found()?;
        tx.commit().await.db()
    }

    async fn update_user_profile(&self, u: &User, previous: &User) -> StoreResult<bool> {
        let written = sqlx::query(
            "UPDATE users SET email = $2, email_verified = $3, name = $4, given_name = $5, family_name = $6, \
             updated_at = $7 WHERE id = $1 AND email IS $8 AND email_verified = $9 AND name IS $10 \
             AND given_name IS $11 AND family_name IS $12",
        )
        .bind(codec::uuid_text(u.id))
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(codec::ts(u.updated_at))
        .bind(&previous.email)
        .bind(previous.email_verified)
        .bind(&previous.name)
        .bind(&previous.given_name)
        .bind(&previous.family_name)
        .execute(&self.writer)
        .await
        .db()?
        .rows_affected();
        if written == 0 && self.get_user(u.id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        Ok(written > 0)
    }

    async fn active_grant_ids_for_user(&self, id: Uuid) -> StoreResult<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(codec::uuid_text(id))
        .fetch_all(&self.pool)
        .await
        .db()?;
        ids.iter().map(|s| codec::uuid("grants.id", s)).collect()
    }
}

#[async_trait]
impl AdminRepo for SqliteStore {
    async fn insert_admin(&self, a: &Admin) -> StoreResult<()> {
        sqlx::query("INSERT INTO admins (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(codec::uuid_text(a.id))
            .bind(&a.username)
            .bind(&a.password_hash)
            .bind(a.role.as_str())
            .bind(codec::ts(a.created_at))
            .execute(&self.writer)
            .await
            .conflict("admin username")?;
        Ok(())
    }

    async fn get_admin_by_username(&self, username: &str) -> StoreResult<Option<Admin>> {
        sqlx::query_as::<_, AdminRow>(
            "SELECT id, username, password_hash, role, created_at FROM admins WHERE lower(username) = lower($1)",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(AdminRow::into_admin)
        .transpose()
    }

    async fn list_admins(&self) -> StoreResult<Vec<Admin>> {
        sqlx::query_as::<_, AdminRow>(
            "SELECT id, username, password_hash, role, created_at FROM admins ORDER BY lower(username)",
        )
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(AdminRow::into_admin)
        .collect()
    }

    async fn set_admin_password_hash(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE admins SET password_hash = $2 WHERE id = $1")
            .bind(codec::uuid_text(id))
            .bind(password_hash)
            .execute(&self.writer)
            .await
            .found()
    }

    // One statement each: SQLite runs a writing statement on the newest data, one writer
    // at a time, so the check inside it cannot be overtaken by another demotion.
    async fn set_admin_role(&self, id: Uuid, role: AdminRole) -> StoreResult<bool> {
        let done = sqlx::query(concat!(
            "UPDATE admins SET role = $2 WHERE id = $1 AND ($2 = 'admin' OR ",
            keeps_an_admin!(),
            ")"
        ))
        .bind(codec::uuid_text(id))
        .bind(role.as_str())
        .execute(&self.writer)
        .await
        .db()?;
        Ok(done.rows_affected() > 0 || self.refused_or_missing(id).await?)
    }

    async fn delete_admin(&self, id: Uuid) -> StoreResult<bool> {
        let done = sqlx::query(concat!("DELETE FROM admins WHERE id = $1 AND ", keeps_an_admin!()))
            .bind(codec::uuid_text(id))
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() > 0 || self.refused_or_missing(id).await?)
    }

    async fn count_admins(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM admins")
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(n.unsigned_abs())
    }
}

impl SqliteStore {
    /// After a guarded statement changed no row: `false` if the account exists (the guard
    /// refused), `NotFound` if it does not.
    async fn refused_or_missing(&self, id: Uuid) -> StoreResult<bool> {
        match sqlx::query_scalar::<_, i32>("SELECT 1 FROM admins WHERE id = $1")
            .bind(codec::uuid_text(id))
            .fetch_optional(&self.writer)
            .await
            .db()?
        {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound),
        }
    }
}
