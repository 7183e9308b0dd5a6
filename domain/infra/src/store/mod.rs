//! The Postgres event store adapter shared by the three processes.
//!
//! - [`write`]: [`lock_streams`] takes a command's stream locks and [`append`] puts one
//!   or several streams' events in the caller's transaction, each stream checked against
//!   its expected version, so a command can add its idempotency record (or a `users`
//!   row) atomically beside its events.
//! - [`read`]: [`read_stream`] for one stream, [`read_all`] for the safe global order:
//!   `(tx_id, position)` order, only below the oldest in-flight transaction, so a late
//!   commit is never skipped.
//! - [`snapshots`] and [`idempotency`]: the command side's other tables.
//! - [`verify`]: every stream's hash chain and versions recomputed, for auditors.
//! - [`crate::uow`] builds a command's unit of work on these; [`crate::chain`] holds the
//!   hash chain and its verification.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

pub mod idempotency;
mod read;
pub mod snapshots;
mod verify;
mod write;

pub use read::*;
pub use verify::{verify, Finding};
pub use write::*;

/// A stream's version before its first event.
pub const NO_STREAM: i64 = 0;

/// Why an append or read failed. A [`StoreError::Conflict`] is a business-level retry
/// signal, not an infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream_id} is not at the expected version {expected}")]
    Conflict { stream_id: String, expected: i64 },
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool error")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("event codec error")]
    Codec(#[from] serde_json::Error),
    #[error("stored event does not decode")]
    Decode(#[from] domain::EventCodecError),
    #[error("an append must carry at least one event")]
    Empty,
}

impl StoreError {
    /// True when retrying the whole command (reload, decide, append) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Conflict { .. } => true,
            StoreError::Database(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
            ),
            _ => false,
        }
    }
}

/// Who did it and why: stored with every event (see "The event store" in the README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub correlation_id: String,
    pub causation_id: String,
    pub actor: Actor,
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub role: String,
}

impl Actor {
    pub fn system(role: &str) -> Self {
        Actor { user_id: None, role: role.to_owned() }
    }
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
}

/// The events for one stream, and the version the stream must be at before them.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream_id: String,
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub tx_id: u64,
    pub stream_id: String,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    #[serde(serialize_with = "hex_bytes")]
    pub hash: Vec<u8>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// A point in the safe global order: readers checkpoint the pair, never the position
/// alone. Ordered by transaction id first, exactly like the read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checkpoint {
    pub tx_id: u64,
    pub position: i64,
}

impl Checkpoint {
    pub fn of(event: &RecordedEvent) -> Self {
        Checkpoint { tx_id: event.tx_id, position: event.position }
    }

    /// The opaque token handed to clients (`X-Tally-Position`).
    pub fn token(&self) -> String {
        format!("{}.{}", self.tx_id, self.position)
    }

    pub fn parse_token(token: &str) -> Option<Self> {
        let (tx, pos) = token.trim().split_once('.')?;
        Some(Checkpoint { tx_id: tx.parse().ok()?, position: pos.parse().ok()? })
    }
}

/// What an append wrote: the checkpoint of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub last: Checkpoint,
}
