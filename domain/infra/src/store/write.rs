//! Writes: stream locks and appends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::read::parse_xid;
use super::{Appended, Checkpoint, Metadata, NewEvent, StoreError, StreamAppend, NO_STREAM};
use crate::chain;

/// Takes the transaction-scoped advisory locks, in the order given. Advisory locks
/// write nothing, so taking them assigns the transaction no id (xid): see [`lock_streams`].
const ADVISORY_LOCKS: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k";

const READ_HEADS: &str = "SELECT stream_id, version, last_hash FROM es.streams WHERE stream_id = ANY($1)";

const INSERT_STREAMS: &str = "INSERT INTO es.streams (stream_id, version, last_hash) \
     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bytea[])";

const UPDATE_STREAMS: &str = "UPDATE es.streams s SET version = v.version, last_hash = v.hash \
     FROM UNNEST($1::text[], $2::int8[], $3::bytea[]) AS v(stream_id, version, hash) \
     WHERE s.stream_id = v.stream_id";

const INSERT_EVENTS: &str = "INSERT INTO es.events \
     (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::int4[], \
                          $6::jsonb[], $7::jsonb[], $8::timestamptz[], $9::bytea[]) \
     RETURNING position, tx_id::text, stream_id, version";

/// A stream's head as its lock holder sees it: the version and hash of its last event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub version: i64,
    pub hash: Vec<u8>,
}

/// The heads of the streams a transaction holds locked (absent streams are at
/// [`NO_STREAM`] with an empty hash).
pub type Heads = HashMap<String, Head>;

/// The advisory-lock key of a stream: the first 8 bytes of a SHA-256 of its id, in a
/// namespace of its own. A collision only makes two streams queue behind each other.
pub fn stream_lock_key(stream_id: &str) -> i64 {
    lock_key(b"stream\0", stream_id.as_bytes())
}

pub(super) fn lock_key(namespace: &[u8], id: &[u8]) -> i64 {
    let digest = Sha256::new().chain_update(namespace).chain_update(id).finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// Locks the named streams for the rest of the transaction and returns their heads.
///
/// The locks are transaction-scoped advisory locks taken in key order (so lockers never
/// deadlock), not row locks: a row lock writes the row's `xmax`, which assigns the
/// transaction its id, and the safe global order of [`super::read_all`] sorts by that id. A
/// command that took an id with its first lock and then queued for a hot stream would
/// sort before the commands it queued behind. With advisory locks a writer gets its id
/// at its first write, after every lock is held, so per stream the id order is the
/// version order, and a command sorts after every event it read.
///
/// The heads are read in a statement of their own, after the locks are granted, so its
/// snapshot sees every commit of the previous holder.
pub async fn lock_streams(tx: &impl GenericClient, stream_ids: &[&str]) -> Result<Heads, StoreError> {
    let mut keys: Vec<i64> = stream_ids.iter().map(|s| stream_lock_key(s)).collect();
    keys.sort_unstable();
    keys.dedup();
    tx.execute(ADVISORY_LOCKS, &[&keys]).await?;
    let rows = tx.query(READ_HEADS, &[&stream_ids]).await?;
    let mut heads: Heads = stream_ids.iter().map(|s| (s.to_string(), Head::default())).collect();
    for r in rows {
        heads.insert(r.get(0), Head { version: r.get(1), hash: r.get(2) });
    }
    Ok(heads)
}

/// Appends every stream's events in the caller's transaction, all or nothing, locking
/// the streams first (see [`lock_streams`]). A caller that already holds the locks
/// passes its heads to [`append_locked`] instead.
#[tracing::instrument(skip_all, fields(streams = appends.len()), err)]
pub async fn append(
    tx: &impl GenericClient,
    appends: &[StreamAppend],
    metadata: &Metadata,
    recorded_at: DateTime<Utc>,
) -> Result<Appended, StoreError> {
    let ids: Vec<&str> = appends.iter().map(|a| a.stream_id.as_str()).collect();
    let mut heads = lock_streams(tx, &ids).await?;
    append_locked(tx, &mut heads, appends, metadata, recorded_at).await
}

/// Appends every stream's events in the caller's transaction, all or nothing, given the
/// heads of the locked streams. A stream missing from `heads` must be new: it is
/// created at version 1, and a concurrent creator makes it a conflict.
///
/// Each stream must be at its `expected_version`; otherwise nothing is written and
/// [`StoreError::Conflict`] names the stream (the caller rolls the transaction back).
/// `recorded_at` is passed in so the hash can be computed before the insert. Once
/// written, `heads` holds the streams' new heads, so a later append in the same
/// transaction chains on.
pub async fn append_locked(
    tx: &impl GenericClient,
    heads: &mut Heads,
    appends: &[StreamAppend],
    metadata: &Metadata,
    recorded_at: DateTime<Utc>,
) -> Result<Appended, StoreError> {
    let group = Group { appends, metadata, recorded_at };
    let last = append_groups(tx, heads, &[group]).await?;
    Ok(Appended { last: last.into_iter().flatten().next().ok_or(StoreError::Empty)? })
}

/// The rows a group commit writes, chained in memory.
struct Rows<'a> {
    cols: EventColumns,
    /// Each touched stream's tip after the appends, and whether it existed before.
    tips: HashMap<&'a str, (i64, Vec<u8>, bool)>,
    /// The group each event row belongs to, by stream and version.
    group_of: HashMap<(&'a str, i64), usize>,
}

/// Numbers and hashes every event of `groups` from the streams' `heads`, in order, each
/// group with its own metadata and clock; a stream's `expected_version` must match
/// where the earlier groups left it.
fn rows<'a>(heads: &Heads, groups: &'a [Group<'_>]) -> Result<Rows<'a>, StoreError> {
    let mut rows = Rows { cols: EventColumns::default(), tips: HashMap::new(), group_of: HashMap::new() };
    for (g, group) in groups.iter().enumerate() {
        let recorded_at = chain::truncate_to_micros(group.recorded_at);
        let metadata = serde_json::to_value(group.metadata)?;
        for a in group.appends.iter().filter(|a| !a.events.is_empty()) {
            let tip =
                rows.tips.entry(a.stream_id.as_str()).or_insert_with(|| match heads.get(&a.stream_id) {
                    Some(h) => (h.version, h.hash.clone(), h.version != NO_STREAM),
                    None => (NO_STREAM, Vec::new(), false),
                });
            if tip.0 != a.expected_version {
                return Err(conflict(a));
            }
            for e in &a.events {
                let v = tip.0 + 1;
                let canonical = chain::Canonical {
                    stream_id: &a.stream_id,
                    version: v,
                    event_id: e.event_id,
                    event_type: &e.event_type,
                    schema_version: e.schema_version,
                    data: &e.data,
                    metadata: &metadata,
                    recorded_at,
                };
                let hash = chain::event_hash(&tip.1, &canonical);
                rows.cols.push(a, e, v, &metadata, recorded_at, &hash);
                rows.group_of.insert((a.stream_id.as_str(), v), g);
                *tip = (v, hash, tip.2);
            }
        }
    }
    Ok(rows)
}

/// One command's appends within a group commit: its own metadata and clock.
pub struct Group<'a> {
    pub appends: &'a [StreamAppend],
    pub metadata: &'a Metadata,
    pub recorded_at: DateTime<Utc>,
}

/// Appends several commands' events in one round of statements, in order: a stream
/// appended by several groups chains from one group's events to the next's (each
/// group's `expected_version` counts the earlier groups' events). Returns each
/// group's last checkpoint (`None` for a group without events); `heads` then holds the
/// new heads.
pub async fn append_groups(
    tx: &impl GenericClient,
    heads: &mut Heads,
    groups: &[Group<'_>],
) -> Result<Vec<Option<Checkpoint>>, StoreError> {
    let Rows { cols, tips, group_of } = rows(heads, groups)?;
    if cols.stream_ids.is_empty() {
        return Err(StoreError::Empty);
    }
    let (mut new_heads, mut moved_heads) = (HeadColumns::default(), HeadColumns::default());
    for (stream, (version, hash, existed)) in &tips {
        let head = if *existed { &mut moved_heads } else { &mut new_heads };
        head.push(stream, *version, hash.clone());
    }
    let first = groups.iter().find_map(|g| g.appends.first());
    if !new_heads.ids.is_empty() {
        tx.execute(INSERT_STREAMS, &[&new_heads.ids, &new_heads.versions, &new_heads.hashes])
            .await
            .map_err(|e| unique_violation_as_conflict(e, first))?;
    }
    if !moved_heads.ids.is_empty() {
        tx.execute(UPDATE_STREAMS, &[&moved_heads.ids, &moved_heads.versions, &moved_heads.hashes]).await?;
    }
    let rows = tx
        .query(
            INSERT_EVENTS,
            &[
                &cols.stream_ids,
                &cols.versions,
                &cols.event_ids,
                &cols.types,
                &cols.schema_versions,
                &cols.data,
                &cols.metadata,
                &cols.recorded_at,
                &cols.hashes,
            ],
        )
        .await
        .map_err(|e| unique_violation_as_conflict(e, first))?;
    let mut last = vec![None; groups.len()];
    for r in &rows {
        let checkpoint = Checkpoint { position: r.get(0), tx_id: parse_xid(r.get(1)) };
        let g = group_of[&(r.get::<_, &str>(2), r.get::<_, i64>(3))];
        last[g] = last[g].max(Some(checkpoint));
    }
    for moved in [new_heads, moved_heads] {
        for ((id, version), hash) in moved.ids.into_iter().zip(moved.versions).zip(moved.hashes) {
            heads.insert(id, Head { version, hash });
        }
    }
    Ok(last)
}

fn conflict(a: &StreamAppend) -> StoreError {
    StoreError::Conflict { stream_id: a.stream_id.clone(), expected: a.expected_version }
}

/// A concurrent writer created the same stream (or version) first. Postgres does not
/// say which of the appended streams collided, so the conflict names the first one;
/// callers retry the whole command either way.
fn unique_violation_as_conflict(e: tokio_postgres::Error, first: Option<&StreamAppend>) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        if let Some(a) = first {
            return conflict(a);
        }
    }
    StoreError::Database(e)
}

#[derive(Default)]
struct EventColumns {
    stream_ids: Vec<String>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    types: Vec<String>,
    schema_versions: Vec<i32>,
    data: Vec<Value>,
    metadata: Vec<Value>,
    recorded_at: Vec<DateTime<Utc>>,
    hashes: Vec<Vec<u8>>,
}

impl EventColumns {
    fn push(
        &mut self,
        a: &StreamAppend,
        e: &NewEvent,
        version: i64,
        metadata: &Value,
        at: DateTime<Utc>,
        hash: &[u8],
    ) {
        self.stream_ids.push(a.stream_id.clone());
        self.versions.push(version);
        self.event_ids.push(e.event_id);
        self.types.push(e.event_type.clone());
        self.schema_versions.push(e.schema_version);
        self.data.push(e.data.clone());
        self.metadata.push(metadata.clone());
        self.recorded_at.push(at);
        self.hashes.push(hash.to_vec());
    }
}

#[derive(Default)]
struct HeadColumns {
    ids: Vec<String>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
}

impl HeadColumns {
    fn push(&mut self, id: &str, version: i64, hash: Vec<u8>) {
        self.ids.push(id.to_owned());
        self.versions.push(version);
        self.hashes.push(hash);
    }
}
