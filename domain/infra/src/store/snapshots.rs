//! Snapshots: a cache of a long stream's folded state (accounts, products) at a
//! version, written in the command's transaction or, by the command API, right after
//! it committed (see [`crate::states`]), so a snapshot always matches the events it
//! covers. A snapshot never replaces a newer one. Deleting them costs only speed.

use serde_json::Value;
use tokio_postgres::GenericClient;

use super::{Checkpoint, StoreError};

/// A stored snapshot of one stream, in the schema it was asked for.
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: i64,
    pub state: Value,
    pub last: Checkpoint,
}

/// The stream's snapshot, if it has one of `schema`.
pub async fn read(
    client: &impl GenericClient,
    stream_id: &str,
    schema: i32,
) -> Result<Option<Stored>, StoreError> {
    let row = client
        .query_opt(
            "SELECT version, state, last_tx, last_pos FROM es.snapshots WHERE stream_id = $1 AND schema = $2",
            &[&stream_id, &schema],
        )
        .await?;
    Ok(row.map(|r| Stored {
        version: r.get(0),
        state: r.get(1),
        last: Checkpoint { tx_id: r.get::<_, &str>(2).parse().unwrap_or_default(), position: r.get(3) },
    }))
}

/// The snapshots of `schema` of several streams, by stream.
pub async fn read_many(
    client: &impl GenericClient,
    stream_ids: &[&str],
    schema: i32,
) -> Result<Vec<(String, Stored)>, StoreError> {
    let rows = client
        .query(
            "SELECT stream_id, version, state, last_tx, last_pos FROM es.snapshots \
             WHERE stream_id = ANY($1) AND schema = $2",
            &[&stream_ids, &schema],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let last =
                Checkpoint { tx_id: r.get::<_, &str>(3).parse().unwrap_or_default(), position: r.get(4) };
            (r.get(0), Stored { version: r.get(1), state: r.get(2), last })
        })
        .collect())
}

/// Replaces the stream's snapshot, unless the stored one is newer (of the same schema).
pub async fn write(
    client: &impl GenericClient,
    stream_id: &str,
    schema: i32,
    snapshot: &Stored,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO es.snapshots (stream_id, version, schema, state, last_tx, last_pos) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema = EXCLUDED.schema, \
                 state = EXCLUDED.state, last_tx = EXCLUDED.last_tx, last_pos = EXCLUDED.last_pos \
             WHERE es.snapshots.version < EXCLUDED.version OR es.snapshots.schema <> EXCLUDED.schema",
            &[
                &stream_id,
                &snapshot.version,
                &schema,
                &snapshot.state,
                &snapshot.last.tx_id.to_string(),
                &snapshot.last.position,
            ],
        )
        .await?;
    Ok(())
}
