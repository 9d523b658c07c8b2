//! JWT signatures on a few dedicated threads, off the async runtime. An RS256 signature
//! costs ~0.3 ms of CPU; run on the runtime's workers, a queue of them delays every task
//! woken by I/O, and a store transaction waiting on such a wake-up holds its connection
//! and locks that much longer (SQLite's single writer above all). The grants that run
//! store transactions sign here (`grants::Signing`, issue 7). Jobs run in arrival order.

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of signing threads fed by one queue. The queue needs no bound of its own:
/// each in-flight token request puts at most one job on it.
#[derive(Clone)]
pub struct SigningPool {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for SigningPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningPool")
    }
}

impl SigningPool {
    /// `threads` signing threads (at least one); they end when the pool is dropped.
    pub fn new(threads: usize) -> Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("jwt-sign-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, not while
                        // running it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| Error::Unexpected(format!("starting a signing thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    /// One thread per core: signing is pure CPU.
    pub fn per_core() -> Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
    }

    /// Runs `f` on a signing thread and waits for its result without blocking the runtime.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Error::Unexpected("the signing threads stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unexpected("a signing thread stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_its_own_threads() {
        let pool = SigningPool::new(2).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("jwt-sign-"));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let p = pool.clone();
                tokio::spawn(async move { p.run(move || i * 2).await.unwrap() })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        assert_eq!(results, (0..16).map(|i| i * 2).collect::<Vec<_>>());
    }
}
