//! One batch, exactly once: read the checkpoint, read the next events in the safe
//! global order, apply them and move the checkpoint, all in one transaction.

use chrono::{DateTime, Utc};
use infra::read_model;
use infra::store::{self, Checkpoint, StoreError};
use tokio_postgres::{Client, GenericClient};

use crate::projections::{self, Changes, ProjectError, Projection};

/// What a committed batch did.
#[derive(Debug)]
pub struct Batch {
    pub events: usize,
    pub last: Checkpoint,
    pub last_event_at: DateTime<Utc>,
    /// The projection's rebuild generation when the batch ran.
    pub generation: i64,
    pub changes: Changes,
}

impl From<StoreError> for ProjectError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(e) => ProjectError::Database(e),
            StoreError::Codec(e) => ProjectError::Json(e),
            other => ProjectError::Store(other.to_string()),
        }
    }
}

/// Serializes batches with a rebuild's swap. A transaction-scoped advisory lock rather
/// than `FOR UPDATE` on the checkpoint row, because a row lock would give the batch a
/// transaction id before it reads, and the safe read stops below the reader's own id.
pub async fn lock_batch(client: &impl GenericClient, projection: Projection) -> Result<(), ProjectError> {
    client.execute("SELECT pg_advisory_xact_lock($1)", &[&projection.batch_lock()]).await?;
    Ok(())
}

/// The projection's checkpoint and rebuild generation.
pub async fn checkpoint(
    client: &impl GenericClient,
    projection: Projection,
) -> Result<(Checkpoint, i64), ProjectError> {
    Ok(read_model::checkpoint(client, projection).await?)
}

/// Applies the next batch of at most `limit` events; `None` when there was nothing new.
/// Either the whole batch and its checkpoint commit, or nothing does.
pub async fn step(
    client: &mut Client,
    projection: Projection,
    limit: i64,
) -> Result<Option<Batch>, ProjectError> {
    let tx = client.transaction().await?;
    lock_batch(&tx, projection).await?;
    let (after, generation) = checkpoint(&tx, projection).await?;
    let events = store::read_all(&tx, after, limit).await?;
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let (last, last_event_at) = (Checkpoint::of(last), last.recorded_at);
    let changes = projections::apply(projection, &tx, &events).await?;
    for e in &events {
        // The request that caused the event, for tracing it from HTTP to read model.
        tracing::debug!(
            %projection,
            request_id = e.metadata["correlation_id"].as_str().unwrap_or_default(),
            stream = %e.stream_id,
            version = e.version,
            event = %e.event_type,
            "applied"
        );
    }
    read_model::advance(&tx, projection, last, events.len() as i64, last_event_at).await?;
    tx.commit().await?;
    Ok(Some(Batch { events: events.len(), last, last_event_at, generation, changes }))
}
