//! The product: a catalog entry and its stock.
//!
//! Stock is `on_hand` units of which `reserved` are promised to placed redemptions;
//! `available = on_hand − reserved` never goes below zero. Reserving happens when a
//! redemption is placed, shipping when it is fulfilled, releasing when it is cancelled.
//! A delisted product cannot be reserved.
//!
//! A product also carries its golden-hour offers ([`offer`]): a redemption's price is
//! quoted from the offer live at the command's clock, and the reservation records the
//! offer, so its units and the customer's limit are counted in the same stream.

mod details;
mod offer;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use details::{apply_changes, validate_details, ProductChanges, ProductDetails};
pub use offer::{validate_terms, Offer, OfferTerms, Order, Quote, MAX_WINDOW};

use crate::ids::{is_valid_amount, OfferId, ProductId, RedemptionId, UserId, MAX_AMOUNT};
use crate::{Aggregate, Decide, DomainEvent};

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
    /// `offer_id` and `user_id` are set when the units were sold at an offer's price.
    StockReserved {
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offer_id: Option<OfferId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<UserId>,
    },
    /// `offer_id` is set when the units also go back to the offer (it is still on).
    StockReleased {
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offer_id: Option<OfferId>,
    },
    StockShipped {
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
    },
    OfferCreated {
        product_id: ProductId,
        #[serde(flatten)]
        terms: OfferTerms,
        created_at: DateTime<Utc>,
    },
    OfferCancelled {
        product_id: ProductId,
        offer_id: OfferId,
        reason: Option<String>,
        at: DateTime<Utc>,
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
            | ProductEvent::StockShipped { product_id, .. }
            | ProductEvent::OfferCreated { product_id, .. }
            | ProductEvent::OfferCancelled { product_id, .. } => *product_id,
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
    reservations: HashMap<RedemptionId, Reservation>,
    /// Offers not known to be over, in the order they were created.
    offers: Vec<Offer>,
}

/// Units promised to a placed redemption, and the offer (and buyer) they were sold under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Reservation {
    quantity: i64,
    offer: Option<(OfferId, UserId)>,
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
    const SNAPSHOT: Option<crate::SnapshotCodec<Self>> = Some(crate::SnapshotCodec::json(2));

    fn weight(&self) -> usize {
        1 + self.reservations.len() + self.offers.iter().map(Offer::weight).sum::<usize>()
    }

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
            ProductEvent::StockReserved { redemption_id, quantity, offer_id, user_id, .. } => {
                self.reserved += quantity;
                let offer = offer_id.zip(*user_id);
                self.reservations.insert(*redemption_id, Reservation { quantity: *quantity, offer });
                if let Some(o) = offer_id.and_then(|id| self.offer_mut(id)) {
                    o.count(*user_id, *quantity);
                }
            }
            ProductEvent::StockReleased { redemption_id, quantity, offer_id, .. } => {
                self.reserved -= quantity;
                let reservation = self.reservations.remove(redemption_id);
                if let Some(o) = offer_id.and_then(|id| self.offer_mut(id)) {
                    o.count(reservation.and_then(|r| r.offer).map(|(_, user)| user), -quantity);
                }
            }
            ProductEvent::StockShipped { redemption_id, quantity, .. } => {
                self.reserved -= quantity;
                self.on_hand -= quantity;
                self.reservations.remove(redemption_id);
            }
            ProductEvent::OfferCreated { terms, created_at, .. } => {
                self.forget_offers_over_at(*created_at);
                self.offers.push(Offer::new(terms.clone()));
            }
            ProductEvent::OfferCancelled { offer_id, at, .. } => {
                if let Some(o) = self.offer_mut(*offer_id) {
                    o.cancelled_at = Some(*at);
                }
                self.forget_offers_over_at(*at);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    List {
        product_id: ProductId,
        details: ProductDetails,
        initial_stock: i64,
    },
    Revise {
        changes: ProductChanges,
    },
    Delist,
    Relist,
    ReceiveStock {
        quantity: i64,
        reason: String,
    },
    AdjustStock {
        delta: i64,
        reason: String,
    },
    /// Reserves units for `buyer`, under `offer_id` when [`Product::quote`] priced the
    /// order by that offer.
    Reserve {
        redemption_id: RedemptionId,
        quantity: i64,
        buyer: UserId,
        offer_id: Option<OfferId>,
    },
    /// Gives the units back, and to their offer while it is still on at `now`.
    Release {
        redemption_id: RedemptionId,
        now: DateTime<Utc>,
    },
    Ship {
        redemption_id: RedemptionId,
    },
    CreateOffer {
        terms: OfferTerms,
        now: DateTime<Utc>,
    },
    CancelOffer {
        offer_id: OfferId,
        reason: Option<String>,
        now: DateTime<Utc>,
    },
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
    #[error("the offer has sold out ({units_left} units left at the offer price)")]
    OfferSoldOut { units_left: i64 },
    #[error("the offer allows {limit} units per customer and {bought} are yours already")]
    OfferLimitReached { limit: i64, bought: i64 },
    #[error("the price is now {} points, above max_points", .0.points)]
    PriceChanged(Quote),
    #[error("no such offer on this product")]
    UnknownOffer,
    #[error("the offer's window overlaps another offer on this product")]
    OfferOverlaps,
    #[error("the offer is over")]
    OfferOver,
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
                details::validate_changes(&changes)?;
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
            ProductCommand::Reserve { redemption_id, quantity, buyer, offer_id } => {
                self.reserve(product_id, redemption_id, quantity, buyer, offer_id)
            }
            ProductCommand::Release { redemption_id, now } => {
                let r = *self.reservations.get(&redemption_id).ok_or(ProductError::UnknownReservation)?;
                let offer_id =
                    r.offer.map(|(id, _)| id).filter(|id| self.offer(*id).is_some_and(|o| o.ends_at() > now));
                Ok(vec![ProductEvent::StockReleased {
                    product_id,
                    redemption_id,
                    quantity: r.quantity,
                    offer_id,
                }])
            }
            ProductCommand::Ship { redemption_id } => {
                let r = *self.reservations.get(&redemption_id).ok_or(ProductError::UnknownReservation)?;
                Ok(vec![ProductEvent::StockShipped { product_id, redemption_id, quantity: r.quantity }])
            }
            ProductCommand::CreateOffer { terms, now } => self.create_offer(product_id, terms, now),
            ProductCommand::CancelOffer { offer_id, reason, now } => {
                self.cancel_offer(product_id, offer_id, reason, now)
            }
        }
    }
}

impl Product {
    fn reserve(
        &self,
        product_id: ProductId,
        redemption_id: RedemptionId,
        quantity: i64,
        buyer: UserId,
        offer_id: Option<OfferId>,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        if !is_valid_amount(quantity) {
            return Err(ProductError::Invalid("quantity must be a positive whole number"));
        }
        if !self.active {
            return Err(ProductError::Unavailable);
        }
        if quantity > self.available() {
            return Err(ProductError::OutOfStock { requested: quantity, available: self.available() });
        }
        if let Some(id) = offer_id {
            let offer = self.offer(id).ok_or(ProductError::UnknownOffer)?;
            if let Some(refusal) = offer.refusal(buyer, quantity) {
                return Err(refusal);
            }
        }
        let user_id = offer_id.map(|_| buyer);
        Ok(vec![ProductEvent::StockReserved { product_id, redemption_id, quantity, offer_id, user_id }])
    }
}
