//! The read models (the README's "Projector" section), as four projections that advance independently, each
//! with its own tables, checkpoint and advisory lock:
//!
//! | projection | tables (schema `read`) | events |
//! |---|---|---|
//! | `accounts` | balances, ledger | account |
//! | `catalog`  | categories, products, packages, offers | category, product, package |
//! | `orders`   | purchases, redemptions | purchase, redemption |
//! | `insights` | product_categories, category_affinity, product_popularity, experiments | product, redemption, interactions, experiment |
//!
//! A batch is applied in memory first (load the touched rows, fold the events into
//! them, write them back with one statement per table), which is what makes a rebuild
//! fast. SQL names tables without a schema: the live runner works with
//! `search_path = read`, a rebuild in its staging schema.

mod accounts;
mod catalog;
mod insights;
mod offers;
mod orders;

use domain::{Aggregate, DomainEvent, EventCodecError};
use infra::store::RecordedEvent;
use infra::views::{BalanceDoc, ProductDoc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::Transaction;
use uuid::Uuid;

pub use infra::read_model::Projection;

/// What a batch changed that the Redis cache mirrors; written after the commit.
#[derive(Debug, Default)]
pub struct Changes {
    pub balances: Vec<BalanceDoc>,
    pub products: Vec<ProductDoc>,
    /// Product listings or category changes: cached searches must be invalidated.
    pub catalog_changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Codec(#[from] EventCodecError),
    #[error("row codec error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event store error: {0}")]
    Store(String),
}

/// Applies `events` (a batch in the safe global order) to `projection`'s tables
/// inside `tx`.
pub async fn apply(
    projection: Projection,
    tx: &Transaction<'_>,
    events: &[RecordedEvent],
) -> Result<Changes, ProjectError> {
    match projection {
        Projection::Accounts => accounts::apply(tx, events).await,
        Projection::Catalog => catalog::apply(tx, events).await,
        Projection::Orders => orders::apply(tx, events).await,
        Projection::Insights => insights::apply(tx, events).await,
    }
}

/// The events of aggregate `A`'s streams, decoded.
fn decode<A: Aggregate>(
    events: &[RecordedEvent],
) -> Result<Vec<(&RecordedEvent, A::Event)>, EventCodecError> {
    events
        .iter()
        .filter(|e| domain::entity_of::<A>(&e.stream_id).is_some())
        .map(|e| Ok((e, A::Event::decode(&e.event_type, &e.data)?)))
        .collect()
}

/// Loads the rows of `table` whose `key` is in `ids`, through their JSON form.
async fn load<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    ids: &[Uuid],
) -> Result<Vec<T>, ProjectError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT to_jsonb(t) FROM {table} t WHERE {key} = ANY($1)");
    let rows = tx.query(&sql, &[&ids]).await?;
    rows.iter().map(|r| Ok(serde_json::from_value(r.get(0))?)).collect()
}

/// Writes `rows` into `table` in one statement: inserted, or with `on_conflict` (an
/// `ON CONFLICT …` clause) deciding what an existing row becomes.
async fn write<T: Serialize>(
    tx: &Transaction<'_>,
    table: &str,
    columns: &str,
    on_conflict: &str,
    rows: &[T],
) -> Result<(), ProjectError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {table} AS t ({columns}) SELECT {columns} \
         FROM jsonb_populate_recordset(NULL::{table}, $1) {on_conflict}"
    );
    tx.execute(&sql, &[&serde_json::to_value(rows)?]).await?;
    Ok(())
}

/// `ON CONFLICT (key) DO UPDATE` setting every other column from the new row.
fn replace_on(key: &str, columns: &str) -> String {
    let sets: Vec<String> = columns
        .split(',')
        .map(str::trim)
        .filter(|c| !key.split(',').any(|k| k.trim() == *c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!("ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
}
