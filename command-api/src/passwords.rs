//! Password hashing (argon2id) on a small, fixed set of threads.
//!
//! An argon2id hash takes about 19 MiB and tens of milliseconds of one core, on
//! purpose. Run on actix's blocking pool, a burst of logins ran hundreds of hashes at
//! once, and the allocator kept every thread's 19 MiB: 200 wrong passwords took the
//! process from 9 MiB to 3.4 GB. Here at most one hash runs per core, on threads that
//! live as long as the process, each hashing in one block of memory it allocates once
//! and reuses (allocating 19 MiB per hash, even on two threads, left glibc holding
//! some 270 MiB). Memory stays flat however many requests queue; the queue is bounded,
//! and a waiting request holds no thread.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                let mut memory = Vec::new();
                loop {
                    // One thread waits on the queue at a time; the others wait for the lock.
                    let job = match rx.lock() {
                        Ok(mut rx) => rx.blocking_recv(),
                        Err(_) => None,
                    };
                    match job {
                        Some(job) => run(job, &mut memory),
                        None => return,
                    }
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

fn run(job: Job, memory: &mut Vec<Block>) {
    match job {
        Job::Hash { password, reply } => {
            let _ = reply.send(hash(password.as_bytes(), memory).map_err(|e| e.to_string()));
        }
        Job::Verify { password, hash, reply } => {
            let _ = reply.send(verify(password.as_bytes(), &hash, memory).unwrap_or(false));
        }
    }
}

/// An argon2id PHC string with the default parameters and a fresh salt.
fn hash(password: &[u8], memory: &mut Vec<Block>) -> argon2::password_hash::Result<String> {
    let argon2 = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let output = compute(&argon2, password, salt_bytes, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to the PHC string `stored`, under its own parameters.
fn verify(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> argon2::password_hash::Result<bool> {
    let stored = PasswordHash::new(stored)?;
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else { return Ok(false) };
    let algorithm = Algorithm::try_from(stored.algorithm)?;
    let version = stored.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, Params::try_from(&stored)?);
    let mut salt_bytes = [0u8; 64];
    let computed = compute(&argon2, password, salt.decode_b64(&mut salt_bytes)?, memory)?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

/// Hashes in `memory`, grown (once) to what the parameters need.
fn compute(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<Output> {
    let blocks = argon2.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let len = argon2.params().output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_interoperate_with_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        let ours = hash(b"correct-horse", &mut memory).expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default().verify_password(b"correct-horse", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"correct-horse", &salt).expect("hash").to_string();
        assert!(verify(b"correct-horse", &theirs, &mut memory).expect("verify"));
        assert!(!verify(b"wrong-horse", &theirs, &mut memory).expect("verify"));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = Passwords::start();
        let hash = passwords.hash("correct-horse".into()).await.expect("hash");
        assert!(passwords.verify("correct-horse".into(), hash.clone()).await.expect("verify"));
        assert!(!passwords.verify("wrong-horse".into(), hash).await.expect("verify"));
        assert!(!passwords.verify("x".into(), "not a phc string".into()).await.expect("verify"));
    }
}
