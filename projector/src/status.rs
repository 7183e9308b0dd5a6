//! `projector status`: per projection, its checkpoint, the store's head and the lag.

use chrono::{DateTime, Utc};
use infra::store::{self, Checkpoint};
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
    let rows = client
        .query(
            "SELECT c.projection, c.tx_id, c.position, c.events_applied, c.generation, c.updated_at, \
                    pending.n, COALESCE(EXTRACT(EPOCH FROM now() - pending.oldest)::float8, 0) \
             FROM read.checkpoints c, LATERAL ( \
                 SELECT count(*) AS n, min(e.recorded_at) AS oldest FROM es.events e \
                 WHERE (e.tx_id, e.position) > (c.tx_id::text::xid8, c.position)) pending \
             ORDER BY c.projection",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ProjectionStatus {
            projection: r.get(0),
            checkpoint: Checkpoint { tx_id: r.get::<_, i64>(1) as u64, position: r.get(2) }.token(),
            head: head.clone(),
            events_applied: r.get(3),
            generation: r.get(4),
            updated_at: r.get(5),
            lag_events: r.get(6),
            lag_seconds: r.get::<_, f64>(7).max(0.0),
        })
        .collect())
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
