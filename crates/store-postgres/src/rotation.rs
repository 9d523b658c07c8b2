//! Refresh rotation's common case, batched (issue 7). Concurrent rotations on one node go
//! to PostgreSQL together, as one statement over arrays: a commit, a round trip and a
//! statement's fixed cost per batch instead of per refresh. Measured with pgbench on a
//! 2-core VM, PostgreSQL spent 0.30 ms of CPU per rotation one at a time and 0.09 ms in
//! batches of eight; refresh rotation shares its cores with two RSA signatures per
//! refresh, so what PostgreSQL saves goes to signing.
//!
//! One batch runs at a time: a rotation that finds none running goes at once, alone;
//! rotations that arrive while one runs queue, and the next batch takes all of them (up to
//! `MAX_BATCH`). Each rotation's answer is the one it gets by itself (`rotate_one`). A
//! batch never waits on a row lock (SKIP LOCKED); the rotations it could not take run one
//! by one beside it.
//!
//! The cost is latency where PostgreSQL's commit, not the CPU, is the bound: a rotation
//! may wait for the running batch's commit. On a 2-core AMD EPYC (Zen 3) VM, in paired
//! runs of `bench/run.sh`: ES256 refresh at 64 connections 2.1–4.2 times the rate, at 16
//! connections 10–28% less; RS256 refresh (CPU-bound by its signatures) at 64 connections
//! +2–12%, at 16 within the noise (`bench/PROFILE.md`, eighth pass).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;

use portcullis_core::model::{Digest, Grant, RefreshToken, User};
use portcullis_core::{StoreError, StoreResult};
use portcullis_protocol::ClientId;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::ResultExt;
use crate::grants::RefreshUserRow;

/// Batches running at once. One: with two, three or four the batches were smaller and
/// every load measured slower. A batch cannot be held up by another transaction's row
/// lock (SKIP LOCKED), so one slot is not a queue behind a slow lock.
const IN_FLIGHT: usize = 1;
/// At most this many rotations in one statement.
const MAX_BATCH: usize = 64;

/// The rotation statement over arrays, `$lock` being how it takes the token rows: the
/// batch skips rows another transaction holds (`SKIP LOCKED`), a rotation by itself waits
/// for them. Returns the grant (`used`), the successor token (`fresh`) and the grant's
/// user, as `RefreshUserRow` reads them.
macro_rules! rotation_sql {
    ($lock:literal) => {
        concat!(
            "WITH req AS ( \
                 SELECT * FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::timestamptz[], $5::timestamptz[]) \
                     AS r(old_hash, client_id, new_hash, now, expires_at)), \
             free AS ( \
                 SELECT rt.token_hash FROM refresh_tokens rt JOIN req ON rt.token_hash = req.old_hash \
                 WHERE rt.used_at IS NULL FOR UPDATE OF rt ",
            $lock,
            "), \
             used AS ( \
                 UPDATE refresh_tokens rt SET used_at = req.now FROM free, req, grants g \
                 WHERE rt.token_hash = free.token_hash AND req.old_hash = free.token_hash \
                   AND rt.used_at IS NULL AND rt.expires_at > req.now \
                   AND rt.client_id = req.client_id AND g.id = rt.grant_id \
                   AND g.revoked_at IS NULL AND g.expires_at > req.now AND g.resource IS NULL \
                 RETURNING req.new_hash, req.now AS req_now, req.expires_at AS req_expires_at, \
                           req.client_id AS req_client_id, \
                           g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.sid, g.nonce, \
                           g.created_at, g.expires_at, g.revoked_at, g.dpop_jkt, g.resource), \
             fresh AS ( \
                 INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at, used_at) \
                 SELECT new_hash, id, req_client_id, scope, req_now, LEAST(req_expires_at, expires_at), NULL FROM used \
                 RETURNING token_hash, grant_id, client_id, scope, created_at, expires_at, used_at) \
             SELECT used.id, used.client_id, used.user_id, used.scope, used.auth_time, used.sid, used.nonce, \
                    used.created_at, used.expires_at, used.revoked_at, used.dpop_jkt, used.resource, \
                    fresh.token_hash AS rt_token_hash, fresh.grant_id AS rt_grant_id, \
                    fresh.client_id AS rt_client_id, fresh.scope AS rt_scope, \
                    fresh.created_at AS rt_created_at, fresh.expires_at AS rt_expires_at, \
                    fresh.used_at AS rt_used_at, \
                    u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified, \
                    u.name AS u_name, u.given_name AS u_given_name, u.family_name AS u_family_name, u.password_hash AS u_password_hash, u.disabled AS u_disabled, \
                    u.created_at AS u_created_at, u.updated_at AS u_updated_at \
             FROM used JOIN fresh ON fresh.token_hash = used.new_hash JOIN users u ON u.id = used.user_id"
        )
    };
}

type Rotated = StoreResult<Option<(RefreshToken, Grant, User)>>;

/// One rotation of a live refresh token (`RefreshRepo::rotate_live_refresh_token`).
pub(crate) struct Rotation {
    pub(crate) old_hash: Digest,
    pub(crate) client_id: ClientId,
    pub(crate) new_hash: Digest,
    pub(crate) now: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
}

struct Job {
    rotation: Rotation,
    reply: oneshot::Sender<Rotated>,
}

/// The queue in front of the batching task, which runs until the last clone of the
/// store holding this is dropped.
pub(crate) struct Rotator {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Rotator {
    /// Starts the batching task on the current tokio runtime.
    pub(crate) fn spawn(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(pool, queue));
        Self { jobs }
    }

    pub(crate) async fn rotate(&self, pool: &PgPool, rotation: Rotation) -> Rotated {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job { rotation, reply }) {
            // The task is gone (its runtime shut down): nothing was written, run it here.
            return rotate_one(pool, &job.rotation).await;
        }
        // The task dropped the job without answering only if its runtime stopped while the
        // statement ran. Running it again could find the token used and take it for a
        // replay, so this is an error, not a retry.
        answer
            .await
            .map_err(|_| StoreError::Unexpected("refresh rotation stopped before it answered".into()))?
    }
}

async fn dispatch(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // Rotations of a token already in the batch being formed wait for the next batch, so
    // one statement never holds two rotations of one token.
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let first = match held.pop_front() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut later = VecDeque::new();
        while batch.len() < MAX_BATCH {
            let Some(job) = held.pop_front().or_else(|| queue.try_recv().ok()) else {
                break;
            };
            if batch.iter().any(|b| b.rotation.old_hash == job.rotation.old_hash) {
                later.push_back(job);
            } else {
                batch.push(job);
            }
        }
        later.extend(held.drain(..));
        held = later;
        let pool = pool.clone();
        tokio::spawn(async move {
            run(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn run(pool: &PgPool, batch: Vec<Job>) {
    let rotations: Vec<&Rotation> = batch.iter().map(|job| &job.rotation).collect();
    let mut rotated = match rotate(pool, &rotations, Lock::Skip).await {
        Ok(rows) => rows,
        Err(e) => {
            // Nothing of the batch was written (one statement); each rotation gets its own
            // answer below instead.
            tracing::debug!(error = %e, size = batch.len(), "batched refresh rotation failed; rotating one by one");
            HashMap::new()
        }
    };
    for job in batch {
        match rotated.remove(job.rotation.new_hash.as_slice()) {
            // The caller may have gone (its client disconnected); its token is rotated all
            // the same, as it would be had it run the statement itself.
            Some(row) => drop(job.reply.send(row.into_triple().map(Some))),
            // Not rotated in the batch: not live, or locked by another transaction.
            // `rotate_one` waits for such a lock and tells which; on a task of its
            // own, so the wait holds up neither this batch's answers nor the next batch.
            None => {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let answer = rotate_one(&pool, &job.rotation).await;
                    drop(job.reply.send(answer));
                });
            }
        }
    }
}

/// One rotation by itself. Where the batch skips a token row another transaction holds,
/// this waits for it and then re-checks `used_at IS NULL` against the committed row: of
/// two concurrent rotations of one token, one rotates and the other gets no row and goes
/// on to reuse detection.
async fn rotate_one(pool: &PgPool, r: &Rotation) -> Rotated {
    rotate(pool, &[r], Lock::Wait)
        .await?
        .remove(r.new_hash.as_slice())
        .map(RefreshUserRow::into_triple)
        .transpose()
}

/// How `rotate` takes the token rows.
#[derive(Clone, Copy)]
enum Lock {
    /// Skips a row another transaction holds (SKIP LOCKED): one contested token does not
    /// hold up a batch, and batches cannot deadlock with each other.
    Skip,
    /// Waits for it.
    Wait,
}

/// The rotated ones of `rotations`, by successor digest, in one statement, so one round
/// trip and no explicit transaction: each rotation with its own `now` and expiry, if its
/// token is unused, unexpired, issued to its client, and its grant live.
async fn rotate(pool: &PgPool, rotations: &[&Rotation], lock: Lock) -> StoreResult<HashMap<Vec<u8>, RefreshUserRow>> {
    let mut old_hashes = Vec::with_capacity(rotations.len());
    let mut client_ids = Vec::with_capacity(rotations.len());
    let mut new_hashes = Vec::with_capacity(rotations.len());
    let mut nows = Vec::with_capacity(rotations.len());
    let mut expiries = Vec::with_capacity(rotations.len());
    for r in rotations {
        old_hashes.push(r.old_hash.as_slice().to_vec());
        client_ids.push(r.client_id.as_str());
        new_hashes.push(r.new_hash.as_slice().to_vec());
        nows.push(r.now);
        expiries.push(r.expires_at);
    }
    let sql = match lock {
        Lock::Skip => rotation_sql!("SKIP LOCKED"),
        Lock::Wait => rotation_sql!(""),
    };
    let rows = sqlx::query_as::<_, RefreshUserRow>(sql)
        .bind(old_hashes)
        .bind(client_ids)
        .bind(new_hashes)
        .bind(nows)
        .bind(expiries)
        .fetch_all(pool)
        .await
        .conflict("refresh token")?;
    Ok(rows
        .into_iter()
        .map(|row| (row.successor_hash().to_vec(), row))
        .collect())
}
