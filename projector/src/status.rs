//! `projector status`: per projection, its checkpoint, the store's head and the lag.

use chrono::{DateTime, Utc};
use infra::read_model;
use infra::store;
use serde::Serialize;
use tokio_postgres::GenericClient;

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub projection: String,
    /// The checkpoint token (`tx.position`) of the last applied event.
    pub checkpoint: String,
    /// The newest event a reader can see now.
    pub head: String,
    /// Committed events not yet applied.
    pub lag_events: i64,
    /// Age of the oldest event not yet applied (0 when caught up).
    pub lag_seconds: f64,
    pub events_applied: i64,
    pub generation: i64,
    pub updated_at: DateTime<Utc>,
}

pub async fn status(client: &impl GenericClient) -> anyhow::Result<Vec<ProjectionStatus>> {
    let head = store::safe_head(client).await?.token();
    let now = Utc::now();
    let mut statuses = Vec::new();
    for c in read_model::all_checkpoints(client).await? {
        let (lag_events, oldest) = store::backlog(client, c.checkpoint).await?;
        statuses.push(ProjectionStatus {
            projection: c.projection.name().to_owned(),
            checkpoint: c.checkpoint.token(),
            head: head.clone(),
            events_applied: c.events_applied,
            generation: c.generation,
            updated_at: c.updated_at,
            lag_events,
            lag_seconds: oldest
                .map_or(0.0, |t| (now - t).num_microseconds().unwrap_or(0) as f64 / 1e6)
                .max(0.0),
        });
    }
    Ok(statuses)
}

/// Prints `statuses` as a table, or as JSON with `--json`.
pub fn print(statuses: &[ProjectionStatus], json: bool) {
    if json {
        println!("{}", serde_json::json!({ "projections": statuses }));
        return;
    }
    println!(
        "{:<10} {:>22} {:>22} {:>10} {:>10} {:>12}",
        "PROJECTION", "CHECKPOINT", "HEAD", "LAG", "LAG(s)", "APPLIED"
    );
    for s in statuses {
        println!(
            "{:<10} {:>22} {:>22} {:>10} {:>10.3} {:>12}",
            s.projection, s.checkpoint, s.head, s.lag_events, s.lag_seconds, s.events_applied
        );
    }
}
