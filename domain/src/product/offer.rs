//! Golden-hour offers: a product at fewer points during a window, optionally with a
//! cap on the units sold at that price and a limit per customer (design §11).
//!
//! Offers live in their product's stream, so a redemption decides its price, the
//! offer's units and the customer's limit under the one product lock it already takes:
//! no extra stream, no extra round trip, and no read model in the decision.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Product, ProductError, ProductEvent};
use crate::ids::{is_valid_amount, OfferId, ProductId, UserId};

/// The longest window an offer may have.
pub const MAX_WINDOW: Duration = Duration::days(31);

/// What an admin sets when creating an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferTerms {
    pub offer_id: OfferId,
    /// The price of one unit during the window.
    pub point_cost: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// How many units sell at the offer price (`None`: as many as the stock allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<i64>,
    /// How many units one customer may buy at the offer price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_customer_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// An offer as its product tracks it: its terms and what it has sold. Offers that were
/// over when a later offer was created or cancelled are dropped from the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub terms: OfferTerms,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Units sold at the offer price and not given back.
    pub sold: i64,
    /// Units per customer, kept only for offers with a per-customer limit.
    by_customer: HashMap<UserId, i64>,
}

impl Offer {
    pub fn new(terms: OfferTerms) -> Self {
        Offer { terms, cancelled_at: None, sold: 0, by_customer: HashMap::new() }
    }

    /// One, and one per customer counted.
    pub fn weight(&self) -> usize {
        1 + self.by_customer.len()
    }

    pub fn id(&self) -> OfferId {
        self.terms.offer_id
    }

    /// When the offer ends: its `ends_at`, or when it was cancelled if that was sooner.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.cancelled_at.map_or(self.terms.ends_at, |c| c.min(self.terms.ends_at))
    }

    /// On at `now`: started, not yet ended (`starts_at ≤ now < ends_at`).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.terms.starts_at <= now && now < self.ends_at()
    }

    pub fn units_left(&self) -> Option<i64> {
        self.terms.units.map(|u| u - self.sold)
    }

    pub fn bought_by(&self, user: UserId) -> i64 {
        self.by_customer.get(&user).copied().unwrap_or(0)
    }

    /// Why `quantity` more units for `user` cannot go at the offer price, if they cannot.
    pub fn refusal(&self, user: UserId, quantity: i64) -> Option<ProductError> {
        if let Some(left) = self.units_left().filter(|left| quantity > *left) {
            return Some(ProductError::OfferSoldOut { units_left: left.max(0) });
        }
        let limit = self.terms.per_customer_limit?;
        let bought = self.bought_by(user);
        (bought + quantity > limit).then_some(ProductError::OfferLimitReached { limit, bought })
    }

    /// Records units sold (`quantity > 0`) or given back (`quantity < 0`).
    pub(super) fn count(&mut self, user: Option<UserId>, quantity: i64) {
        self.sold += quantity;
        if let (Some(user), Some(_)) = (user, self.terms.per_customer_limit) {
            let bought = self.by_customer.entry(user).or_insert(0);
            *bought += quantity;
            if *bought <= 0 {
                self.by_customer.remove(&user);
            }
        }
    }

    /// Whether this offer's window, where it is not over at `now`, meets `[starts, ends)`.
    pub fn overlaps(&self, starts: DateTime<Utc>, ends: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.ends_at() > now && starts < self.ends_at() && self.terms.starts_at < ends
    }
}

/// A customer's redemption request, as far as its price is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub user_id: UserId,
    pub quantity: i64,
    /// Refuse rather than pay the list price when the offer cannot be had (the default).
    pub offer_only: bool,
    /// The most the customer agreed to pay for the whole order.
    pub max_points: Option<i64>,
}

/// The price of an order at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// Points per unit.
    pub point_cost: i64,
    /// Points for the whole order.
    pub points: i64,
    /// The offer the order is priced by, if any.
    pub offer_id: Option<OfferId>,
}

/// A product's offers: what they are, which is live, what an order costs, and the
/// decisions to create and cancel one.
impl Product {
    pub fn offers(&self) -> &[Offer] {
        &self.offers
    }

    pub fn offer(&self, id: OfferId) -> Option<&Offer> {
        self.offers.iter().find(|o| o.id() == id)
    }

    /// The offer on at `now` that actually lowers the price (the list price may have
    /// been revised below it since it was created).
    pub fn live_offer(&self, now: DateTime<Utc>) -> Option<&Offer> {
        let list = self.point_cost()?;
        self.offers.iter().find(|o| o.is_live(now) && o.terms.point_cost < list)
    }

    /// The price of `order` at `now`: the live offer's when the order can have it,
    /// else the list price when the customer accepts it (`offer_only: false`). One
    /// price for every unit: an order is never part offer, part list.
    pub fn quote(&self, order: &Order, now: DateTime<Utc>) -> Result<Quote, ProductError> {
        let list = self.point_cost().ok_or(ProductError::NotFound)?;
        if !self.active {
            return Err(ProductError::Unavailable);
        }
        let offer = match self.live_offer(now) {
            Some(o) => match o.refusal(order.user_id, order.quantity) {
                None => Some(o),
                Some(refusal) if order.offer_only => return Err(refusal),
                Some(_) => None,
            },
            None => None,
        };
        let point_cost = offer.map_or(list, |o| o.terms.point_cost);
        let points = point_cost
            .checked_mul(order.quantity)
            .filter(|p| is_valid_amount(*p))
            .ok_or(ProductError::Invalid("quantity is too large"))?;
        let quote = Quote { point_cost, points, offer_id: offer.map(Offer::id) };
        match order.max_points {
            Some(max) if points > max => Err(ProductError::PriceChanged(quote)),
            _ => Ok(quote),
        }
    }

    pub(super) fn offer_mut(&mut self, id: OfferId) -> Option<&mut Offer> {
        self.offers.iter_mut().find(|o| o.id() == id)
    }

    /// Forgets offers that were over at `at`.
    pub(super) fn forget_offers_over_at(&mut self, at: DateTime<Utc>) {
        self.offers.retain(|o| o.ends_at() > at);
    }

    pub(super) fn create_offer(
        &self,
        product_id: ProductId,
        terms: OfferTerms,
        now: DateTime<Utc>,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        validate_terms(&terms, self.point_cost().unwrap_or(0), self.available(), now)?;
        if !self.active {
            return Err(ProductError::Unavailable);
        }
        if self.offers.iter().any(|o| o.overlaps(terms.starts_at, terms.ends_at, now)) {
            return Err(ProductError::OfferOverlaps);
        }
        Ok(vec![ProductEvent::OfferCreated { product_id, terms, created_at: now }])
    }

    pub(super) fn cancel_offer(
        &self,
        product_id: ProductId,
        offer_id: OfferId,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        match self.offer(offer_id) {
            Some(o) if o.ends_at() > now => {
                Ok(vec![ProductEvent::OfferCancelled { product_id, offer_id, reason, at: now }])
            }
            // A forgotten offer was over too.
            _ => Err(ProductError::OfferOver),
        }
    }
}

/// Checks an offer's terms against the product it is for, at `now`.
pub fn validate_terms(
    terms: &OfferTerms,
    list_cost: i64,
    available: i64,
    now: DateTime<Utc>,
) -> Result<(), ProductError> {
    let invalid = |why| Err(ProductError::Invalid(why));
    if !is_valid_amount(terms.point_cost) {
        return invalid("point_cost must be a positive whole number");
    }
    if terms.point_cost >= list_cost {
        return invalid("an offer's point_cost must be below the product's point_cost");
    }
    if terms.starts_at >= terms.ends_at {
        return invalid("starts_at must be before ends_at");
    }
    if terms.ends_at <= now {
        return invalid("ends_at must be in the future");
    }
    if terms.ends_at - terms.starts_at > MAX_WINDOW {
        return invalid("an offer's window is at most 31 days");
    }
    if terms.units.is_some_and(|u| !is_valid_amount(u)) {
        return invalid("units must be a positive whole number");
    }
    if terms.units.is_some_and(|u| u > available) {
        return invalid("units must be at most the product's available stock");
    }
    if terms.per_customer_limit.is_some_and(|l| !is_valid_amount(l)) {
        return invalid("per_customer_limit must be a positive whole number");
    }
    if terms.title.as_deref().is_some_and(|t| !crate::is_valid_name(t)) {
        return invalid("title must be 1 to 200 characters");
    }
    Ok(())
}
