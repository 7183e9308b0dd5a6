//! `orders`: credit purchases and redemptions with their current status.
//!
//! New orders are inserted with every later event of the same batch already folded in;
//! orders from earlier batches get one bulk status update per table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::purchase::PurchaseEvent;
use domain::redemption::RedemptionEvent;
use infra::store::RecordedEvent;
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{decode, write, Changes, ProjectError};

const PURCHASE_COLUMNS: &str = "id, user_id, package_id, price, currency, points, status, payment_ref, \
     failure_reason, clawed_back, unrecovered, created_at, updated_at";
const REDEMPTION_COLUMNS: &str =
    "id, user_id, product_id, quantity, points, offer_id, recommendation_id, status, cancel_reason, created_at, \
     updated_at";

#[derive(Debug, Serialize)]
struct PurchaseRow {
    id: Uuid,
    user_id: Uuid,
    package_id: Uuid,
    price: Decimal,
    currency: String,
    points: i64,
    #[serde(flatten)]
    status: Status,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct RedemptionRow {
    id: Uuid,
    user_id: Uuid,
    product_id: Uuid,
    quantity: i64,
    points: i64,
    offer_id: Option<Uuid>,
    recommendation_id: Option<Uuid>,
    #[serde(flatten)]
    status: Status,
    created_at: DateTime<Utc>,
}

/// The part of an order that later events change.
#[derive(Debug, Clone, Serialize)]
struct Status {
    id: Uuid,
    status: &'static str,
    payment_ref: Option<String>,
    failure_reason: Option<String>,
    cancel_reason: Option<String>,
    /// A refund's outcome: points taken back, and points that had been spent.
    clawed_back: Option<i64>,
    unrecovered: Option<i64>,
    updated_at: DateTime<Utc>,
}

impl Status {
    fn new(id: Uuid, status: &'static str, at: DateTime<Utc>) -> Self {
        Status {
            id,
            status,
            payment_ref: None,
            failure_reason: None,
            cancel_reason: None,
            clawed_back: None,
            unrecovered: None,
            updated_at: at,
        }
    }
}

pub(super) async fn apply(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<Changes, ProjectError> {
    apply_purchases(tx, events).await?;
    apply_redemptions(tx, events).await?;
    Ok(Changes::default())
}

async fn apply_purchases(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<(), ProjectError> {
    let mut new: HashMap<Uuid, PurchaseRow> = HashMap::new();
    let mut moved: HashMap<Uuid, Status> = HashMap::new();
    for (recorded, event) in decode::<domain::purchase::Purchase>(events)? {
        let at = recorded.recorded_at;
        let (id, status) = match event {
            PurchaseEvent::PurchaseStarted {
                purchase_id,
                user_id,
                package_id,
                price,
                currency,
                points,
                ..
            } => {
                let row = PurchaseRow {
                    id: purchase_id.0,
                    user_id: user_id.0,
                    package_id: package_id.0,
                    price,
                    currency,
                    points,
                    status: Status::new(purchase_id.0, "pending", at),
                    created_at: at,
                };
                new.insert(purchase_id.0, row);
                continue;
            }
            PurchaseEvent::PurchasePaid { purchase_id, payment_ref } => (
                purchase_id.0,
                Status { payment_ref: Some(payment_ref), ..Status::new(purchase_id.0, "paid", at) },
            ),
            PurchaseEvent::PurchaseFailed { purchase_id, reason } => (
                purchase_id.0,
                Status { failure_reason: Some(reason), ..Status::new(purchase_id.0, "failed", at) },
            ),
            PurchaseEvent::PurchaseRefunded { purchase_id, payment_ref, clawed_back, unrecovered } => (
                purchase_id.0,
                Status {
                    payment_ref: Some(payment_ref),
                    clawed_back: Some(clawed_back),
                    unrecovered: Some(unrecovered),
                    ..Status::new(purchase_id.0, "refunded", at)
                },
            ),
        };
        match new.get_mut(&id) {
            Some(row) => row.status = status,
            None => _ = moved.insert(id, status),
        }
    }
    write(tx, "purchases", PURCHASE_COLUMNS, "", &new.into_values().collect::<Vec<_>>()).await?;
    let details = "payment_ref = x.payment_ref, failure_reason = x.failure_reason, \
                   clawed_back = x.clawed_back, unrecovered = x.unrecovered";
    update_status(tx, "purchases", details, moved).await
}

async fn apply_redemptions(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<(), ProjectError> {
    let mut new: HashMap<Uuid, RedemptionRow> = HashMap::new();
    let mut moved: HashMap<Uuid, Status> = HashMap::new();
    for (recorded, event) in decode::<domain::redemption::Redemption>(events)? {
        let at = recorded.recorded_at;
        let (id, status) = match event {
            RedemptionEvent::RedemptionPlaced {
                redemption_id,
                user_id,
                product_id,
                quantity,
                points,
                offer_id,
                recommendation_id,
            } => {
                let row = RedemptionRow {
                    id: redemption_id.0,
                    user_id: user_id.0,
                    product_id: product_id.0,
                    quantity,
                    points,
                    offer_id: offer_id.map(|o| o.0),
                    recommendation_id: recommendation_id.map(|r| r.0),
                    status: Status::new(redemption_id.0, "placed", at),
                    created_at: at,
                };
                new.insert(redemption_id.0, row);
                continue;
            }
            RedemptionEvent::RedemptionFulfilled { redemption_id, .. } => {
                (redemption_id.0, Status::new(redemption_id.0, "fulfilled", at))
            }
            RedemptionEvent::RedemptionCancelled { redemption_id, reason, .. } => (
                redemption_id.0,
                Status { cancel_reason: reason, ..Status::new(redemption_id.0, "cancelled", at) },
            ),
        };
        match new.get_mut(&id) {
            Some(row) => row.status = status,
            None => _ = moved.insert(id, status),
        }
    }
    write(tx, "redemptions", REDEMPTION_COLUMNS, "", &new.into_values().collect::<Vec<_>>()).await?;
    update_status(tx, "redemptions", "cancel_reason = x.cancel_reason", moved).await
}

/// One bulk UPDATE moving orders of earlier batches to their new status.
async fn update_status(
    tx: &Transaction<'_>,
    table: &str,
    details: &str,
    moved: HashMap<Uuid, Status>,
) -> Result<(), ProjectError> {
    if moved.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE {table} t SET status = x.status, updated_at = x.updated_at, {details} \
         FROM jsonb_to_recordset($1) AS x(id uuid, status text, payment_ref text, failure_reason text, \
                                          cancel_reason text, clawed_back int8, unrecovered int8, \
                                          updated_at timestamptz) \
         WHERE t.id = x.id"
    );
    let rows: Vec<Status> = moved.into_values().collect();
    tx.execute(&sql, &[&serde_json::to_value(rows)?]).await?;
    Ok(())
}
