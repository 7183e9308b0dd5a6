//! Read-your-writes (`X-Tally-Min-Position`) and the Redis read-through.
//!
//! A request that carries a position token waits until every projection it reads has
//! applied that position in Postgres, for at most the configured wait; then it
//! answers, or fails with `503 projection_lagging`. Waiting requests share one poller
//! ([`CheckpointWatch`]), and a token no command can have issued is refused at once. It reads
//! a cached document only when that projection's cache checkpoint has passed the
//! token too; otherwise it reads Postgres. Without a token, the cache is used as is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex, Notify};

use actix_web::HttpRequest;
use fred::prelude::KeysInterface;
use infra::cache;
use infra::http::error::ApiError;
use infra::read_model::{self, Projection};
use infra::store::{self, Checkpoint};
use serde::de::DeserializeOwned;

use crate::replica::Reads;
use crate::state::AppState;

pub const MIN_POSITION_HEADER: &str = "x-tally-min-position";
/// How often the one poller reads the checkpoints while any request waits.
const POLL: Duration = Duration::from_millis(5);

/// The position a request must see, if it named one.
#[derive(Debug, Clone, Copy)]
pub struct Fresh(pub Option<Checkpoint>);

/// What the poller last read: every projection's checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
struct Seen(Vec<(Projection, Checkpoint)>);

impl Seen {
    fn reached(&self, projections: &[Projection], token: Checkpoint) -> bool {
        projections.iter().all(|p| self.0.iter().any(|(q, c)| q == p && *c >= token))
    }
}

/// One poller for every waiting request: it reads the checkpoints every few
/// milliseconds while at least one request waits, and not at all otherwise. Waiters watch what it read, so a thousand waiting requests cost one
/// query per poll, not a thousand.
#[derive(Clone)]
pub struct CheckpointWatch {
    seen: watch::Receiver<Seen>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    /// Held by a poll from read to publish, and by a switch of the server reads go to,
    /// so no poll of the old server is published after the switch.
    gate: Arc<Mutex<()>>,
}

impl CheckpointWatch {
    /// Starts the poller on the current runtime; it reads where `reads` sends reads.
    pub fn start(reads: Reads) -> Self {
        let (tx, seen) = watch::channel(Seen::default());
        let (waiters, wake) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let gate = Arc::new(Mutex::new(()));
        let watch =
            CheckpointWatch { seen, waiters: waiters.clone(), wake: wake.clone(), gate: gate.clone() };
        tokio::spawn(async move {
            loop {
                if waiters.load(Ordering::SeqCst) == 0 {
                    wake.notified().await;
                    continue;
                }
                let polled = {
                    let _gate = gate.lock().await;
                    read(&reads)
                        .await
                        .map(|now| tx.send_if_modified(|seen| std::mem::replace(seen, now.clone()) != now))
                };
                if let Err(e) = polled {
                    tracing::warn!(error = %e, "cannot read the projections' checkpoints");
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        watch
    }

    /// Calls `switch` (and answers true) if `candidate` has replayed every checkpoint
    /// this watch has published, with no poll in flight: a request that saw a
    /// checkpoint then finds it on the server reads switch to.
    pub async fn switch_if_replayed(
        &self,
        candidate: &impl tokio_postgres::GenericClient,
        switch: impl FnOnce(),
    ) -> Result<bool, ApiError> {
        let _gate = self.gate.lock().await;
        let there = read_model::checkpoints_by_projection(candidate).await?;
        let replayed = self.seen.borrow().0.iter().all(|(p, c)| there.iter().any(|(q, d)| q == p && d >= c));
        if replayed {
            switch();
        }
        Ok(replayed)
    }
}

async fn read(reads: &Reads) -> Result<Seen, ApiError> {
    Ok(Seen(read_model::checkpoints_by_projection(&**reads.get().await?).await?))
}

/// Counts a waiting request for as long as it lives (a dropped request included).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until `projections` have applied the request's `X-Tally-Min-Position`. A
/// token beyond anything the store has handed out is refused at once (`400`): no
/// command issued it, and waiting for it would only hold the request.
pub async fn wait_for(
    state: &AppState,
    req: &HttpRequest,
    projections: &[Projection],
) -> Result<Fresh, ApiError> {
    let Some(raw) = req.headers().get(MIN_POSITION_HEADER) else { return Ok(Fresh(None)) };
    let token = raw.to_str().ok().and_then(Checkpoint::parse_token).ok_or_else(|| {
        ApiError::Malformed(format!("{MIN_POSITION_HEADER} must be a position token from a command"))
    })?;
    let watch = &state.checkpoints;
    let mut seen = watch.seen.clone();
    if seen.borrow().reached(projections, token) {
        return Ok(Fresh(Some(token)));
    }
    // One look at the store's bound per request that has to wait, never one per poll.
    if !store::bound(&**state.pool.get().await?).await?.admits(token) {
        return Err(ApiError::Malformed(format!(
            "{MIN_POSITION_HEADER} {} is beyond the event store's head: no command returned it",
            token.token()
        )));
    }
    watch.waiters.fetch_add(1, Ordering::SeqCst);
    let _waiting = Waiting(watch.waiters.clone());
    watch.wake.notify_one();
    let reached = tokio::time::timeout(state.config.min_position_wait, async {
        loop {
            if seen.borrow_and_update().reached(projections, token) {
                return;
            }
            if seen.changed().await.is_err() {
                // The poller is gone; the deadline answers.
                std::future::pending::<()>().await;
            }
        }
    });
    match reached.await {
        Ok(()) => Ok(Fresh(Some(token))),
        Err(_) => Err(ApiError::ProjectionLagging(format!(
            "the read models have not reached position {} yet; retry shortly",
            token.token()
        ))),
    }
}

/// A document from Redis, when Redis answers, holds it, and (for a request with a
/// position) the projection's cache has passed that position. Any error is a miss.
pub async fn cached<T: DeserializeOwned>(
    state: &AppState,
    fresh: Fresh,
    projection: Projection,
    key: &str,
) -> Option<T> {
    let redis = cache::fail_fast(&state.redis);
    let doc: Result<Option<String>, _> = match fresh.0 {
        // No position to honour: one GET.
        None => redis.get(key).await,
        Some(token) => checkpoint_then(&redis, projection, key).await.map(|(checkpoint, doc)| {
            let current = checkpoint.as_deref().and_then(Checkpoint::parse_token).is_some_and(|c| c >= token);
            doc.filter(|_| current)
        }),
    };
    let Ok(doc) = doc else {
        state.metrics.cache.with_label_values(&["error"]).inc();
        return None;
    };
    let doc = doc.and_then(|d| serde_json::from_str(&d).ok());
    state.metrics.cache.with_label_values(&[if doc.is_some() { "hit" } else { "miss" }]).inc();
    doc
}

/// The projection's cache checkpoint and the document `key`: in one MGET on one
/// server; on a cluster (where they are in different slots) the checkpoint first and
/// the document after, the reverse of the order the projector writes them, so the
/// document is at least as new as the checkpoint says.
async fn checkpoint_then(
    redis: &impl KeysInterface,
    projection: Projection,
    key: &str,
) -> Result<(Option<String>, Option<String>), fred::error::Error> {
    if redis.is_clustered() {
        let checkpoint = redis.get(projection.cache_checkpoint_key()).await?;
        return Ok((checkpoint, redis.get(key).await?));
    }
    let mut values = redis
        .mget::<Vec<Option<String>>, _>(vec![projection.cache_checkpoint_key(), key.to_owned()])
        .await?
        .into_iter();
    Ok((values.next().flatten(), values.next().flatten()))
}
