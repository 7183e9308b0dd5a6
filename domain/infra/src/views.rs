//! The read-model documents the projector writes and the query API serves, and how to
//! load each from its Postgres table (the source the cache is rebuilt from and the
//! fallback when Redis is down). Their Redis keys are in [`crate::read_model`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use domain::account::Lot;

/// An account as the `accounts` projection keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// A catalog product as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

pub const PRODUCT_COLUMNS: &str =
    "id, name, description, category_id, point_cost, available, in_offer_pool, active, image_url";

impl ProductDoc {
    pub fn from_row(r: &tokio_postgres::Row) -> Self {
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
        }
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
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM read.products WHERE id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.map(|r| ProductDoc::from_row(&r)))
}
