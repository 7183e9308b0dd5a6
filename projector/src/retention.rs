//! The retention sweep of behaviour data: interactions older than
//! `TALLY_INTERACTION_RETENTION_DAYS` (180) are deleted, with the ranking counts they
//! raised, in batches, once at start-up and then hourly. Any number of projector
//! instances may sweep at once: a row is deleted (and uncounted) by one of them only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use infra::behaviour;

const EVERY: Duration = Duration::from_secs(3600);
const BATCH: i64 = 10_000;

pub const DEFAULT_RETENTION_DAYS: i64 = 180;

/// Deletes every interaction recorded before `before`; returns how many.
pub async fn sweep(pool: &Pool, before: DateTime<Utc>) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let mut total = 0;
    loop {
        let deleted = behaviour::sweep_interactions(&**client, before, BATCH).await?;
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Sweeps now and every hour until `shutdown`.
pub async fn run(pool: Pool, retention: chrono::Duration, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match sweep(&pool, Utc::now() - retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "interactions past their retention deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "the interaction retention sweep failed; retrying in an hour")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
