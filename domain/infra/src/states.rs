//! The command side's memory of streams: the states its recent commands folded, kept
//! in process and written behind as snapshots.
//!
//! A command locks its streams and reads their heads before it loads them (see
//! [`crate::uow`]). A state kept here is used only when it was folded up to that very
//! head, the same version *and* the same hash of the last event, so it is exactly the
//! state a fold of the stored events would give, whatever other instances appended in
//! between (they move the head, and the state is then folded from the store). The hash
//! also tells apart a stream that was restored to an earlier point and grew again.
//!
//! A long stream (a product with thousands of open redemptions, an account with
//! thousands of lots) then costs its first command a fold, and the next ones a clone.
//! Its snapshot, which only cold loads need, is encoded and written after the command
//! committed, off the request's path; a snapshot never replaces a newer one.
//!
//! Bounded by weight ([`domain::Aggregate::weight`], about one per record the state
//! holds), least recently used first out.

use std::any::Any;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::store::{snapshots, Checkpoint, Head};

/// Snapshots written at the same time, at most; one falling due beyond that is skipped
/// (the next is due a few dozen events later).
const SNAPSHOT_WRITERS: usize = 2;

/// A stream's folded state at a version: the value is the unit of work's own record of
/// it, opaque here.
#[derive(Clone)]
pub(crate) struct Kept {
    pub version: i64,
    pub hash: Vec<u8>,
    /// The checkpoint of the stream's last event, or a later one of the same
    /// transaction; `None` when not known.
    pub last: Option<Checkpoint>,
    pub weight: usize,
    pub value: Arc<dyn Any + Send + Sync>,
}

/// A snapshot that fell due, to encode and write once its events are committed.
pub(crate) struct Behind {
    pub stream_id: String,
    pub schema: i32,
    pub version: i64,
    pub encode: Box<dyn FnOnce() -> Result<Value, serde_json::Error> + Send + Sync>,
}

/// Recent stream states, shared by every command of one process.
pub struct StateCache {
    entries: Mutex<Entries>,
    capacity: usize,
    pool: Pool,
    writers: Arc<Semaphore>,
}

impl std::fmt::Debug for StateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, weight) = self.len_and_weight();
        f.debug_struct("StateCache").field("len", &len).field("weight", &weight).finish_non_exhaustive()
    }
}

struct Entries {
    lru: lru::LruCache<String, Kept>,
    weight: usize,
}

impl StateCache {
    /// Keeps states up to `capacity` in weight (0: keeps none, but still writes
    /// snapshots behind); snapshots are written through `pool`.
    pub fn new(pool: Pool, capacity: usize) -> Arc<Self> {
        Arc::new(StateCache {
            entries: Mutex::new(Entries { lru: lru::LruCache::unbounded(), weight: 0 }),
            capacity,
            pool,
            writers: Arc::new(Semaphore::new(SNAPSHOT_WRITERS)),
        })
    }

    /// The state kept for `stream_id` if it was folded up to exactly `head`.
    pub(crate) fn get(&self, stream_id: &str, head: &Head) -> Option<Kept> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let kept = entries.lru.get(stream_id)?;
        (kept.version == head.version && kept.hash == head.hash).then(|| kept.clone())
    }

    /// Keeps a committed state, evicting the least recently used beyond the capacity.
    pub(crate) fn put(&self, stream_id: &str, kept: Kept) {
        if kept.weight > self.capacity {
            self.forget(stream_id);
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.weight += kept.weight;
        if let Some(old) = entries.lru.put(stream_id.to_owned(), kept) {
            entries.weight -= old.weight;
        }
        while entries.weight > self.capacity {
            match entries.lru.pop_lru() {
                Some((_, old)) => entries.weight -= old.weight,
                None => break,
            }
        }
    }

    fn forget(&self, stream_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = entries.lru.pop(stream_id) {
            entries.weight -= old.weight;
        }
    }

    /// How many states are kept, and their total weight.
    pub fn len_and_weight(&self) -> (usize, usize) {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        (entries.lru.len(), entries.weight)
    }

    /// Encodes and writes committed snapshots in the background, `last` being the
    /// committing transaction's last event.
    pub(crate) fn write_behind(&self, due: Vec<Behind>, last: Checkpoint) {
        for snapshot in due {
            let Ok(permit) = self.writers.clone().try_acquire_owned() else {
                tracing::debug!(stream = %snapshot.stream_id, "snapshot skipped: writers busy");
                continue;
            };
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let stream_id = snapshot.stream_id.clone();
                if let Err(e) = write_one(&pool, snapshot, last).await {
                    tracing::warn!(stream = %stream_id, error = %e, "snapshot not written");
                }
                drop(permit);
            });
        }
    }
}

async fn write_one(pool: &Pool, snapshot: Behind, last: Checkpoint) -> anyhow::Result<()> {
    let Behind { stream_id, schema, version, encode } = snapshot;
    let state = tokio::task::spawn_blocking(encode).await??;
    let client = pool.get().await?;
    snapshots::write(&**client, &stream_id, schema, &snapshots::Stored { version, state, last }).await?;
    Ok(())
}

/// The capacity when `TALLY_STATE_CACHE_WEIGHT` is not set: about a hundred thousand
/// lots, reservations or small states in all, some tens of megabytes.
pub const DEFAULT_CAPACITY: usize = 100_000;
