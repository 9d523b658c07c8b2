//! Password hashing: argon2id with OWASP parameters (m=19 MiB, t=2, p=1) on a small pool
//! of dedicated threads, one per allowed concurrent hash, each owning its 19 MiB of
//! argon2 memory from its first hash on. A login flood therefore costs at most that many
//! cores and that much memory (allocating the blocks per hash on the blocking pool let
//! the allocator keep freed blocks in per-thread arenas: 840 MB of RSS under a flood).
//! A caller that waits too long for its turn gets `Busy` (503) instead of queueing
//! without bound.

use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use portcullis_protocol::Secret;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

use crate::crypto::random_bytes;
use crate::error::{Error, Result};

enum Job {
    Hash(Secret, oneshot::Sender<Result<String>>),
    Verify(Secret, String, oneshot::Sender<Result<bool>>),
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::SyncSender<Job>,
    /// A hash of a random password, verified when the user does not exist so that the
    /// answer takes as long either way and does not reveal which usernames exist.
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// The longest a hash waits for a free slot before the request is answered `Busy`.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Minimum password length accepted for new passwords (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_LEN: usize = 8;

fn params() -> Result<Params> {
    Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| Error::Unexpected(e.to_string()))
}

impl PasswordHasher {
    /// `max_concurrent` hashing threads; further callers wait their turn.
    pub fn new(max_concurrent: usize) -> Result<Self> {
        let threads = max_concurrent.max(1);
        let params = params()?;
        let (jobs, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&params, &rx))
                .map_err(|e| Error::Unexpected(format!("starting a hashing thread: {e}")))?;
        }
        // A random salt and a random output in today's PHC format: verifying against it
        // costs exactly what a real hash costs, and no password can match it. Building it
        // takes no argon2 run, which kept start-up ~60 ms longer (issue 7: start to ready).
        let dummy = phc_string(&params, &random_bytes::<16>()?, &random_bytes::<32>()?)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            jobs,
            dummy_hash: Arc::new(dummy),
        })
    }

    /// Runs a job on the pool once a thread is free (or answers `Busy` after `MAX_WAIT`).
    async fn run<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let _permit = match tokio::time::timeout(MAX_WAIT, self.permits.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return Err(Error::Busy),
        };
        let (tx, rx) = oneshot::channel();
        // A permit means a thread is free, so the bounded channel has room.
        self.jobs.try_send(job(tx)).map_err(|_| Error::Busy)?;
        rx.await
            .map_err(|_| Error::Unexpected("a hashing thread stopped".into()))?
    }

    /// Checks a new password's strength; returns the reason if it is refused.
    pub fn check_policy(password: &str) -> Result<()> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(Error::invalid(
                "password",
                format!("must be at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        if password.len() > 1024 {
            return Err(Error::invalid("password", "must be at most 1024 bytes"));
        }
        Ok(())
    }

    pub async fn hash(&self, password: &Secret) -> Result<String> {
        self.run(|tx| Job::Hash(password.clone(), tx)).await
    }

    /// Verifies `password` against a PHC string, or against a dummy hash when `phc` is
    /// `None`, which always fails but costs the same.
    pub async fn verify(&self, password: &Secret, phc: Option<&str>) -> Result<bool> {
        let known = phc.is_some();
        let phc = phc
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let ok = self.run(|tx| Job::Verify(password.clone(), phc, tx)).await?;
        Ok(ok && known)
    }
}

/// One hashing thread: takes jobs until the hasher is dropped, reusing its blocks.
fn worker(params: &Params, rx: &Mutex<mpsc::Receiver<Job>>) {
    // Allocated at the first job, not at start: an idle server keeps its memory small.
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        if job.is_ok() && blocks.is_empty() {
            blocks = vec![Block::default(); params.block_count()];
        }
        match job {
            Ok(Job::Hash(pw, reply)) => {
                let _ = reply.send(hash_in(params, pw.expose().as_bytes(), &mut blocks));
            }
            Ok(Job::Verify(pw, phc, reply)) => {
                let _ = reply.send(verify_in(pw.expose().as_bytes(), &phc, &mut blocks));
            }
            Err(_) => return,
        }
    }
}

fn unexpected(e: impl std::fmt::Display) -> Error {
    Error::Unexpected(format!("password hashing: {e}"))
}

/// argon2id of `password` with a fresh salt, as a PHC string.
fn hash_in(params: &Params, password: &[u8], blocks: &mut [Block]) -> Result<String> {
    let salt_bytes = random_bytes::<16>()?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt_bytes, &mut out, &mut *blocks)
        .map_err(unexpected)?;
    phc_string(params, &salt_bytes, &out)
}

/// The PHC string of an argon2id output.
fn phc_string(params: &Params, salt_bytes: &[u8], out: &[u8]) -> Result<String> {
    let salt = SaltString::encode_b64(salt_bytes).map_err(unexpected)?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(unexpected)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(out).map_err(unexpected)?),
    };
    Ok(phc.to_string())
}

/// Recomputes a stored PHC hash with its own parameters and compares in constant time.
fn verify_in(password: &[u8], phc: &str, blocks: &mut [Block]) -> Result<bool> {
    let stored = |e: &dyn std::fmt::Display| Error::Unexpected(format!("stored password hash: {e}"));
    let parsed = PasswordHash::new(phc).map_err(|e| stored(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| stored(&e))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| stored(&e))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| stored(&e))?;
    let salt = parsed.salt.ok_or_else(|| stored(&"no salt"))?;
    let expected = parsed.hash.ok_or_else(|| stored(&"no hash"))?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| stored(&e))?;
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let needed = params.block_count();
    if needed <= blocks.len() {
        argon.hash_password_into_with_memory(password, salt_bytes, &mut out, &mut blocks[..needed])
    } else {
        // A hash made with more memory than today's parameters (rare): allocate for it.
        argon.hash_password_into_with_memory(password, salt_bytes, &mut out, vec![Block::default(); needed])
    }
    .map_err(unexpected)?;
    Ok(out.as_slice().ct_eq(expected.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(2).unwrap();
        let phc = h.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(&Secret::new("correct horse"), Some(&phc)).await.unwrap());
        assert!(!h.verify(&Secret::new("wrong horse"), Some(&phc)).await.unwrap());
        assert!(!h.verify(&Secret::new("correct horse"), None).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_real_hashes() {
        // Same cost either way, so timing does not tell unknown usernames apart.
        let h = PasswordHasher::new(1).unwrap();
        assert!(h.dummy_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = PasswordHash::new(&h.dummy_hash).unwrap();
        assert_eq!(parsed.hash.unwrap().len(), 32);
    }

    #[tokio::test]
    async fn verifies_hashes_made_by_the_argon2_crate_with_other_parameters() {
        use argon2::password_hash::PasswordHasher as _;
        let h = PasswordHasher::new(1).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for (m, t) in [(19 * 1024, 2), (8 * 1024, 3), (64 * 1024, 1)] {
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(m, t, 1, None).unwrap());
            let phc = argon.hash_password(b"an old password", &salt).unwrap().to_string();
            assert!(
                h.verify(&Secret::new("an old password"), Some(&phc)).await.unwrap(),
                "m={m} t={t}"
            );
            assert!(!h.verify(&Secret::new("another password"), Some(&phc)).await.unwrap());
        }
    }
}
