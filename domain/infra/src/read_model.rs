//! The read-model contract the projector and the query API share: the projections'
//! names, tables and advisory locks, their checkpoints in `read.checkpoints`, and the
//! Redis keys of the cache. The documents themselves are in [`crate::views`].

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::store::{Checkpoint, StoreError};

/// The four projections; each advances independently with its own tables,
/// checkpoint and advisory locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    Accounts,
    Catalog,
    Orders,
    Insights,
}

impl Projection {
    pub const ALL: [Projection; 4] =
        [Projection::Accounts, Projection::Catalog, Projection::Orders, Projection::Insights];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Accounts => "accounts",
            Projection::Catalog => "catalog",
            Projection::Orders => "orders",
            Projection::Insights => "insights",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The tables this projection owns (schema `read`), in creation order.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Projection::Accounts => &["balances", "ledger"],
            Projection::Catalog => &["categories", "products", "packages", "offers"],
            Projection::Orders => &["purchases", "redemptions"],
            Projection::Insights => {
                &["product_categories", "category_affinity", "product_popularity", "experiments"]
            }
        }
    }

    /// The session advisory lock that makes one projector instance the active one.
    pub fn leader_lock(self) -> i64 {
        0x7a11_7000 + self as i64
    }

    /// The transaction advisory lock that serializes a batch with a rebuild's swap.
    pub fn batch_lock(self) -> i64 {
        self.leader_lock() + 0x100
    }

    /// The session advisory lock a rebuild holds, so two never run at once.
    pub fn rebuild_lock(self) -> i64 {
        self.leader_lock() + 0x200
    }

    /// The Redis key pattern of every document this projection caches, if any.
    pub fn cached_documents_pattern(self) -> Option<&'static str> {
        match self {
            Projection::Accounts => Some("tally:balance:*"),
            Projection::Catalog => Some("tally:{catalog}:product:*"),
            Projection::Orders | Projection::Insights => None,
        }
    }

    /// The Redis key of the checkpoint up to which this projection's cache entries are
    /// written. Readers that must see a position use the cache only once it has passed.
    pub fn cache_checkpoint_key(self) -> String {
        format!("tally:checkpoint:{}", self.name())
    }
}

impl std::fmt::Display for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Redis key of the catalog version: bumped after every catalog change, and part of
/// every cached search key, so one bump invalidates all cached searches.
pub const CATALOG_VERSION_KEY: &str = "tally:catalog:version";

pub fn balance_key(user_id: Uuid) -> String {
    format!("tally:balance:{user_id}")
}

/// Every product document shares the hash tag `{catalog}`, so a page of them is one
/// MGET on Redis Cluster too (the catalog is small; balances, which are many and read
/// one at a time, spread over the cluster).
pub fn product_key(id: Uuid) -> String {
    format!("tally:{{catalog}}:product:{id}")
}

/// A cached search: the catalog version it was computed at and a digest of its filters.
pub fn search_key(catalog_version: &str, digest: &str) -> String {
    format!("tally:search:{catalog_version}:{digest}")
}

/// The count of search entries admitted to the cache in one minute (unix minutes).
pub fn search_admission_key(minute: i64) -> String {
    format!("tally:search-admitted:{minute}")
}

/// A cached recommendation answer for one user and a digest of what it depended on.
pub fn reco_key(user_id: Uuid, digest: &str) -> String {
    format!("tally:reco:{user_id}:{digest}")
}

/// The read schema as its migrations create it: empty tables and zero checkpoints. A
/// later migration that changes a read table must be appended here too (a test would
/// catch the drift: `reconcile` after the dr-drill's rebuild of a dropped schema).
const READ_SCHEMA_DDL: &str = concat!(
    include_str!("../../../migrations/V4__read_models.sql"),
    include_str!("../../../migrations/V6__read_offers.sql"),
    include_str!("../../../migrations/V8__read_experiments.sql"),
    include_str!("../../../migrations/V9__refunds.sql"),
    include_str!("../../../migrations/V11__expiry_sweep.sql"),
);

/// Recreates the `read` schema when it is missing (lost, or dropped by an operator),
/// so `projector rebuild` can build every projection from the events alone. Returns
/// whether it had to.
pub async fn ensure_schema(client: &impl GenericClient) -> Result<bool, StoreError> {
    let row = client.query_one("SELECT to_regclass('read.checkpoints') IS NULL", &[]).await?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    client.batch_execute(READ_SCHEMA_DDL).await?;
    Ok(true)
}

/// A projection's row in `read.checkpoints`.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub projection: Projection,
    pub checkpoint: Checkpoint,
    pub events_applied: i64,
    /// Bumped by every rebuild's swap.
    pub generation: i64,
    pub updated_at: DateTime<Utc>,
}

fn checkpoint_of(tx_id: i64, position: i64) -> Checkpoint {
    Checkpoint { tx_id: tx_id as u64, position }
}

/// One projection's checkpoint and generation.
pub async fn checkpoint(client: &impl GenericClient, p: Projection) -> Result<(Checkpoint, i64), StoreError> {
    let row = client
        .query_one(
            "SELECT tx_id, position, generation FROM read.checkpoints WHERE projection = $1",
            &[&p.name()],
        )
        .await?;
    Ok((checkpoint_of(row.get(0), row.get(1)), row.get(2)))
}

/// The checkpoints of `projections` (one each, in no particular order).
pub async fn checkpoints(
    client: &impl GenericClient,
    projections: &[Projection],
) -> Result<Vec<Checkpoint>, StoreError> {
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    let rows = client
        .query("SELECT tx_id, position FROM read.checkpoints WHERE projection = ANY($1)", &[&names])
        .await?;
    Ok(rows.iter().map(|r| checkpoint_of(r.get(0), r.get(1))).collect())
}

/// Every projection's checkpoint.
pub async fn checkpoints_by_projection(
    client: &impl GenericClient,
) -> Result<Vec<(Projection, Checkpoint)>, StoreError> {
    let rows = client.query("SELECT projection, tx_id, position FROM read.checkpoints", &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((Projection::parse(r.get(0))?, checkpoint_of(r.get(1), r.get(2)))))
        .collect())
}

/// Every projection's checkpoint row, by name.
pub async fn all_checkpoints(client: &impl GenericClient) -> Result<Vec<CheckpointRow>, StoreError> {
    let rows = client
        .query(
            "SELECT projection, tx_id, position, events_applied, generation, updated_at \
             FROM read.checkpoints ORDER BY projection",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(CheckpointRow {
                projection: Projection::parse(r.get(0))?,
                checkpoint: checkpoint_of(r.get(1), r.get(2)),
                events_applied: r.get(3),
                generation: r.get(4),
                updated_at: r.get(5),
            })
        })
        .collect())
}

/// Moves a projection's checkpoint past a batch of `events` applied in the same
/// transaction.
pub async fn advance(
    tx: &impl GenericClient,
    p: Projection,
    last: Checkpoint,
    events: i64,
    last_event_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE read.checkpoints SET tx_id = $2, position = $3, events_applied = events_applied + $4, \
           last_event_at = $5, updated_at = now() WHERE projection = $1",
        &[&p.name(), &(last.tx_id as i64), &last.position, &events, &last_event_at],
    )
    .await?;
    Ok(())
}

/// Replaces a projection's checkpoint with a rebuild's and bumps its generation.
pub async fn replace_after_rebuild(
    tx: &impl GenericClient,
    p: Projection,
    last: Checkpoint,
    events: i64,
    last_event_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE read.checkpoints SET tx_id = $2, position = $3, events_applied = $4, generation = generation + 1, \
           last_event_at = $5, updated_at = now() WHERE projection = $1",
        &[&p.name(), &(last.tx_id as i64), &last.position, &events, &last_event_at],
    )
    .await?;
    Ok(())
}
