//! Internal events → the public event types of design §13, a stable contract: field
//! names here change only with a new type. No personal data beyond the user id: no
//! e-mails, names, free-text reasons or payment references.

use std::collections::HashMap;

use domain::account::{AccountEvent, CreditSource};
use domain::product::ProductEvent;
use domain::purchase::PurchaseEvent;
use domain::redemption::RedemptionEvent;
use domain::DomainEvent;
use infra::store::RecordedEvent;
use serde_json::{json, Value};
use uuid::Uuid;

/// The first event of each purchase and redemption stream in a batch, by stream id:
/// later events of those streams name only the order, and integrators want to know
/// whose it is and what it was.
pub type Origins = HashMap<String, Value>;

/// The streams whose origin [`public`] needs for this event.
pub fn origin_needed(e: &RecordedEvent) -> Option<&str> {
    let needs = matches!(
        e.event_type.as_str(),
        "PurchasePaid"
            | "PurchaseFailed"
            | "PurchaseRefunded"
            | "RedemptionCancelled"
            | "RedemptionFulfilled"
    );
    needs.then_some(e.stream_id.as_str())
}

/// The public type and data of an event that maps one to one; `None` for events
/// integrators are not told about (and for stock and offers, which need state: see
/// the fan-out).
pub fn public(e: &RecordedEvent, origins: &Origins) -> Option<(&'static str, Value)> {
    let origin = || origins.get(&e.stream_id).cloned().unwrap_or(Value::Null);
    let prefix = e.stream_id.split('-').next().unwrap_or_default();
    match prefix {
        "account" => account(AccountEvent::decode(&e.event_type, &e.data).ok()?),
        "purchase" => purchase(PurchaseEvent::decode(&e.event_type, &e.data).ok()?, origin()),
        "redemption" => redemption(RedemptionEvent::decode(&e.event_type, &e.data).ok()?, origin()),
        _ => None,
    }
}

fn account(e: AccountEvent) -> Option<(&'static str, Value)> {
    Some(match e {
        AccountEvent::PointsCredited { user_id, lot_id, points, source, expires_at } => {
            let CreditSource::Purchase { purchase_id } = source;
            let data = json!({ "user_id": user_id, "lot_id": lot_id, "points": points,
                               "expires_at": expires_at, "purchase_id": purchase_id });
            ("points.credited", data)
        }
        AccountEvent::PointsDebited { user_id, redemption_id, points, .. } => (
            "points.debited",
            json!({ "user_id": user_id, "redemption_id": redemption_id, "points": points }),
        ),
        AccountEvent::PointsRefunded { user_id, redemption_id, points, .. } => (
            "points.refunded",
            json!({ "user_id": user_id, "redemption_id": redemption_id, "points": points }),
        ),
        AccountEvent::PointsAdjusted { user_id, delta, .. } => {
            ("points.adjusted", json!({ "user_id": user_id, "delta": delta }))
        }
        AccountEvent::PointsClawedBack { user_id, lot_id, purchase_id, points, unrecovered } => {
            let data = json!({ "user_id": user_id, "lot_id": lot_id, "purchase_id": purchase_id,
                               "points": points, "unrecovered": unrecovered });
            ("points.clawed_back", data)
        }
        AccountEvent::PointsExpired { user_id, lot_id, points } => {
            ("points.expired", json!({ "user_id": user_id, "lot_id": lot_id, "points": points }))
        }
        AccountEvent::PointsExpiring { user_id, lot_id, points, expires_at } => {
            let data =
                json!({ "user_id": user_id, "lot_id": lot_id, "points": points, "expires_at": expires_at });
            ("points.expiring", data)
        }
        AccountEvent::AccountOpened { .. }
        | AccountEvent::RoleGranted { .. }
        | AccountEvent::RoleRevoked { .. }
        | AccountEvent::UserErased { .. } => return None,
    })
}

fn purchase(e: PurchaseEvent, started: Value) -> Option<(&'static str, Value)> {
    let about = |purchase_id: Uuid| {
        json!({ "purchase_id": purchase_id, "user_id": started["user_id"], "package_id": started["package_id"],
                "points": started["points"], "price": started["price"], "currency": started["currency"] })
    };
    Some(match e {
        PurchaseEvent::PurchasePaid { purchase_id, .. } => ("purchase.paid", about(purchase_id.0)),
        PurchaseEvent::PurchaseFailed { purchase_id, .. } => ("purchase.failed", about(purchase_id.0)),
        PurchaseEvent::PurchaseRefunded { purchase_id, clawed_back, unrecovered, .. } => {
            let mut data = about(purchase_id.0);
            data["clawed_back"] = json!(clawed_back);
            data["unrecovered"] = json!(unrecovered);
            ("purchase.refunded", data)
        }
        PurchaseEvent::PurchaseStarted { .. } => return None,
    })
}

fn redemption(e: RedemptionEvent, placed: Value) -> Option<(&'static str, Value)> {
    let about = |redemption_id: Uuid| {
        json!({ "redemption_id": redemption_id, "user_id": placed["user_id"], "product_id": placed["product_id"],
                "quantity": placed["quantity"], "points": placed["points"] })
    };
    Some(match e {
        RedemptionEvent::RedemptionPlaced {
            redemption_id,
            user_id,
            product_id,
            quantity,
            points,
            offer_id,
            ..
        } => {
            let data = json!({ "redemption_id": redemption_id, "user_id": user_id, "product_id": product_id,
                               "quantity": quantity, "points": points, "offer_id": offer_id });
            ("redemption.placed", data)
        }
        RedemptionEvent::RedemptionCancelled { redemption_id, .. } => {
            ("redemption.cancelled", about(redemption_id.0))
        }
        RedemptionEvent::RedemptionFulfilled { redemption_id, .. } => {
            ("redemption.fulfilled", about(redemption_id.0))
        }
    })
}

/// How a product event changes the units available (on hand less reserved).
pub fn stock_change(e: &RecordedEvent) -> Option<(Uuid, i64)> {
    if !e.stream_id.starts_with("product-") {
        return None;
    }
    match ProductEvent::decode(&e.event_type, &e.data).ok()? {
        ProductEvent::StockReceived { product_id, quantity, .. } => Some((product_id.0, quantity)),
        ProductEvent::StockAdjusted { product_id, delta, .. } => Some((product_id.0, delta)),
        ProductEvent::StockReserved { product_id, quantity, .. } => Some((product_id.0, -quantity)),
        ProductEvent::StockReleased { product_id, quantity, .. } => Some((product_id.0, quantity)),
        _ => None,
    }
}

/// An offer created or cancelled, for the announcement schedule.
pub enum OfferChange {
    Created {
        offer_id: Uuid,
        product_id: Uuid,
        starts_at: chrono::DateTime<chrono::Utc>,
        ends_at: chrono::DateTime<chrono::Utc>,
    },
    Cancelled {
        offer_id: Uuid,
        product_id: Uuid,
    },
}

pub fn offer_change(e: &RecordedEvent) -> Option<OfferChange> {
    if !e.stream_id.starts_with("product-") {
        return None;
    }
    match ProductEvent::decode(&e.event_type, &e.data).ok()? {
        ProductEvent::OfferCreated { product_id, terms, .. } => Some(OfferChange::Created {
            offer_id: terms.offer_id.0,
            product_id: product_id.0,
            starts_at: terms.starts_at,
            ends_at: terms.ends_at,
        }),
        ProductEvent::OfferCancelled { product_id, offer_id, .. } => {
            Some(OfferChange::Cancelled { offer_id: offer_id.0, product_id: product_id.0 })
        }
        _ => None,
    }
}
