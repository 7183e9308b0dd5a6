//! The Redis side of a projection: after each commit its changed documents are written
//! to Redis by a task of their own, so Redis being slow or down never holds up the
//! Postgres projection.
//!
//! When a write fails (or the queue overflows, or a rebuild swapped the tables) the
//! cache is marked dirty: queued writes are dropped and the whole cache of the
//! projection is rewritten from Postgres, retried every second until Redis answers.
//! Each write ends by moving the projection's cache checkpoint, so a reader that needs
//! a position only trusts Redis once the checkpoint has passed it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use fred::prelude::{Client, ClientLike, KeysInterface};
use futures_util::{pin_mut, StreamExt, TryStreamExt};
use infra::cache;
use infra::read_model::{balance_key, product_key, CATALOG_VERSION_KEY};
use infra::store::Checkpoint;
use infra::views::{balance_from_row, ProductDoc, PRODUCT_COLUMNS};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::batch;
use crate::metrics::Metrics;
use crate::projections::{Changes, Projection};

const QUEUE: usize = 4096;
const RETRY: Duration = Duration::from_secs(1);
const CHUNK: usize = 1000;

struct Update {
    changes: Changes,
    last: Checkpoint,
}

/// Feeds a projection's cache task.
#[derive(Clone)]
pub struct CacheHandle {
    tx: mpsc::Sender<Update>,
    dirty: Arc<AtomicBool>,
}

impl CacheHandle {
    /// Queues the documents a committed batch changed. Never waits.
    pub fn publish(&self, changes: Changes, last: Checkpoint) {
        if self.tx.try_send(Update { changes, last }).is_err() {
            self.dirty.store(true, Ordering::SeqCst);
        }
    }

    /// Asks for the whole cache to be rewritten from Postgres.
    pub fn invalidate(&self, last: Checkpoint) {
        self.dirty.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Update { changes: Changes::default(), last });
    }
}

/// Starts the cache task of `projection`, or returns `None` when it caches nothing.
/// The cache starts dirty: whatever Redis holds is rewritten before the first update.
/// The task ends when every handle is dropped.
pub fn spawn(
    tasks: &TaskTracker,
    projection: Projection,
    redis: Client,
    pool: Pool,
    metrics: Metrics,
) -> Option<CacheHandle> {
    if !matches!(projection, Projection::Accounts | Projection::Catalog) {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<Update>(QUEUE);
    let dirty = Arc::new(AtomicBool::new(true));
    let flag = dirty.clone();
    tasks.spawn(async move {
        loop {
            if rx.is_closed() && rx.is_empty() {
                return;
            }
            if flag.load(Ordering::SeqCst) {
                while rx.try_recv().is_ok() {}
                match repair(projection, &redis, &pool).await {
                    Ok(rows) => {
                        flag.store(false, Ordering::SeqCst);
                        metrics.cache_repairs.with_label_values(&[projection.name()]).inc();
                        tracing::info!(%projection, rows, "cache rewritten from Postgres");
                    }
                    Err(e) => {
                        metrics.redis_errors.inc();
                        tracing::warn!(%projection, error = %e, "cache repair failed; retrying");
                        write_best_effort(&redis, &mut rx).await;
                        continue;
                    }
                }
            }
            let Some(update) = rx.recv().await else { return };
            if let Err(e) = write(projection, &redis, &update).await {
                metrics.redis_errors.inc();
                tracing::warn!(%projection, error = %e, "cache write failed; the cache will be repaired");
                flag.store(true, Ordering::SeqCst);
            }
        }
    });
    Some(CacheHandle { tx, dirty })
}

/// The Redis entries of the documents `changes` holds.
fn entries(changes: &Changes) -> serde_json::Result<Vec<(String, String)>> {
    let mut entries = Vec::with_capacity(changes.balances.len() + changes.products.len() + 1);
    for doc in &changes.balances {
        entries.push((balance_key(doc.user_id), serde_json::to_string(doc)?));
    }
    for doc in &changes.products {
        entries.push((product_key(doc.id), serde_json::to_string(doc)?));
    }
    Ok(entries)
}

async fn write(projection: Projection, redis: &Client, update: &Update) -> anyhow::Result<()> {
    let redis = cache::fail_fast(redis);
    let entries = entries(&update.changes)?;
    cache::set_then(&redis, entries, Some((projection.cache_checkpoint_key(), update.last.token()))).await?;
    if update.changes.catalog_changed {
        let _: i64 = redis.incr(CATALOG_VERSION_KEY).await?;
    }
    Ok(())
}

/// Until the next repair attempt, writes the documents of each update wherever Redis
/// takes them, without the checkpoint (withdrawn by the failed repair, or on a node
/// that does not answer). With one node of a cluster down, documents on the others
/// stay current for reads without a position, instead of going stale until the node
/// is back.
async fn write_best_effort(redis: &Client, rx: &mut mpsc::Receiver<Update>) {
    let until = tokio::time::Instant::now() + RETRY;
    while let Ok(Some(update)) = tokio::time::timeout_at(until, rx.recv()).await {
        if let Ok(entries) = entries(&update.changes) {
            let _ = cache::set_each(&cache::fail_fast(redis), entries).await;
        }
    }
}

/// Rewrites every cached document of `projection` from its Postgres table. The cache
/// checkpoint is withdrawn first and set back to the checkpoint read before the rows,
/// so readers never trust a half-repaired cache.
///
/// A cache checkpoint *ahead* of Postgres's means the store went back in time (restored
/// to a point in time): the cache may hold documents of entities that no longer exist,
/// so every document of the projection is deleted before the rewrite.
async fn repair(projection: Projection, raw: &Client, pool: &Pool) -> anyhow::Result<u64> {
    let redis = cache::fail_fast(raw);
    let key = projection.cache_checkpoint_key();
    let cached: Option<String> = redis.get(&key).await?;
    let _: i64 = redis.del(&key).await?;
    let client = pool.get().await?;
    let (checkpoint, _) = batch::checkpoint(&**client, projection).await?;
    if cached.as_deref().and_then(Checkpoint::parse_token).is_some_and(|c| c > checkpoint) {
        let purged = purge(projection, raw).await?;
        tracing::warn!(%projection, purged, "the cache was ahead of the store (a restore?): purged it");
    }
    let sql = match projection {
        Projection::Accounts => {
            "SELECT user_id, balance, lifetime_earned, lifetime_spent, lots FROM read.balances".to_owned()
        }
        _ => format!("SELECT {PRODUCT_COLUMNS} FROM read.products p"),
    };
    let rows = client.query_raw(&sql, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    let mut written = 0u64;
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(row) = rows.try_next().await? {
        chunk.push(match projection {
            Projection::Accounts => {
                let doc = balance_from_row(&row);
                (balance_key(doc.user_id), serde_json::to_string(&doc)?)
            }
            _ => {
                let doc = ProductDoc::from_row(&row);
                (product_key(doc.id), serde_json::to_string(&doc)?)
            }
        });
        if chunk.len() == CHUNK {
            written += chunk.len() as u64;
            cache::set_then(&redis, std::mem::take(&mut chunk), None).await?;
        }
    }
    written += chunk.len() as u64;
    cache::set_then(&redis, chunk, Some((key, checkpoint.token()))).await?;
    if projection == Projection::Catalog {
        let _: i64 = redis.incr(CATALOG_VERSION_KEY).await?;
    }
    Ok(written)
}

/// Deletes every cached document of `projection` (a SCAN, never a blocking KEYS).
async fn purge(projection: Projection, redis: &Client) -> anyhow::Result<u64> {
    let Some(pattern) = projection.cached_documents_pattern() else { return Ok(0) };
    let keys = if redis.is_clustered() {
        redis.scan_cluster_buffered(pattern, Some(1000), None).boxed()
    } else {
        redis.scan_buffered(pattern, Some(1000), None).boxed()
    };
    pin_mut!(keys);
    let (mut purged, mut batch) = (0u64, Vec::with_capacity(CHUNK));
    while let Some(key) = keys.try_next().await? {
        batch.push(key);
        if batch.len() == CHUNK {
            purged += cache::unlink_all(redis, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        purged += cache::unlink_all(redis, batch).await?;
    }
    Ok(purged)
}
