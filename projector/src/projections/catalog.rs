//! `catalog`: categories, products (with available stock and the search vector, which
//! Postgres generates), credit packages and golden-hour offers (see `offers`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::category::CategoryEvent;
use domain::package::PackageEvent;
use domain::product::{apply_changes, ProductDetails, ProductEvent};
use infra::store::RecordedEvent;
use infra::views::ProductDoc;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{decode, load, offers, replace_on, write, Changes, ProjectError};

const PRODUCT_COLUMNS: &str = "id, name, description, category_id, point_cost, image_url, in_offer_pool, \
     active, on_hand, reserved, version, listed_at, updated_at";

#[derive(Debug, Serialize, Deserialize)]
struct ProductRow {
    id: Uuid,
    name: String,
    description: String,
    category_id: Uuid,
    point_cost: i64,
    image_url: Option<String>,
    in_offer_pool: bool,
    active: bool,
    on_hand: i64,
    reserved: i64,
    version: i64,
    listed_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(super) async fn apply(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<Changes, ProjectError> {
    let mut changes = Changes::default();
    for (recorded, event) in decode::<domain::category::Category>(events)? {
        apply_category(tx, recorded, &event).await?;
        changes.catalog_changed = true;
    }
    for (recorded, event) in decode::<domain::package::Package>(events)? {
        apply_package(tx, recorded, &event).await?;
    }
    apply_products(tx, events, &mut changes).await?;
    Ok(changes)
}

async fn apply_products(
    tx: &Transaction<'_>,
    events: &[RecordedEvent],
    changes: &mut Changes,
) -> Result<(), ProjectError> {
    let events = decode::<domain::product::Product>(events)?;
    if events.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<Uuid> = events.iter().map(|(_, e)| e.product_id().0).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows: HashMap<Uuid, ProductRow> =
        load::<ProductRow>(tx, "products", "id", &ids).await?.into_iter().map(|r| (r.id, r)).collect();
    for (recorded, event) in &events {
        if let ProductEvent::ProductListed { product_id, details } = event {
            rows.insert(product_id.0, ProductRow::listed(product_id.0, details, recorded.recorded_at));
            changes.catalog_changed = true;
        } else if let Some(row) = rows.get_mut(&event.product_id().0) {
            changes.catalog_changed |= row.apply(event);
        }
        if let Some(row) = rows.get_mut(&event.product_id().0) {
            row.version = recorded.version;
            row.updated_at = recorded.recorded_at;
        }
    }
    let rows: Vec<ProductRow> = rows.into_values().collect();
    write(tx, "products", PRODUCT_COLUMNS, &replace_on("id", PRODUCT_COLUMNS), &rows).await?;
    let mut schedules = offers::apply(tx, &events, &ids, Utc::now()).await?;
    changes.products = rows
        .into_iter()
        .map(|row| {
            let schedule = schedules.remove(&row.id).unwrap_or_default();
            row.into_doc(schedule)
        })
        .collect();
    Ok(())
}

impl ProductRow {
    fn listed(id: Uuid, d: &ProductDetails, at: DateTime<Utc>) -> Self {
        ProductRow {
            id,
            name: d.name.clone(),
            description: d.description.clone(),
            category_id: d.category_id.0,
            point_cost: d.point_cost,
            image_url: d.image_url.clone(),
            in_offer_pool: d.in_offer_pool,
            active: true,
            on_hand: 0,
            reserved: 0,
            version: 0,
            listed_at: at,
            updated_at: at,
        }
    }

    /// Folds one event in; true when what a search could match or rank changed (stock
    /// moves do not invalidate cached searches: they cache ids, not documents).
    fn apply(&mut self, event: &ProductEvent) -> bool {
        match event {
            ProductEvent::ProductListed { .. } => true, // handled by the caller
            ProductEvent::ProductRevised { changes, .. } => {
                let mut d = ProductDetails {
                    name: std::mem::take(&mut self.name),
                    description: std::mem::take(&mut self.description),
                    category_id: domain::CategoryId(self.category_id),
                    point_cost: self.point_cost,
                    image_url: self.image_url.take(),
                    in_offer_pool: self.in_offer_pool,
                };
                apply_changes(&mut d, changes);
                self.name = d.name;
                self.description = d.description;
                self.category_id = d.category_id.0;
                self.point_cost = d.point_cost;
                self.image_url = d.image_url;
                self.in_offer_pool = d.in_offer_pool;
                true
            }
            ProductEvent::ProductDelisted { .. } => {
                self.active = false;
                true
            }
            ProductEvent::ProductRelisted { .. } => {
                self.active = true;
                true
            }
            ProductEvent::StockReceived { quantity, .. } => {
                self.on_hand += quantity;
                false
            }
            ProductEvent::StockAdjusted { delta, .. } => {
                self.on_hand += delta;
                false
            }
            ProductEvent::StockReserved { quantity, .. } => {
                self.reserved += quantity;
                false
            }
            ProductEvent::StockReleased { quantity, .. } => {
                self.reserved -= quantity;
                false
            }
            ProductEvent::StockShipped { quantity, .. } => {
                self.reserved -= quantity;
                self.on_hand -= quantity;
                false
            }
            // Offers are folded by `offers`; a search on offers is never cached.
            ProductEvent::OfferCreated { .. } | ProductEvent::OfferCancelled { .. } => false,
        }
    }

    fn into_doc(self, schedule: Vec<infra::views::OfferDoc>) -> ProductDoc {
        ProductDoc {
            id: self.id,
            name: self.name,
            description: self.description,
            category_id: self.category_id,
            point_cost: self.point_cost,
            available: self.on_hand - self.reserved,
            in_offer_pool: self.in_offer_pool,
            active: self.active,
            image_url: self.image_url,
            offer: None,
            schedule,
        }
    }
}

async fn apply_category(
    tx: &Transaction<'_>,
    recorded: &RecordedEvent,
    event: &CategoryEvent,
) -> Result<(), ProjectError> {
    match event {
        CategoryEvent::CategoryCreated { category_id, name, description } => {
            tx.execute(
                "INSERT INTO categories (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
                &[&category_id.0, name, description, &recorded.recorded_at],
            )
            .await?;
        }
        CategoryEvent::CategoryRevised { category_id, name, description } => {
            tx.execute(
                "UPDATE categories SET name = COALESCE($2, name), description = COALESCE($3, description) \
                 WHERE id = $1",
                &[&category_id.0, name, description],
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_package(
    tx: &Transaction<'_>,
    recorded: &RecordedEvent,
    event: &PackageEvent,
) -> Result<(), ProjectError> {
    match event {
        PackageEvent::PackageCreated { package_id, terms } => {
            let valid_days = terms.points_valid_days.map(|d| d as i32);
            tx.execute(
                "INSERT INTO packages (id, name, description, price, currency, points, points_valid_days, \
                   active, created_at) VALUES ($1, $2, $3, $4::text::numeric, $5, $6, $7, true, $8)",
                &[
                    &package_id.0,
                    &terms.name,
                    &terms.description,
                    &terms.price.to_string(),
                    &terms.currency,
                    &terms.points,
                    &valid_days,
                    &recorded.recorded_at,
                ],
            )
            .await?;
        }
        PackageEvent::PackageRevised { package_id, changes: c } => {
            let price = c.price.map(|p| p.to_string());
            let valid_days = c.points_valid_days.map(|d| d as i32);
            tx.execute(
                "UPDATE packages SET name = COALESCE($2, name), description = COALESCE($3, description), \
                   price = COALESCE($4::text::numeric, price), currency = COALESCE($5, currency), \
                   points = COALESCE($6, points), points_valid_days = COALESCE($7, points_valid_days) \
                 WHERE id = $1",
                &[&package_id.0, &c.name, &c.description, &price, &c.currency, &c.points, &valid_days],
            )
            .await?;
        }
        PackageEvent::PackageRetired { package_id } => {
            tx.execute("UPDATE packages SET active = false WHERE id = $1", &[&package_id.0]).await?;
        }
    }
    Ok(())
}
