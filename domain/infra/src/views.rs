//! The read-model documents the projector writes and the query API serves, and how to
//! load each from its Postgres table (the source the cache is rebuilt from and the
//! fallback when Redis is down). Their Redis keys are in [`crate::read_model`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use domain::account::Lot;

/// An account as the `accounts` projection keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BalanceDoc {
    pub user_id: Uuid,
    /// The fold of the events. Lots past their expiry still count here until their
    /// `PointsExpired` event is recorded; [`BalanceDoc::spendable`] leaves them out.
    pub balance: i64,
    pub lifetime_earned: i64,
    pub lifetime_spent: i64,
    pub lots: Vec<Lot>,
}

impl BalanceDoc {
    pub fn empty(user_id: Uuid) -> Self {
        BalanceDoc { user_id, balance: 0, lifetime_earned: 0, lifetime_spent: 0, lots: Vec::new() }
    }

    /// The points a customer can spend at `now`.
    pub fn spendable(&self, now: DateTime<Utc>) -> i64 {
        self.lots.iter().filter(|l| l.expires_at.is_none_or(|t| t > now)).map(|l| l.remaining).sum()
    }

    /// Points that will expire, soonest first: at most `max` lots still spendable at
    /// `now` with an expiry and points left.
    pub fn expiring(&self, now: DateTime<Utc>, max: usize) -> Vec<Expiring> {
        let mut lots: Vec<Expiring> = self
            .lots
            .iter()
            .filter_map(|l| Some(Expiring { points: l.remaining, expires_at: l.expires_at? }))
            .filter(|e| e.expires_at > now && e.points > 0)
            .collect();
        lots.sort_by_key(|e| e.expires_at);
        lots.truncate(max);
        lots
    }
}

/// Points of one lot and when they expire.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Expiring {
    pub points: i64,
    pub expires_at: DateTime<Utc>,
}

/// A catalog product as clients see it.
///
/// Cached and stored docs carry the product's `schedule` (offers not over when it was
/// written); [`ProductDoc::at`] turns that into the one `offer` live at the moment of
/// the read, so a cached document never shows an offer past its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProductDoc {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub category_id: Uuid,
    pub point_cost: i64,
    pub available: i64,
    pub in_offer_pool: bool,
    pub active: bool,
    pub image_url: Option<String>,
    /// The offer live at the read; always `null` in a cached document.
    #[serde(default)]
    pub offer: Option<OfferDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<OfferDoc>,
}

/// A golden-hour offer inside a product document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OfferDoc {
    pub id: Uuid,
    pub point_cost: i64,
    pub starts_at: DateTime<Utc>,
    /// When it stops selling (sooner than planned if it was cancelled).
    pub ends_at: DateTime<Utc>,
    /// `null`: no cap besides the product's stock.
    pub units_left: Option<i64>,
    pub per_customer_limit: Option<i64>,
    pub title: Option<String>,
}

impl OfferDoc {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// The columns of a [`ProductDoc`] from `read.products p`, with its schedule.
pub const PRODUCT_COLUMNS: &str = "p.id, p.name, p.description, p.category_id, p.point_cost, p.available,      p.in_offer_pool, p.active, p.image_url,      (SELECT COALESCE(jsonb_agg(jsonb_build_object('id', o.id, 'point_cost', o.point_cost,          'starts_at', o.starts_at, 'ends_at', o.ends_effective,          'units_left', o.units - o.units_sold, 'per_customer_limit', o.per_customer_limit,          'title', o.title) ORDER BY o.starts_at), '[]')       FROM read.offers o WHERE o.product_id = p.id AND o.ends_effective > now()) AS schedule";

impl ProductDoc {
    pub fn from_row(r: &tokio_postgres::Row) -> Self {
        let schedule: serde_json::Value = r.get("schedule");
        ProductDoc {
            id: r.get("id"),
            name: r.get("name"),
            description: r.get("description"),
            category_id: r.get("category_id"),
            point_cost: r.get("point_cost"),
            available: r.get("available"),
            in_offer_pool: r.get("in_offer_pool"),
            active: r.get("active"),
            image_url: r.get("image_url"),
            offer: None,
            schedule: serde_json::from_value(schedule).unwrap_or_default(),
        }
    }

    /// The document as of `now`: `offer` is the offer live then (if any, and only if
    /// it lowers the price), and the schedule is left out.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        let live = self
            .schedule
            .drain(..)
            .chain(self.offer.take())
            .find(|o| o.is_live(now) && o.point_cost < self.point_cost);
        self.offer = live;
        self
    }
}

/// One account's balance document from `read.balances`; `$1` is the user id. Prepare it
/// once per connection (`prepare_cached`): it is the hot fallback read.
pub const BALANCE_SQL: &str =
    "SELECT user_id, balance, lifetime_earned, lifetime_spent, lots FROM read.balances WHERE user_id = $1";

pub fn balance_from_row(r: &tokio_postgres::Row) -> BalanceDoc {
    let lots: serde_json::Value = r.get("lots");
    BalanceDoc {
        user_id: r.get("user_id"),
        balance: r.get("balance"),
        lifetime_earned: r.get("lifetime_earned"),
        lifetime_spent: r.get("lifetime_spent"),
        lots: serde_json::from_value(lots).unwrap_or_default(),
    }
}

/// Loads one product document from `read.products`.
pub async fn load_product(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ProductDoc>, tokio_postgres::Error> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM read.products p WHERE p.id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.map(|r| ProductDoc::from_row(&r)))
}
