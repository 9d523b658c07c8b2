//! Password hashing: argon2id with OWASP parameters (m=19 MiB, t=2, p=1) on a small pool
//! of dedicated threads, one per allowed concurrent hash, each holding its 19 MiB of
//! argon2 memory while it has work and giving it back to the OS after a second idle. A
//! login flood therefore costs at most that many cores and that much memory (allocating
//! the blocks per hash on the blocking pool let the allocator keep freed blocks in
//! per-thread arenas: 840 MB of RSS under a flood), and a server that served logins
//! does not keep their memory (issue 7).
//! A caller that waits too long for its turn gets `Busy` (503) instead of queueing
//! without bound.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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
    queue: Arc<QueueHandle>,
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

/// The hashing threads' jobs. Callers hold a permit, so at most one job per thread waits.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// Threads holding argon2 memory right now.
    holding: AtomicUsize,
}

struct QueueState {
    jobs: VecDeque<Job>,
    open: bool,
}

/// Closes the queue when the last `PasswordHasher` clone goes, which ends the threads.
struct QueueHandle(Arc<Queue>);

impl Drop for QueueHandle {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.open = false;
        }
        self.0.ready.notify_all();
    }
}

/// How long a hashing thread keeps its argon2 memory without work.
const IDLE_RELEASE: Duration = Duration::from_secs(1);

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
        Self::with_idle_release(max_concurrent, IDLE_RELEASE)
    }

    fn with_idle_release(max_concurrent: usize, idle_release: Duration) -> Result<Self> {
        let threads = max_concurrent.max(1);
        let params = params()?;
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::with_capacity(threads),
                open: true,
            }),
            ready: Condvar::new(),
            holding: AtomicUsize::new(0),
        });
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&params, &queue, idle_release))
                .map_err(|e| Error::Unexpected(format!("starting a hashing thread: {e}")))?;
        }
        // A random salt and a random output in today's PHC format: verifying against it
        // costs exactly what a real hash costs, and no password can match it. Building it
        // takes no argon2 run, which kept start-up ~60 ms longer (issue 7: start to ready).
        let dummy = phc_string(&params, &random_bytes::<16>()?, &random_bytes::<32>()?)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            queue: Arc::new(QueueHandle(queue)),
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
        let queue = &self.queue.0;
        queue
            .state
            .lock()
            .map_err(|_| Error::Unexpected("a hashing thread panicked".into()))?
            .jobs
            .push_back(job(tx));
        queue.ready.notify_one();
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
        // Nobody types these; a password of NULs passes any length rule.
        if password.chars().any(char::is_control) {
            return Err(Error::invalid("password", "must not contain control characters"));
        }
        // NIST SP 800-63B §5.1.1.2 names repetitive passwords among those to refuse.
        let mut chars = password.chars();
        if let Some(first) = chars.next()
            && chars.all(|c| c == first)
        {
            return Err(Error::invalid("password", "must not be one character repeated"));
        }
        // NIST SP 800-63B §5.1.1.2: "commonly-used, expected, or compromised" values are
        // refused, whatever their case, compared as passwords are (in NFKC).
        if is_common(password) {
            return Err(Error::invalid(
                "password",
                "is one of the most commonly used passwords, which are tried first; choose another",
            ));
        }
        Ok(())
    }

    /// Hashes the password in NFKC (`normalized`).
    pub async fn hash(&self, password: &Secret) -> Result<String> {
        let password = normalized(password);
        self.run(|tx| Job::Hash(password, tx)).await
    }

    /// Verifies `password` against a PHC string, or against a dummy hash when `phc` is
    /// `None`, which always fails but costs the same. In NFKC first; a password typed in
    /// another form is then also tried as typed, which hashes set before passwords were
    /// normalized need (a second hash, for known and unknown accounts alike).
    pub async fn verify(&self, password: &Secret, phc: Option<&str>) -> Result<bool> {
        let known = phc.is_some();
        let phc = phc
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let nfkc = normalized(password);
        let as_typed = (nfkc.expose() != password.expose()).then(|| (password.clone(), phc.clone()));
        let mut ok = self.run(|tx| Job::Verify(nfkc, phc, tx)).await?;
        if let (false, Some((password, phc))) = (ok, as_typed) {
            ok = self.run(|tx| Job::Verify(password, phc, tx)).await?;
        }
        Ok(ok && known)
    }
}

/// NIST SP 800-63B §5.1.1.2: a password is compared in NFKC, so the same text typed where
/// accents come precomposed (`é`) or combining (`e` + U+0301) is one password.
/// The passwords of 8 characters or more among the 30,000 most common in zxcvbn 4.4.2's
/// frequency lists (MIT; `data/common_passwords.LICENSE.txt`), lower case, one a line:
/// 11,611 of them, about 110 KB.
static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| include_str!("../data/common_passwords.txt").lines().collect());

/// Whether `password` is on the list of common passwords, in any case.
fn is_common(password: &str) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = password.nfkc().collect::<String>().to_lowercase();
    COMMON.contains(folded.as_str())
}

fn normalized(password: &Secret) -> Secret {
    use unicode_normalization::UnicodeNormalization;
    Secret::new(password.expose().nfkc().collect::<String>())
}

/// How much lower than the rest of the server the hashing threads run (nice value
/// steps). Under a login flood the hashes would otherwise take their share of the cores
/// at the same weight as the runtime's threads, and every token request would wait
/// behind them: on a 2-core AMD EPYC VM, `client_credentials` beside 16 login workers
/// went from 585 req/s with p99 59 ms to 1,015 req/s with p99 36 ms at +10, while the
/// logins fell from 19.9/s to 7.3/s (issue 7, bench/PROFILE.md). With idle cores the
/// hashes run as fast as before: priority only decides who waits when both want a core.
const HASHING_NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority by `HASHING_NICENESS`, up to the lowest
/// (19). On Linux the nice value belongs to the thread, not the process (setpriority(2),
/// "BUGS"), so the runtime's threads keep theirs. Lowering needs no privilege; a failure
/// leaves the thread as it was.
#[cfg(target_os = "linux")]
fn lower_priority() {
    use rustix::process::{getpriority_process, setpriority_process};
    let tid = Some(rustix::thread::gettid());
    let lowered = getpriority_process(tid).and_then(|nice| setpriority_process(tid, (nice + HASHING_NICENESS).min(19)));
    if let Err(e) = lowered {
        tracing::warn!(error = %e, "could not lower the CPU priority of a password-hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// One hashing thread: takes jobs until the hasher is dropped, reusing its blocks.
fn worker(params: &Params, queue: &Queue, idle_release: Duration) {
    lower_priority();
    // Allocated at the first job, not at start: an idle server keeps its memory small.
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = match next_job(queue, !blocks.is_empty(), idle_release) {
            Next::Job(job) => job,
            Next::Idle => {
                blocks = Vec::new();
                queue.holding.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            Next::Closed => return,
        };
        if blocks.is_empty() {
            blocks = working_memory(params.block_count());
            queue.holding.fetch_add(1, Ordering::Relaxed);
        }
        match job {
            Job::Hash(pw, reply) => {
                let _ = reply.send(hash_in(params, pw.expose().as_bytes(), &mut blocks));
            }
            Job::Verify(pw, phc, reply) => {
                let _ = reply.send(verify_in(pw.expose().as_bytes(), &phc, &mut blocks));
            }
        }
    }
}

enum Next {
    Job(Job),
    /// No job for `idle_release` while holding memory: time to give it back.
    Idle,
    Closed,
}

/// Waits for the next job. The condition variable releases the lock while waiting, so
/// every thread's idle timer runs on its own.
fn next_job(queue: &Queue, holding: bool, idle_release: Duration) -> Next {
    let Ok(mut state) = queue.state.lock() else {
        return Next::Closed;
    };
    loop {
        if let Some(job) = state.jobs.pop_front() {
            return Next::Job(job);
        }
        if !state.open {
            return Next::Closed;
        }
        if holding {
            match queue.ready.wait_timeout(state, idle_release) {
                Ok((s, waited)) if waited.timed_out() && s.jobs.is_empty() => return Next::Idle,
                Ok((s, _)) => state = s,
                Err(_) => return Next::Closed,
            }
        } else {
            match queue.ready.wait(state) {
                Ok(s) => state = s,
                Err(_) => return Next::Closed,
            }
        }
    }
}

/// Blocks of argon2 memory (1 KiB each) past glibc's largest dynamic mmap threshold
/// (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB on 64-bit; mallopt(3)).
const PAST_DYNAMIC_MMAP_THRESHOLD: usize = 33 * 1024;

/// Argon2's working memory of `blocks` blocks. Its capacity is reserved past 32 MiB so
/// that glibc maps it on its own and unmaps it when freed without raising its dynamic
/// mmap threshold: freeing a mapped chunk of up to 32 MiB raises the threshold to that
/// size, after which every thread's arena keeps up to twice as much free memory (a login
/// flood then peaked near 100 MB instead of 60). The part past `blocks` is never
/// touched, so it costs address space, not memory.
fn working_memory(blocks: usize) -> Vec<Block> {
    let mut memory = Vec::with_capacity(blocks.max(PAST_DYNAMIC_MMAP_THRESHOLD));
    memory.resize(blocks, Block::default());
    memory
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
        argon.hash_password_into_with_memory(password, salt_bytes, &mut out, working_memory(needed))
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
    fn common_passwords_are_refused_in_any_case() {
        for common in [
            "password",
            "PassWord",
            "12345678",
            "iloveyou",
            "qwertyuiop",
            "Ｐａｓｓｗｏｒｄ",
        ] {
            let e = PasswordHasher::check_policy(common).unwrap_err();
            assert!(e.to_string().contains("most commonly used"), "{common}: {e}");
        }
        assert!(COMMON.len() > 11_000);
        assert!(COMMON.iter().all(|p| p.chars().count() >= MIN_PASSWORD_LEN));
        PasswordHasher::check_policy("correct horse battery").unwrap();
        PasswordHasher::check_policy("a long passphrase").unwrap();
    }

    #[tokio::test]
    async fn passwords_compare_in_nfkc() {
        let h = PasswordHasher::new(2).unwrap();
        let composed = "caf\u{e9} au lait";
        let combining = "cafe\u{301} au lait";
        let phc = h.hash(&Secret::new(composed)).await.unwrap();
        assert!(h.verify(&Secret::new(combining), Some(&phc)).await.unwrap());
        let phc = h.hash(&Secret::new(combining)).await.unwrap();
        assert!(h.verify(&Secret::new(composed), Some(&phc)).await.unwrap());
        assert!(!h.verify(&Secret::new("cafe au lait"), Some(&phc)).await.unwrap());
        // A hash made before normalization, of the password as typed, still verifies.
        let params = params().unwrap();
        let mut blocks = working_memory(params.block_count());
        let old = hash_in(&params, combining.as_bytes(), &mut blocks).unwrap();
        assert!(h.verify(&Secret::new(combining), Some(&old)).await.unwrap());
        assert!(!h.verify(&Secret::new(combining), None).await.unwrap());
    }

    #[tokio::test]
    async fn threads_give_their_memory_back_when_idle() {
        let h = PasswordHasher::with_idle_release(2, Duration::from_millis(200)).unwrap();
        let holding = || h.queue.0.holding.load(Ordering::Relaxed);
        assert_eq!(holding(), 0);
        let phc = h.hash(&Secret::new("correct horse")).await.unwrap();
        let pw = Secret::new("correct horse");
        let (a, b) = tokio::join!(h.verify(&pw, Some(&phc)), h.verify(&pw, Some(&phc)));
        assert!(a.unwrap() && b.unwrap());
        assert!(holding() >= 1);
        // Busy threads keep their memory from one job to the next...
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(h.verify(&Secret::new("correct horse"), Some(&phc)).await.unwrap());
            assert!(holding() >= 1);
        }
        // ...and give it back once idle.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while holding() > 0 {
            assert!(std::time::Instant::now() < deadline, "still holding: {}", holding());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // And take it again for the next job.
        assert!(h.verify(&Secret::new("correct horse"), Some(&phc)).await.unwrap());
        assert_eq!(holding(), 1);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        use rustix::process::{Pid, getpriority_process};
        use rustix::thread::gettid;
        let ours = getpriority_process(Some(gettid())).unwrap();
        let want = (ours + HASHING_NICENESS).min(19);
        let h = PasswordHasher::new(2).unwrap();
        assert!(h.verify(&Secret::new("correct horse"), None).await.is_ok());
        // Each thread lowers itself when it starts.
        let argon2_threads = || -> Vec<i32> {
            let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
                return Vec::new();
            };
            tasks
                .filter_map(|t| {
                    let t = t.ok()?;
                    let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                    let tid = t.file_name().to_str()?.parse().ok()?;
                    // Gone since the listing: skipped.
                    comm.starts_with("argon2-")
                        .then(|| getpriority_process(Pid::from_raw(tid)).ok())?
                })
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let niceness = argon2_threads();
            if niceness.len() >= 2 && niceness.iter().all(|n| *n == want) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{niceness:?}, want {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The runtime's threads (this one) keep theirs.
        assert_eq!(getpriority_process(Some(gettid())).unwrap(), ours);
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
