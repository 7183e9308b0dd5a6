//! The product: a catalog entry and its stock.
//!
//! Stock is `on_hand` units of which `reserved` are promised to placed redemptions;
//! `available = on_hand − reserved` never goes below zero. Reserving happens when a
//! redemption is placed, shipping when it is fulfilled, releasing when it is cancelled.
//! A delisted product cannot be reserved.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ids::{is_valid_amount, CategoryId, ProductId, RedemptionId, MAX_AMOUNT};
use crate::{Aggregate, Decide, DomainEvent};

/// The catalog fields of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub name: String,
    pub description: String,
    pub category_id: CategoryId,
    pub point_cost: i64,
    pub image_url: Option<String>,
    pub in_offer_pool: bool,
}

/// A revision: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<CategoryId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_cost: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_offer_pool: Option<bool>,
}

impl ProductChanges {
    pub fn is_empty(&self) -> bool {
        *self == ProductChanges::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProductEvent {
    ProductListed {
        product_id: ProductId,
        #[serde(flatten)]
        details: ProductDetails,
    },
    ProductRevised {
        product_id: ProductId,
        #[serde(flatten)]
        changes: ProductChanges,
    },
    ProductDelisted {
        product_id: ProductId,
    },
    ProductRelisted {
        product_id: ProductId,
    },
    StockReceived {
        product_id: ProductId,
        quantity: i64,
        reason: String,
    },
    StockAdjusted {
        product_id: ProductId,
        delta: i64,
        reason: String,
    },
    StockReserved {
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
    },
    StockReleased {
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
    },
    StockShipped {
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
    },
}

impl ProductEvent {
    /// The product this event belongs to.
    pub fn product_id(&self) -> ProductId {
        match self {
            ProductEvent::ProductListed { product_id, .. }
            | ProductEvent::ProductRevised { product_id, .. }
            | ProductEvent::ProductDelisted { product_id }
            | ProductEvent::ProductRelisted { product_id }
            | ProductEvent::StockReceived { product_id, .. }
            | ProductEvent::StockAdjusted { product_id, .. }
            | ProductEvent::StockReserved { product_id, .. }
            | ProductEvent::StockReleased { product_id, .. }
            | ProductEvent::StockShipped { product_id, .. } => *product_id,
        }
    }
}

impl DomainEvent for ProductEvent {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: Option<ProductId>,
    pub details: Option<ProductDetails>,
    pub active: bool,
    pub on_hand: i64,
    pub reserved: i64,
    reservations: HashMap<RedemptionId, i64>,
}

impl Product {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    pub fn point_cost(&self) -> Option<i64> {
        self.details.as_ref().map(|d| d.point_cost)
    }
}

impl Aggregate for Product {
    type Event = ProductEvent;
    const STREAM: &'static str = "product";
    const SNAPSHOT: Option<crate::SnapshotCodec<Self>> = Some(crate::SnapshotCodec::json(1));

    fn apply(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::ProductListed { product_id, details } => {
                self.id = Some(*product_id);
                self.details = Some(details.clone());
                self.active = true;
            }
            ProductEvent::ProductRevised { changes, .. } => {
                if let Some(d) = self.details.as_mut() {
                    apply_changes(d, changes);
                }
            }
            ProductEvent::ProductDelisted { .. } => self.active = false,
            ProductEvent::ProductRelisted { .. } => self.active = true,
            ProductEvent::StockReceived { quantity, .. } => self.on_hand += quantity,
            ProductEvent::StockAdjusted { delta, .. } => self.on_hand += delta,
            ProductEvent::StockReserved { redemption_id, quantity, .. } => {
                self.reserved += quantity;
                self.reservations.insert(*redemption_id, *quantity);
            }
            ProductEvent::StockReleased { redemption_id, quantity, .. } => {
                self.reserved -= quantity;
                self.reservations.remove(redemption_id);
            }
            ProductEvent::StockShipped { redemption_id, quantity, .. } => {
                self.reserved -= quantity;
                self.on_hand -= quantity;
                self.reservations.remove(redemption_id);
            }
        }
    }
}

/// Applies a revision to catalog details (shared with the read side's fold).
pub fn apply_changes(d: &mut ProductDetails, c: &ProductChanges) {
    if let Some(v) = &c.name {
        d.name = v.clone();
    }
    if let Some(v) = &c.description {
        d.description = v.clone();
    }
    if let Some(v) = c.category_id {
        d.category_id = v;
    }
    if let Some(v) = c.point_cost {
        d.point_cost = v;
    }
    if let Some(v) = &c.image_url {
        d.image_url = Some(v.clone());
    }
    if let Some(v) = c.in_offer_pool {
        d.in_offer_pool = v;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    List { product_id: ProductId, details: ProductDetails, initial_stock: i64 },
    Revise { changes: ProductChanges },
    Delist,
    Relist,
    ReceiveStock { quantity: i64, reason: String },
    AdjustStock { delta: i64, reason: String },
    Reserve { redemption_id: RedemptionId, quantity: i64 },
    Release { redemption_id: RedemptionId },
    Ship { redemption_id: RedemptionId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("the product does not exist")]
    NotFound,
    #[error("the product already exists")]
    AlreadyListed,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the product is delisted")]
    Unavailable,
    #[error("{requested} requested but only {available} available")]
    OutOfStock { requested: i64, available: i64 },
    #[error("the product is already {0}")]
    AlreadyInState(&'static str),
    #[error("no stock is reserved for this redemption")]
    UnknownReservation,
}

pub fn validate_details(d: &ProductDetails) -> Result<(), ProductError> {
    validate_name(&d.name)?;
    validate_description(&d.description)?;
    if !is_valid_amount(d.point_cost) {
        return Err(ProductError::Invalid("point_cost must be a positive whole number"));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), ProductError> {
    if !crate::is_valid_name(name) {
        return Err(ProductError::Invalid("name must be 1 to 200 characters"));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), ProductError> {
    if !crate::is_valid_description(description) {
        return Err(ProductError::Invalid("description must be at most 2000 characters"));
    }
    Ok(())
}

impl Decide for Product {
    type Command = ProductCommand;
    type Error = ProductError;

    fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        let product_id = match (self.id, &command) {
            (None, ProductCommand::List { product_id, details, initial_stock }) => {
                validate_details(details)?;
                if !(0..=MAX_AMOUNT).contains(initial_stock) {
                    return Err(ProductError::Invalid("initial_stock must be zero or more"));
                }
                let mut events =
                    vec![ProductEvent::ProductListed { product_id: *product_id, details: details.clone() }];
                if *initial_stock > 0 {
                    events.push(ProductEvent::StockReceived {
                        product_id: *product_id,
                        quantity: *initial_stock,
                        reason: "initial stock".into(),
                    });
                }
                return Ok(events);
            }
            (Some(_), ProductCommand::List { .. }) => return Err(ProductError::AlreadyListed),
            (None, _) => return Err(ProductError::NotFound),
            (Some(id), _) => id,
        };
        match command {
            ProductCommand::List { .. } => Err(ProductError::AlreadyListed),
            ProductCommand::Revise { changes } => {
                if changes.is_empty() {
                    return Err(ProductError::Invalid("a revision must change at least one field"));
                }
                if let Some(name) = &changes.name {
                    validate_name(name)?;
                }
                if let Some(description) = &changes.description {
                    validate_description(description)?;
                }
                if changes.point_cost.is_some_and(|c| !is_valid_amount(c)) {
                    return Err(ProductError::Invalid("point_cost must be a positive whole number"));
                }
                Ok(vec![ProductEvent::ProductRevised { product_id, changes }])
            }
            ProductCommand::Delist if !self.active => Err(ProductError::AlreadyInState("delisted")),
            ProductCommand::Delist => Ok(vec![ProductEvent::ProductDelisted { product_id }]),
            ProductCommand::Relist if self.active => Err(ProductError::AlreadyInState("listed")),
            ProductCommand::Relist => Ok(vec![ProductEvent::ProductRelisted { product_id }]),
            ProductCommand::ReceiveStock { quantity, reason } => {
                if !is_valid_amount(quantity) || self.on_hand + quantity > MAX_AMOUNT {
                    return Err(ProductError::Invalid("quantity must be a positive whole number"));
                }
                Ok(vec![ProductEvent::StockReceived { product_id, quantity, reason }])
            }
            ProductCommand::AdjustStock { delta, reason } => {
                if delta == 0 || !is_valid_amount(delta.saturating_abs()) || self.on_hand + delta > MAX_AMOUNT
                {
                    return Err(ProductError::Invalid("delta must be a non-zero whole number"));
                }
                if reason.trim().is_empty() {
                    return Err(ProductError::Invalid("a stock adjustment needs a reason"));
                }
                if self.available() + delta < 0 {
                    return Err(ProductError::OutOfStock { requested: -delta, available: self.available() });
                }
                Ok(vec![ProductEvent::StockAdjusted { product_id, delta, reason }])
            }
            ProductCommand::Reserve { redemption_id, quantity } => {
                if !is_valid_amount(quantity) {
                    return Err(ProductError::Invalid("quantity must be a positive whole number"));
                }
                if !self.active {
                    return Err(ProductError::Unavailable);
                }
                if quantity > self.available() {
                    return Err(ProductError::OutOfStock {
                        requested: quantity,
                        available: self.available(),
                    });
                }
                Ok(vec![ProductEvent::StockReserved { product_id, redemption_id, quantity }])
            }
            ProductCommand::Release { redemption_id } => {
                let quantity =
                    *self.reservations.get(&redemption_id).ok_or(ProductError::UnknownReservation)?;
                Ok(vec![ProductEvent::StockReleased { product_id, redemption_id, quantity }])
            }
            ProductCommand::Ship { redemption_id } => {
                let quantity =
                    *self.reservations.get(&redemption_id).ok_or(ProductError::UnknownReservation)?;
                Ok(vec![ProductEvent::StockShipped { product_id, redemption_id, quantity }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    fn pid() -> ProductId {
        ProductId(Uuid::from_u128(1))
    }
    fn rid(n: u128) -> RedemptionId {
        RedemptionId(Uuid::from_u128(10 + n))
    }
    fn listed() -> ProductEvent {
        ProductEvent::ProductListed {
            product_id: pid(),
            details: ProductDetails {
                name: "Mug".into(),
                description: "A mug".into(),
                category_id: CategoryId(Uuid::from_u128(2)),
                point_cost: 100,
                image_url: None,
                in_offer_pool: false,
            },
        }
    }
    fn received(q: i64) -> ProductEvent {
        ProductEvent::StockReceived { product_id: pid(), quantity: q, reason: "delivery".into() }
    }
    fn reserved(n: u128, q: i64) -> ProductEvent {
        ProductEvent::StockReserved { product_id: pid(), redemption_id: rid(n), quantity: q }
    }

    #[test]
    fn reserving_more_than_is_available_is_rejected() {
        given::<Product>([listed(), received(3), reserved(1, 2)])
            .when(ProductCommand::Reserve { redemption_id: rid(2), quantity: 2 })
            .then_err(ProductError::OutOfStock { requested: 2, available: 1 });
    }

    #[test]
    fn a_delisted_product_cannot_be_reserved() {
        given::<Product>([listed(), received(3), ProductEvent::ProductDelisted { product_id: pid() }])
            .when(ProductCommand::Reserve { redemption_id: rid(1), quantity: 1 })
            .then_err(ProductError::Unavailable);
    }

    #[test]
    fn shipping_and_releasing_settle_the_reservation_exactly() {
        given::<Product>([listed(), received(3), reserved(1, 2)])
            .when(ProductCommand::Ship { redemption_id: rid(1) })
            .then([ProductEvent::StockShipped { product_id: pid(), redemption_id: rid(1), quantity: 2 }]);
        given::<Product>([
            listed(),
            received(3),
            reserved(1, 2),
            ProductEvent::StockReleased { product_id: pid(), redemption_id: rid(1), quantity: 2 },
        ])
        .when(ProductCommand::Release { redemption_id: rid(1) })
        .then_err(ProductError::UnknownReservation);
    }

    #[test]
    fn an_adjustment_cannot_take_available_stock_below_zero() {
        given::<Product>([listed(), received(3), reserved(1, 2)])
            .when(ProductCommand::AdjustStock { delta: -2, reason: "broken".into() })
            .then_err(ProductError::OutOfStock { requested: 2, available: 1 });
    }

    #[test]
    fn listing_with_initial_stock_receives_it() {
        let ProductEvent::ProductListed { product_id, details } = listed() else { unreachable!() };
        given::<Product>([]).when(ProductCommand::List { product_id, details, initial_stock: 5 }).then([
            listed(),
            ProductEvent::StockReceived { product_id: pid(), quantity: 5, reason: "initial stock".into() },
        ]);
    }
}
