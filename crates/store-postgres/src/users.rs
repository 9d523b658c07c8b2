//! `UserRepo` and `AdminRepo` on PostgreSQL. Usernames are unique regardless of case and
//! looked up regardless of case, so "Alice" and "alice" are one account.

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::model::{Admin, AdminRole, Revocation, User};
use portcullis_core::repo::{AdminRepo, StoreResult, UserRepo};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PgStore;
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
    id: Uuid,
    username: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    password_hash: String,
    disabled: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            email_verified: r.email_verified,
            name: r.name,
            given_name: r.given_name,
            family_name: r.family_name,
            password_hash: r.password_hash,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(FromRow)]
struct AdminRow {
    id: Uuid,
    username: String,
    password_hash: String,
    role: String,
    created_at: OffsetDateTime,
}

impl AdminRow {
    fn into_admin(self) -> StoreResult<Admin> {
        Ok(Admin {
            id: self.id,
            username: self.username,
            password_hash: self.password_hash,
            role: codec::named("admins.role", &self.role, AdminRole::parse)?,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl UserRepo for PgStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(u.id)
        .bind(&u.username)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(&u.password_hash)
        .bind(u.disabled)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await
        .conflict("username")?;
        Ok(())
    }

    async fn get_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(User::from))
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        Ok(row.map(User::from))
    }

    async fn users_page(&self, search: Option<&str>, limit: u32, offset: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE $1::text IS NULL \
              OR strpos(lower(username), lower($1)) > 0 \
              OR strpos(lower(email), lower($1)) > 0 \
              OR strpos(lower(name), lower($1)) > 0 \
             ORDER BY lower(username), id LIMIT $2 OFFSET $3"
        ))
        .bind(search)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .db()?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: &str,
        replacing: Option<&str>,
        now: OffsetDateTime,
        revocations: &[Revocation],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        let written = sqlx::query(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 AND ($4::text IS NULL OR password_hash = $4)",
        )
        .bind(id)
        .bind(password_hash)
        .bind(now)
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
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(disabled)
            .bind(now)
            .execute(&mut *tx)
            .await
            .found()?;
        if disabled {
            revoke_user(&mut tx, id, now, revocations).await?;
        }
        tx.commit().await.db()
    }

    async fn delete_user(&self, id: Uuid, now: OffsetDateTime, revocations: &[Revocation]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        revoke_user(&mut tx, id, now, revocations).await?;
        // Codes, grants, refresh tokens, consents and sessions go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .found()?;
        tx.commit().await.db()
    }

    async fn update_user_profile(&self, u: &User, previous: &User) -> StoreResult<bool> {
        let written = sqlx::query(
            "UPDATE users SET email = $2, email_verified = $3, name = $4, given_name = $5, family_name = $6, \
             updated_at = $7 WHERE id = $1 AND email IS NOT DISTINCT FROM $8 AND email_verified = $9 AND name IS NOT DISTINCT FROM $10 \
             AND given_name IS NOT DISTINCT FROM $11 AND family_name IS NOT DISTINCT FROM $12",
        )
        .bind(u.id)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(u.updated_at)
        .bind(&previous.email)
        .bind(previous.email_verified)
        .bind(&previous.name)
        .bind(&previous.given_name)
        .bind(&previous.family_name)
        .execute(&self.pool)
        .await
        .db()?
        .rows_affected();
        if written == 0 && self.get_user(u.id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        Ok(written > 0)
    }

    async fn active_grant_ids_for_user(&self, id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar("SELECT id FROM grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .db()
    }
}

#[async_trait]
impl AdminRepo for PgStore {
    async fn insert_admin(&self, a: &Admin) -> StoreResult<()> {
        sqlx::query("INSERT INTO admins (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(a.id)
            .bind(&a.username)
            .bind(&a.password_hash)
            .bind(a.role.as_str())
            .bind(a.created_at)
            .execute(&self.pool)
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
            .bind(id)
            .bind(password_hash)
            .execute(&self.pool)
            .await
            .found()
    }

    async fn set_admin_role(&self, id: Uuid, role: AdminRole) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.db()?;
        lock_admins(&mut tx).await?;
        let done = sqlx::query(concat!(
            "UPDATE admins SET role = $2 WHERE id = $1 AND ($2 = 'admin' OR ",
            keeps_an_admin!(),
            ")"
        ))
        .bind(id)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await
        .db()?;
        let changed = done.rows_affected() > 0 || refused_or_missing(&mut tx, id).await?;
        tx.commit().await.db()?;
        Ok(changed)
    }

    async fn delete_admin(&self, id: Uuid) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.db()?;
        lock_admins(&mut tx).await?;
        let done = sqlx::query(concat!("DELETE FROM admins WHERE id = $1 AND ", keeps_an_admin!()))
            .bind(id)
            .execute(&mut *tx)
            .await
            .db()?;
        let deleted = done.rows_affected() > 0 || refused_or_missing(&mut tx, id).await?;
        tx.commit().await.db()?;
        Ok(deleted)
    }

    async fn count_admins(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM admins")
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(n.unsigned_abs())
    }
}

/// Locks every account with the admin role until the transaction ends, so demotions and
/// deletions run one at a time: the next one's check (a new snapshot, READ COMMITTED)
/// sees what the previous one did.
async fn lock_admins(tx: &mut sqlx::PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT id FROM admins WHERE role = 'admin' ORDER BY id FOR UPDATE")
        .fetch_all(&mut *tx)
        .await
        .db()?;
    Ok(())
}

/// After a guarded statement changed no row: `false` if the account exists (the guard
/// refused), `NotFound` if it does not.
async fn refused_or_missing(tx: &mut sqlx::PgConnection, id: Uuid) -> StoreResult<bool> {
    match sqlx::query_scalar::<_, i32>("SELECT 1 FROM admins WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .db()?
    {
        Some(_) => Ok(false),
        None => Err(StoreError::NotFound),
    }
}
