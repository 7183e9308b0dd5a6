//! The fan-out: one transaction per batch reads the events after the dispatcher's
//! cursor, maps them to public events, queues one delivery per subscribed endpoint,
//! folds the stock it needs for `product.low_stock`, keeps the offer schedule, queues
//! the offer announcements whose time has come, and moves the cursor. Like a
//! projection's batch, it commits whole or not at all: nothing is queued twice or lost.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use infra::store::{self, Checkpoint, RecordedEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Statement, Transaction};
use uuid::Uuid;

use super::events::{self, OfferChange, Origins};

/// A public event about to be queued.
#[derive(Debug)]
pub struct Outgoing {
    pub id: Uuid,
    pub event_type: &'static str,
    pub position: i64,
    pub created_at: DateTime<Utc>,
    pub data: Value,
    /// The event it comes from (`None` for the offer announcements the clock makes):
    /// an endpoint hears only of events committed after it was created.
    pub source: Option<Checkpoint>,
}

impl Outgoing {
    fn of(e: &RecordedEvent, event_type: &'static str, data: Value) -> Self {
        let source = Some(Checkpoint::of(e));
        Outgoing { id: e.event_id, event_type, position: e.position, created_at: e.recorded_at, data, source }
    }

    /// The body every attempt sends.
    pub fn body(&self) -> String {
        json!({ "id": self.id, "type": self.event_type, "created_at": self.created_at,
                "position": self.position, "data": self.data })
        .to_string()
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    pub events: usize,
    pub queued: u64,
    /// The endpoints it queued deliveries for.
    pub endpoints: Vec<Uuid>,
}

/// How often the offer schedule is looked at: announcements are due by the clock.
const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The fan-out of the active dispatcher, on its lock connection: every statement
/// prepared once (one round trip each after that), and the checkpoint held in memory
/// (only the lock holder moves it; a new holder reads it afresh).
pub struct Fanout {
    cursor: Checkpoint,
    announced_at: Option<std::time::Instant>,
    s: Statements,
}

struct Statements {
    read: Statement,
    move_cursor: Statement,
    origins: Statement,
    stock_load: Statement,
    stock_save: Statement,
    schedule: Statement,
    unschedule: Statement,
    due: Statement,
    started: Statement,
    endpoints: Statement,
    queue: Statement,
}

impl Fanout {
    pub async fn start(client: &Client) -> anyhow::Result<Self> {
        let row = client.query_one("SELECT tx_id, position FROM webhooks.cursor", &[]).await?;
        let cursor = Checkpoint { tx_id: row.get::<_, i64>(0) as u64, position: row.get(1) };
        let s = Statements {
            read: client.prepare(&store::read_all_sql()).await?,
            move_cursor: client.prepare("UPDATE webhooks.cursor SET tx_id = $1, position = $2").await?,
            origins: client
                .prepare("SELECT stream_id, data FROM es.events WHERE stream_id = ANY($1) AND version = 1")
                .await?,
            stock_load: client
                .prepare("SELECT product_id, available FROM webhooks.stock WHERE product_id = ANY($1)")
                .await?,
            stock_save: client
                .prepare(
                    "INSERT INTO webhooks.stock (product_id, available) SELECT * FROM unnest($1::uuid[], $2::int8[])
                     ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available",
                )
                .await?,
            schedule: client
                .prepare(
                    "INSERT INTO webhooks.offer_schedule (offer_id, product_id, starts_at, ends_at, position)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .await?,
            unschedule: client.prepare("DELETE FROM webhooks.offer_schedule WHERE offer_id = $1").await?,
            due: client
                .prepare(
                    "SELECT offer_id, product_id, starts_at, ends_at, position, started FROM webhooks.offer_schedule
                     WHERE (NOT started AND starts_at <= $1) OR ends_at <= $1 ORDER BY starts_at FOR UPDATE",
                )
                .await?,
            started: client.prepare("UPDATE webhooks.offer_schedule SET started = true WHERE offer_id = $1").await?,
            endpoints: client
                .prepare(
                    "SELECT id, event_types, after_tx_id, after_position FROM webhooks.endpoints
                     WHERE disabled_at IS NULL ORDER BY id",
                )
                .await?,
            queue: client
                .prepare(
                    "INSERT INTO webhooks.deliveries
                         (endpoint_id, event_id, event_type, position, body, next_attempt_at, created_at)
                     SELECT e, i, t, p, b, $6, $6 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[])
                         WITH ORDINALITY AS d(e, i, t, p, b, n)
                     ORDER BY n",
                )
                .await?,
        };
        Ok(Fanout { cursor, announced_at: None, s })
    }

    /// One batch of at most `batch` events; offer announcements at `now`, when due.
    pub async fn step(
        &mut self,
        client: &mut Client,
        batch: i64,
        low_stock: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Step> {
        let announce = self.announced_at.is_none_or(|t| t.elapsed() >= ANNOUNCE_EVERY);
        let tx = client.transaction().await?;
        let rows =
            tx.query(&self.s.read, &[&self.cursor.tx_id.to_string(), &self.cursor.position, &batch]).await?;
        let events: Vec<RecordedEvent> = rows.iter().map(store::recorded).collect();
        if events.is_empty() && !announce {
            return Ok(Step::default());
        }
        let origins = self.origins(&tx, &events).await?;
        let mut stock = Stock::load(&tx, &self.s.stock_load, &events).await?;
        let mut out = Vec::new();
        for e in &events {
            if let Some((event_type, data)) = events::public(e, &origins) {
                out.push(Outgoing::of(e, event_type, data));
            }
            if let Some((product_id, delta)) = events::stock_change(e) {
                if let Some(available) = stock.change(product_id, delta, low_stock) {
                    let data =
                        json!({ "product_id": product_id, "available": available, "threshold": low_stock });
                    out.push(Outgoing::of(e, "product.low_stock", data));
                }
            }
            if let Some(change) = events::offer_change(e) {
                self.schedule(&tx, e, change, &mut out).await?;
            }
        }
        stock.save(&tx, &self.s.stock_save).await?;
        if announce {
            self.announce(&tx, now, &mut out).await?;
        }
        let (queued, endpoints) = self.enqueue(&tx, &out, now).await?;
        let last = events.last().map(Checkpoint::of);
        if let Some(last) = last {
            tx.execute(&self.s.move_cursor, &[&(last.tx_id as i64), &last.position]).await?;
        }
        tx.commit().await?;
        if let Some(last) = last {
            self.cursor = last;
        }
        if announce {
            self.announced_at = Some(std::time::Instant::now());
        }
        Ok(Step { events: events.len(), queued, endpoints })
    }

    async fn origins(&self, tx: &Transaction<'_>, events: &[RecordedEvent]) -> anyhow::Result<Origins> {
        let mut streams: Vec<&str> = events.iter().filter_map(events::origin_needed).collect();
        if streams.is_empty() {
            return Ok(Origins::new());
        }
        streams.sort_unstable();
        streams.dedup();
        let rows = tx.query(&self.s.origins, &[&streams]).await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn schedule(
        &self,
        tx: &Transaction<'_>,
        e: &RecordedEvent,
        change: OfferChange,
        out: &mut Vec<Outgoing>,
    ) -> anyhow::Result<()> {
        match change {
            OfferChange::Created { offer_id, product_id, starts_at, ends_at } => {
                tx.execute(&self.s.schedule, &[&offer_id, &product_id, &starts_at, &ends_at, &e.position])
                    .await?;
            }
            OfferChange::Cancelled { offer_id, product_id } => {
                // Announced as ended now, unless it had ended already.
                if tx.execute(&self.s.unschedule, &[&offer_id]).await? > 0 {
                    let data = json!({ "offer_id": offer_id, "product_id": product_id, "ended_at": e.recorded_at,
                                       "reason": "cancelled" });
                    out.push(Outgoing::of(e, "offer.ended", data));
                }
            }
        }
        Ok(())
    }

    /// `offer.started` and `offer.ended` for offers whose start or end has come, with
    /// ids derived from the offer so a retried batch queues the same ones.
    async fn announce(
        &self,
        tx: &Transaction<'_>,
        now: DateTime<Utc>,
        out: &mut Vec<Outgoing>,
    ) -> anyhow::Result<()> {
        for r in tx.query(&self.s.due, &[&now]).await? {
            let (offer_id, product_id): (Uuid, Uuid) = (r.get(0), r.get(1));
            let (starts_at, ends_at): (DateTime<Utc>, DateTime<Utc>) = (r.get(2), r.get(3));
            let (position, started): (i64, bool) = (r.get(4), r.get(5));
            let about = json!({ "offer_id": offer_id, "product_id": product_id, "starts_at": starts_at, "ends_at": ends_at });
            if !started {
                let id = derived_id(offer_id, "offer.started");
                out.push(Outgoing {
                    id,
                    event_type: "offer.started",
                    position,
                    created_at: starts_at,
                    data: about.clone(),
                    source: None,
                });
            }
            if ends_at <= now {
                let mut data = about;
                data["ended_at"] = json!(ends_at);
                data["reason"] = json!("ended");
                let id = derived_id(offer_id, "offer.ended");
                out.push(Outgoing {
                    id,
                    event_type: "offer.ended",
                    position,
                    created_at: ends_at,
                    data,
                    source: None,
                });
                tx.execute(&self.s.unschedule, &[&offer_id]).await?;
            } else {
                tx.execute(&self.s.started, &[&offer_id]).await?;
            }
        }
        Ok(())
    }

    /// One delivery per event and enabled endpoint subscribed to its type, in order.
    async fn enqueue(
        &self,
        tx: &Transaction<'_>,
        out: &[Outgoing],
        now: DateTime<Utc>,
    ) -> anyhow::Result<(u64, Vec<Uuid>)> {
        if out.is_empty() {
            return Ok((0, Vec::new()));
        }
        let endpoints: Vec<(Uuid, Vec<String>, Checkpoint)> = tx
            .query(&self.s.endpoints, &[])
            .await?
            .into_iter()
            .map(|r| {
                (r.get(0), r.get(1), Checkpoint { tx_id: r.get::<_, i64>(2) as u64, position: r.get(3) })
            })
            .collect();
        let (mut endpoint_ids, mut event_ids, mut types, mut positions, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for o in out {
            let body = o.body();
            for (endpoint, subscribed, after) in &endpoints {
                let news = o.source.is_none_or(|source| source > *after);
                if news && subscribed.iter().any(|t| t == o.event_type) {
                    endpoint_ids.push(*endpoint);
                    event_ids.push(o.id);
                    types.push(o.event_type);
                    positions.push(o.position);
                    bodies.push(body.clone());
                }
            }
        }
        if endpoint_ids.is_empty() {
            return Ok((0, Vec::new()));
        }
        let queued = tx
            .execute(&self.s.queue, &[&endpoint_ids, &event_ids, &types, &positions, &bodies, &now])
            .await?;
        endpoint_ids.sort_unstable();
        endpoint_ids.dedup();
        Ok((queued, endpoint_ids))
    }
}

/// Units available per product, for the products a batch touches.
struct Stock(HashMap<Uuid, i64>);

impl Stock {
    async fn load(tx: &Transaction<'_>, load: &Statement, events: &[RecordedEvent]) -> anyhow::Result<Self> {
        let ids: Vec<Uuid> = events.iter().filter_map(events::stock_change).map(|(p, _)| p).collect();
        if ids.is_empty() {
            return Ok(Stock(HashMap::new()));
        }
        let mut known: HashMap<Uuid, i64> =
            tx.query(load, &[&ids]).await?.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        for id in ids {
            known.entry(id).or_insert(0);
        }
        Ok(Stock(known))
    }

    /// Applies a change; the units left when it took them from `threshold` or more to
    /// fewer (once per crossing: a restock above the threshold arms it again).
    fn change(&mut self, product: Uuid, delta: i64, threshold: i64) -> Option<i64> {
        let available = self.0.entry(product).or_insert(0);
        let before = *available;
        *available += delta;
        (before >= threshold && *available < threshold).then_some(*available)
    }

    async fn save(self, tx: &Transaction<'_>, save: &Statement) -> anyhow::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let (ids, available): (Vec<Uuid>, Vec<i64>) = self.0.into_iter().unzip();
        tx.execute(save, &[&ids, &available]).await?;
        Ok(())
    }
}

/// A stable id for an announcement no single event carries.
fn derived_id(offer_id: Uuid, what: &str) -> Uuid {
    let digest = Sha256::new().chain_update(offer_id.as_bytes()).chain_update(what.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_stock_is_noticed_once_per_crossing() {
        let p = Uuid::from_u128(1);
        let mut stock = Stock(HashMap::new());
        assert_eq!(stock.change(p, 12, 10), None, "a restock never is");
        assert_eq!(stock.change(p, -2, 10), None, "10 left is not below 10");
        assert_eq!(stock.change(p, -1, 10), Some(9));
        assert_eq!(stock.change(p, -5, 10), None, "still low: said already");
        assert_eq!(stock.change(p, 20, 10), None);
        assert_eq!(stock.change(p, -20, 10), Some(4), "armed again by the restock");
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let o = Uuid::from_u128(7);
        assert_eq!(derived_id(o, "offer.started"), derived_id(o, "offer.started"));
        assert_ne!(derived_id(o, "offer.started"), derived_id(o, "offer.ended"));
    }
}
