//! Read-your-writes (`X-Tally-Min-Position`) and the Redis read-through.
//!
//! A request that carries a position token waits until every projection it reads has
//! applied that position in Postgres, polling its checkpoint, for at most the
//! configured wait; then it answers, or fails with `503 projection_lagging`. It reads
//! a cached document only when that projection's cache checkpoint has passed the
//! token too; otherwise it reads Postgres. Without a token, the cache is used as is.

use std::time::Duration;

use actix_web::HttpRequest;
use fred::prelude::KeysInterface;
use infra::cache;
use infra::http::error::ApiError;
use infra::read_model::{self, Projection};
use infra::store::Checkpoint;
use serde::de::DeserializeOwned;

use crate::state::AppState;

pub const MIN_POSITION_HEADER: &str = "x-tally-min-position";
const POLL: Duration = Duration::from_millis(5);

/// The position a request must see, if it named one.
#[derive(Debug, Clone, Copy)]
pub struct Fresh(pub Option<Checkpoint>);

/// Waits until `projections` have applied the request's `X-Tally-Min-Position`.
pub async fn wait_for(
    state: &AppState,
    req: &HttpRequest,
    projections: &[Projection],
) -> Result<Fresh, ApiError> {
    let Some(raw) = req.headers().get(MIN_POSITION_HEADER) else { return Ok(Fresh(None)) };
    let token = raw.to_str().ok().and_then(Checkpoint::parse_token).ok_or_else(|| {
        ApiError::Malformed(format!("{MIN_POSITION_HEADER} must be a position token from a command"))
    })?;
    let deadline = tokio::time::Instant::now() + state.config.min_position_wait;
    loop {
        // A pooled connection per look, so waiting requests do not hold the pool.
        let checkpoints = read_model::checkpoints(&**state.pool.get().await?, projections).await?;
        let reached = checkpoints.len() == projections.len() && checkpoints.iter().all(|c| *c >= token);
        if reached {
            return Ok(Fresh(Some(token)));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::ProjectionLagging(format!(
                "the read models have not reached position {} yet; retry shortly",
                token.token()
            )));
        }
        tokio::time::sleep(POLL).await;
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
        // The projection's cache checkpoint and the document in one round trip.
        Some(token) => redis
            .mget::<Vec<Option<String>>, _>(vec![projection.cache_checkpoint_key(), key.to_owned()])
            .await
            .map(|values| {
                let mut values = values.into_iter();
                let (checkpoint, doc) = (values.next().flatten(), values.next().flatten());
                let current =
                    checkpoint.as_deref().and_then(Checkpoint::parse_token).is_some_and(|c| c >= token);
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
