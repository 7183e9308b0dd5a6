//! The catalog projection's golden-hour offers (`offers`), folded from the product
//! streams' offer events and the offer-priced reservations and releases, and each
//! product's schedule for its cached document.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::product::ProductEvent;
use infra::store::RecordedEvent;
use infra::views::OfferDoc;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{replace_on, write, ProjectError};

const OFFER_COLUMNS: &str = "id, product_id, title, point_cost, starts_at, ends_at, cancelled_at, units, \
     units_sold, per_customer_limit, created_at";

#[derive(Debug, Serialize, Deserialize)]
struct OfferRow {
    id: Uuid,
    product_id: Uuid,
    title: Option<String>,
    point_cost: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    units: Option<i64>,
    units_sold: i64,
    per_customer_limit: Option<i64>,
    created_at: DateTime<Utc>,
}

impl OfferRow {
    fn ends_effective(&self) -> DateTime<Utc> {
        self.cancelled_at.map_or(self.ends_at, |c| c.min(self.ends_at))
    }

    fn doc(&self) -> OfferDoc {
        OfferDoc {
            id: self.id,
            point_cost: self.point_cost,
            starts_at: self.starts_at,
            ends_at: self.ends_effective(),
            units_left: self.units.map(|u| u - self.units_sold),
            per_customer_limit: self.per_customer_limit,
            title: self.title.clone(),
        }
    }
}

/// Folds the batch's offer events into `offers` and returns the schedule (offers not
/// over at `now`, soonest first) of each product in `products`.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    events: &[(&RecordedEvent, ProductEvent)],
    products: &[Uuid],
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, Vec<OfferDoc>>, ProjectError> {
    let touched: Vec<Uuid> = events.iter().filter_map(|(_, e)| offer_of(e)).collect();
    let mut rows: HashMap<Uuid, OfferRow> = load(tx, &touched, products).await?;
    let mut changed: Vec<Uuid> = Vec::new();
    for (_, event) in events {
        let Some(id) = fold(&mut rows, event) else { continue };
        changed.push(id);
    }
    changed.sort_unstable();
    changed.dedup();
    let written: Vec<&OfferRow> = changed.iter().filter_map(|id| rows.get(id)).collect();
    write(tx, "offers", OFFER_COLUMNS, &replace_on("id", OFFER_COLUMNS), &written).await?;

    let mut schedules: HashMap<Uuid, Vec<&OfferRow>> = HashMap::new();
    for row in rows.values().filter(|r| r.ends_effective() > now) {
        schedules.entry(row.product_id).or_default().push(row);
    }
    Ok(schedules
        .into_iter()
        .map(|(product, mut offers)| {
            offers.sort_by_key(|o| (o.starts_at, o.id));
            (product, offers.into_iter().map(OfferRow::doc).collect())
        })
        .collect())
}

/// The offer an event concerns, for an offer event or an offer-priced stock move.
fn offer_of(event: &ProductEvent) -> Option<Uuid> {
    match event {
        ProductEvent::OfferCreated { terms, .. } => Some(terms.offer_id.0),
        ProductEvent::OfferCancelled { offer_id, .. } => Some(offer_id.0),
        ProductEvent::StockReserved { offer_id, .. } | ProductEvent::StockReleased { offer_id, .. } => {
            offer_id.map(|o| o.0)
        }
        _ => None,
    }
}

/// The offers the batch touches, and those of `products` not yet over.
async fn load(
    tx: &Transaction<'_>,
    ids: &[Uuid],
    products: &[Uuid],
) -> Result<HashMap<Uuid, OfferRow>, ProjectError> {
    let rows = tx
        .query(
            "SELECT to_jsonb(t) FROM offers t \
             WHERE t.id = ANY($1) OR (t.product_id = ANY($2) AND t.ends_effective > now())",
            &[&ids, &products],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let row: OfferRow = serde_json::from_value(r.get(0))?;
            Ok((row.id, row))
        })
        .collect()
}

/// Folds one event in; returns the offer it changed.
fn fold(rows: &mut HashMap<Uuid, OfferRow>, event: &ProductEvent) -> Option<Uuid> {
    match event {
        ProductEvent::OfferCreated { product_id, terms, created_at } => {
            let row = OfferRow {
                id: terms.offer_id.0,
                product_id: product_id.0,
                title: terms.title.clone(),
                point_cost: terms.point_cost,
                starts_at: terms.starts_at,
                ends_at: terms.ends_at,
                cancelled_at: None,
                units: terms.units,
                units_sold: 0,
                per_customer_limit: terms.per_customer_limit,
                created_at: *created_at,
            };
            rows.insert(row.id, row);
            Some(terms.offer_id.0)
        }
        ProductEvent::OfferCancelled { offer_id, at, .. } => {
            rows.get_mut(&offer_id.0)?.cancelled_at = Some(*at);
            Some(offer_id.0)
        }
        ProductEvent::StockReserved { offer_id: Some(id), quantity, .. } => {
            rows.get_mut(&id.0)?.units_sold += quantity;
            Some(id.0)
        }
        ProductEvent::StockReleased { offer_id: Some(id), quantity, .. } => {
            rows.get_mut(&id.0)?.units_sold -= quantity;
            Some(id.0)
        }
        _ => None,
    }
}
