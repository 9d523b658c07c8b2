//! `DeviceRepo` on PostgreSQL: device authorization requests (RFC 8628), decided in a
//! browser and redeemed once by their client's polling.

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::model::{DeviceAuthorization, DeviceDecision, Digest, Grant, RefreshToken};
use portcullis_core::repo::{DevicePoll, DeviceRepo, StoreResult};
use portcullis_protocol::ClientId;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PgStore;
use crate::codec;
use crate::error::ResultExt;
use crate::grants::{bind_new_grant, insert_new_grant};

macro_rules! device_columns {
    () => {
        "device_code_hash, user_code_hash, client_id, scope, resource, requested_from, created_at, expires_at, \
         interval_secs, last_polled_at, status, user_id, auth_time, sid, approved_scope"
    };
}

#[derive(FromRow)]
struct DeviceRow {
    device_code_hash: Vec<u8>,
    user_code_hash: Vec<u8>,
    client_id: String,
    scope: String,
    resource: Option<String>,
    requested_from: Option<String>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    interval_secs: i64,
    last_polled_at: Option<OffsetDateTime>,
    status: String,
    user_id: Option<Uuid>,
    auth_time: Option<OffsetDateTime>,
    sid: Option<String>,
    approved_scope: Option<String>,
}

/// A row as a poll reads it: with what its redemption made, if it was redeemed.
#[derive(FromRow)]
struct PolledRow {
    #[sqlx(flatten)]
    device: DeviceRow,
    redeemed_at: Option<OffsetDateTime>,
    grant_id: Option<Uuid>,
}

impl DeviceRow {
    fn into_device(self) -> StoreResult<DeviceAuthorization> {
        let decision = match (
            self.status.as_str(),
            self.user_id,
            self.auth_time,
            self.sid,
            self.approved_scope,
        ) {
            ("pending", ..) => DeviceDecision::Pending,
            ("denied", ..) => DeviceDecision::Denied,
            ("approved", Some(user_id), Some(auth_time), Some(sid), Some(scope)) => DeviceDecision::Approved {
                user_id,
                auth_time,
                sid,
                scope: codec::scope("device_authorizations.approved_scope", &scope)?,
            },
            ("approved", ..) => {
                return Err(codec::corrupt(
                    "device_authorizations.status",
                    "approved without its approver",
                ));
            }
            (other, ..) => {
                return Err(codec::corrupt(
                    "device_authorizations.status",
                    format!("unknown value {other:?}"),
                ));
            }
        };
        Ok(DeviceAuthorization {
            device_code_hash: codec::digest("device_authorizations.device_code_hash", &self.device_code_hash)?,
            user_code_hash: codec::digest("device_authorizations.user_code_hash", &self.user_code_hash)?,
            client_id: codec::client_id("device_authorizations.client_id", &self.client_id)?,
            scope: codec::scope("device_authorizations.scope", &self.scope)?,
            resource: self.resource,
            requested_from: self.requested_from,
            created_at: self.created_at,
            expires_at: self.expires_at,
            interval: self.interval_secs,
            last_polled_at: self.last_polled_at,
            decision,
        })
    }
}

/// The stored `status` of a decision.
fn status(decision: &DeviceDecision) -> &'static str {
    match decision {
        DeviceDecision::Pending => "pending",
        DeviceDecision::Approved { .. } => "approved",
        DeviceDecision::Denied => "denied",
    }
}

/// The approver columns (`user_id`, `auth_time`, `sid`, `approved_scope`): set only for
/// an approval.
fn approver(decision: &DeviceDecision) -> (Option<Uuid>, Option<OffsetDateTime>, Option<&str>, Option<String>) {
    match decision {
        DeviceDecision::Approved {
            user_id,
            auth_time,
            sid,
            scope,
        } => (
            Some(*user_id),
            Some(*auth_time),
            Some(sid.as_str()),
            Some(scope.as_string()),
        ),
        DeviceDecision::Pending | DeviceDecision::Denied => (None, None, None, None),
    }
}

#[async_trait]
impl DeviceRepo for PgStore {
    async fn insert_device_authorization(&self, device: &DeviceAuthorization) -> StoreResult<()> {
        let (user_id, auth_time, sid, approved_scope) = approver(&device.decision);
        sqlx::query(concat!(
            "INSERT INTO device_authorizations (",
            device_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(device.device_code_hash.as_slice())
        .bind(device.user_code_hash.as_slice())
        .bind(device.client_id.as_str())
        .bind(device.scope.as_string())
        .bind(&device.resource)
        .bind(&device.requested_from)
        .bind(device.created_at)
        .bind(device.expires_at)
        .bind(device.interval)
        .bind(device.last_polled_at)
        .bind(status(&device.decision))
        .bind(user_id)
        .bind(auth_time)
        .bind(sid)
        .bind(approved_scope)
        .execute(&self.pool)
        .await
        .conflict("device authorization")?;
        Ok(())
    }

    async fn get_pending_device_authorization(
        &self,
        user_code_hash: &Digest,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceAuthorization>> {
        sqlx::query_as::<_, DeviceRow>(concat!(
            "SELECT ",
            device_columns!(),
            " FROM device_authorizations WHERE user_code_hash = $1 AND status = 'pending' \
             AND redeemed_at IS NULL AND expires_at > $2"
        ))
        .bind(user_code_hash.as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(DeviceRow::into_device)
        .transpose()
    }

    async fn decide_device_authorization(
        &self,
        user_code_hash: &Digest,
        decision: &DeviceDecision,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        // A caller's mistake: "undecided" is not a decision to record.
        if *decision == DeviceDecision::Pending {
            return Err(StoreError::Unexpected(
                "a device authorization cannot be decided pending".into(),
            ));
        }
        let (user_id, auth_time, sid, approved_scope) = approver(decision);
        // Of two decisions at once, the second waits on the row lock and then finds it
        // decided.
        let done = sqlx::query(
            "UPDATE device_authorizations SET status = $2, user_id = $3, auth_time = $4, sid = $5, \
             approved_scope = $7 WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $6",
        )
        .bind(user_code_hash.as_slice())
        .bind(status(decision))
        .bind(user_id)
        .bind(auth_time)
        .bind(sid)
        .bind(now)
        .bind(approved_scope)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn poll_device_authorization(
        &self,
        device_code_hash: &Digest,
        client_id: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<DevicePoll> {
        // The row is locked from the read to the poll's write, so two polls at once cannot
        // both find the last poll long enough ago.
        let mut tx = self.pool.begin().await.db()?;
        let row = sqlx::query_as::<_, PolledRow>(concat!(
            "SELECT ",
            device_columns!(),
            ", redeemed_at, grant_id FROM device_authorizations WHERE device_code_hash = $1 AND client_id = $2 \
             FOR UPDATE"
        ))
        .bind(device_code_hash.as_slice())
        .bind(client_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(DevicePoll::Invalid);
        };
        if row.redeemed_at.is_some() {
            let grant_id = row
                .grant_id
                .ok_or_else(|| codec::corrupt("device_authorizations.grant_id", "redeemed without its grant"))?;
            return Ok(DevicePoll::Redeemed { grant_id });
        }
        let device = row.device.into_device()?;
        if device.expires_at <= now {
            return Ok(DevicePoll::Expired);
        }
        match device.decision {
            DeviceDecision::Denied => return Ok(DevicePoll::Denied),
            DeviceDecision::Approved { .. } => return Ok(DevicePoll::Approved(Box::new(device))),
            DeviceDecision::Pending => {}
        }
        // RFC 8628 §3.5: a poll sooner than the interval is told to slow down, and the
        // interval grows for all later polls.
        // In whole seconds, as on SQLite (which keeps no more): a device that waits
        // `interval` seconds between polls is never told to slow down.
        let too_soon = device
            .last_polled_at
            .is_some_and(|last| now.unix_timestamp() < last.unix_timestamp() + device.interval);
        let sql = if too_soon {
            "UPDATE device_authorizations SET last_polled_at = $2, interval_secs = interval_secs + 5 \
             WHERE device_code_hash = $1"
        } else {
            "UPDATE device_authorizations SET last_polled_at = $2 WHERE device_code_hash = $1"
        };
        sqlx::query(sql)
            .bind(device_code_hash.as_slice())
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok(if too_soon {
            DevicePoll::SlowDown
        } else {
            DevicePoll::Pending
        })
    }

    async fn redeem_device_authorization(
        &self,
        device_code_hash: &Digest,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        // As `redeem_code`, one statement: mark it redeemed, insert the grant and its first
        // refresh token. A concurrent redemption waits on the row lock in the UPDATE and
        // then finds it redeemed, so it inserts nothing. The refresh token's foreign key is
        // checked at the end of the statement, when the grant row exists.
        let redeemed: Option<Uuid> = bind_new_grant(
            sqlx::query_scalar(concat!(
                "WITH consumed AS ( \
                     UPDATE device_authorizations SET redeemed_at = $2, grant_id = $3 \
                     WHERE device_code_hash = $1 AND status = 'approved' AND redeemed_at IS NULL \
                           AND expires_at > $2 \
                     RETURNING 1), ",
                insert_new_grant!()
            ))
            .bind(device_code_hash.as_slice())
            .bind(now),
            grant,
            refresh,
        )
        .fetch_optional(&self.pool)
        .await
        .conflict("grant")?;
        Ok(redeemed.is_some())
    }

    async fn delete_device_approvals(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM device_authorizations WHERE user_id = $1 AND client_id = $2 AND redeemed_at IS NULL",
        )
        .bind(user_id)
        .bind(client_id.as_str())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_device_authorizations(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        // Bounded like the retention deletes; the statement's shape is explained at
        // `delete_expired_refresh_tokens`.
        self.delete_batch(
            "DELETE FROM device_authorizations WHERE device_code_hash = ANY(ARRAY( \
                 SELECT device_code_hash FROM device_authorizations WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        .await
    }
}
