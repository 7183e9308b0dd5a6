//! `projector rebuild`: replays every event into fresh copies of a projection's tables
//! in a staging schema, then swaps them in, so the query API answers from the old
//! tables until the moment of the swap.
//!
//! The swap runs in one transaction that first takes the projection's batch lock, so
//! the running projector pauses for it: the copies catch up on the last events, replace
//! the live tables, and the checkpoint moves to the copies' checkpoint. Bumping the
//! generation tells the running projector to rewrite its Redis cache.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use infra::store::{self, Checkpoint, RecordedEvent};
use serde::Serialize;
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

use infra::read_model;

use crate::batch;
use crate::projections::{self, Projection};

/// Events per transaction while replaying.
const BATCH: i64 = 5000;

#[derive(Debug, Serialize)]
pub struct Rebuilt {
    pub projection: String,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub checkpoint: String,
}

/// Rebuilds `projection`; `progress` is drawn on stderr when it is a terminal.
pub async fn rebuild(url: &str, projection: Projection, progress: bool) -> anyhow::Result<Rebuilt> {
    let (mut client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    // Two rebuilds of one projection would drop each other's staging tables.
    let key = projection.rebuild_lock();
    if !client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await?.get::<_, bool>(0) {
        anyhow::bail!("a rebuild of {projection} is already running");
    }
    if read_model::ensure_schema(&client).await? {
        tracing::warn!("the read schema was missing: recreated it empty");
    }
    let staging = format!("rebuild_{}", projection.name());
    create_staging(&client, projection, &staging).await?;
    let bar = progress_bar(&client, projection, progress).await?;

    let started = Instant::now();
    let mut checkpoint = Checkpoint::default();
    let mut events = 0u64;
    // Reading the next batch (on a connection of its own) overlaps applying this one.
    let (batches, mut ready) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_ahead(url.to_owned(), batches));
    while let Some(batch) = ready.recv().await {
        let tx = client.transaction().await?;
        let n = apply(&tx, projection, &mut checkpoint, batch).await?;
        tx.commit().await?;
        events += n;
        bar.inc(n);
    }
    reader.await??;

    let tx = client.transaction().await?;
    batch::lock_batch(&tx, projection).await?;
    loop {
        let n = replay(&tx, projection, &mut checkpoint, BATCH).await?;
        if n == 0 {
            break;
        }
        events += n;
        bar.inc(n);
    }
    swap(&tx, projection, &staging, checkpoint, events).await?;
    tx.commit().await?;
    bar.finish_and_clear();

    let seconds = started.elapsed().as_secs_f64();
    Ok(Rebuilt {
        projection: projection.name().to_owned(),
        events,
        seconds,
        events_per_second: if seconds > 0.0 { events as f64 / seconds } else { 0.0 },
        checkpoint: checkpoint.token(),
    })
}

/// Empty copies of the projection's tables (indexes, defaults and generated columns
/// included), and a search path that sends the projection's SQL to them.
async fn create_staging(client: &Client, projection: Projection, staging: &str) -> anyhow::Result<()> {
    let mut sql = format!("DROP SCHEMA IF EXISTS {staging} CASCADE; CREATE SCHEMA {staging};");
    for table in projection.tables() {
        sql.push_str(&format!("CREATE TABLE {staging}.{table} (LIKE read.{table} INCLUDING ALL);"));
    }
    sql.push_str(&format!("SET search_path = {staging};"));
    client.batch_execute(&sql).await?;
    Ok(())
}

async fn progress_bar(client: &Client, projection: Projection, show: bool) -> anyhow::Result<ProgressBar> {
    if !show {
        return Ok(ProgressBar::hidden());
    }
    let total = store::event_count(client).await?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {human_pos}/{human_len} events {per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    bar.set_message(projection.name());
    Ok(bar)
}

/// Sends the store's events in the safe order, `BATCH` at a time, until it has sent
/// every one there is or the receiver is gone.
async fn read_ahead(
    url: String,
    batches: tokio::sync::mpsc::Sender<Vec<RecordedEvent>>,
) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    let mut after = Checkpoint::default();
    loop {
        let events = store::read_all(&client, after, BATCH).await?;
        let Some(last) = events.last() else { return Ok(()) };
        after = Checkpoint::of(last);
        if batches.send(events).await.is_err() {
            return Ok(());
        }
    }
}

/// Applies the next events after `checkpoint` to the staging tables.
async fn replay(
    tx: &Transaction<'_>,
    projection: Projection,
    checkpoint: &mut Checkpoint,
    limit: i64,
) -> anyhow::Result<u64> {
    let events: Vec<RecordedEvent> = store::read_all(tx, *checkpoint, limit).await?;
    apply(tx, projection, checkpoint, events).await
}

/// Applies `events` (the next after `checkpoint`) to the staging tables.
async fn apply(
    tx: &Transaction<'_>,
    projection: Projection,
    checkpoint: &mut Checkpoint,
    events: Vec<RecordedEvent>,
) -> anyhow::Result<u64> {
    let Some(last) = events.last() else { return Ok(0) };
    *checkpoint = Checkpoint::of(last);
    projections::apply(projection, tx, &events).await?;
    Ok(events.len() as u64)
}

async fn swap(
    tx: &impl GenericClient,
    projection: Projection,
    staging: &str,
    checkpoint: Checkpoint,
    events: u64,
) -> anyhow::Result<()> {
    let mut sql = String::new();
    for table in projection.tables() {
        sql.push_str(&format!("DROP TABLE read.{table}; ALTER TABLE {staging}.{table} SET SCHEMA read;"));
    }
    sql.push_str(&format!("DROP SCHEMA {staging}; SET search_path = read;"));
    tx.batch_execute(&sql).await?;
    let last_event_at = store::recorded_at(tx, checkpoint.position).await?;
    read_model::replace_after_rebuild(tx, projection, checkpoint, events as i64, last_event_at).await?;
    Ok(())
}
