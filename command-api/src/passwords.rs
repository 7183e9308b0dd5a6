//! Password hashing (argon2id) on a small, fixed set of threads.
//!
//! An argon2id hash takes about 19 MiB and tens of milliseconds of one core, on
//! purpose. Run on actix's blocking pool, a burst of logins ran hundreds of hashes at
//! once, and the allocator kept every thread's 19 MiB: 200 wrong passwords took the
//! process from 9 MiB to 3.4 GB. Here at most one hash runs per core, on threads that
//! live as long as the process, so memory stays flat however many requests queue; the
//! queue is bounded, and a waiting request holds no thread.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use infra::http::error::ApiError;
use tokio::sync::{mpsc, oneshot};

/// How many hash requests may wait for a thread before callers wait to enqueue.
const QUEUE: usize = 256;

enum Job {
    Hash { password: String, reply: oneshot::Sender<Result<String, String>> },
    Verify { password: String, hash: String, reply: oneshot::Sender<bool> },
}

/// A handle to the hashing threads; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

impl Passwords {
    /// Starts one hashing thread per core (at most four).
    pub fn start() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || loop {
                // One thread waits on the queue at a time; the others wait for the lock.
                let job = match rx.lock() {
                    Ok(mut rx) => rx.blocking_recv(),
                    Err(_) => None,
                };
                match job {
                    Some(job) => run(job),
                    None => return,
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Passwords { jobs }
    }

    /// An argon2id PHC string for `password`, with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Hash { password, reply }).await?;
        answer
            .await
            .map_err(|_| unexpected("the hashing thread went away"))?
            .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("hashing failed: {e}")))
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Verify { password, hash, reply }).await?;
        answer.await.map_err(|_| unexpected("the hashing thread went away"))
    }

    async fn send(&self, job: Job) -> Result<(), ApiError> {
        self.jobs.send(job).await.map_err(|_| unexpected("no password hashing thread is running"))
    }
}

fn unexpected(what: &'static str) -> ApiError {
    ApiError::Unexpected(anyhow::anyhow!(what))
}

fn run(job: Job) {
    match job {
        Job::Hash { password, reply } => {
            let salt = SaltString::generate(&mut OsRng);
            let hash = Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string());
            let _ = reply.send(hash);
        }
        Job::Verify { password, hash, reply } => {
            let ok = PasswordHash::new(&hash)
                .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
            let _ = reply.send(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = Passwords::start();
        let hash = passwords.hash("correct-horse".into()).await.expect("hash");
        assert!(passwords.verify("correct-horse".into(), hash.clone()).await.expect("verify"));
        assert!(!passwords.verify("wrong-horse".into(), hash).await.expect("verify"));
        assert!(!passwords.verify("x".into(), "not a phc string".into()).await.expect("verify"));
    }
}
