//! Rule-based recommendations: affordable, available, active products, ranked first by
//! whether a golden-hour offer is live on them (and affordable at its price), then by
//! the user's category affinity, popularity and offer-pool status.

use chrono::{DateTime, Utc};
use infra::views::{ProductDoc, PRODUCT_COLUMNS};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A product the user could redeem now, with what ranks it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub doc: ProductDoc,
    pub category_name: String,
    pub affinity: i64,
    pub popularity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CategoryRef {
    pub id: Uuid,
    pub name: String,
}

/// What a recommendation says, whoever made it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Pick {
    pub category: Option<CategoryRef>,
    pub reason: String,
    pub products: Vec<ProductDoc>,
}

/// A join giving `lo.point_cost`: the price of `read.products p`'s offer live at the
/// instant in parameter `now` (e.g. `$3`) with units left, if any. Every strategy's
/// candidates are affordable at that price.
pub fn live_offer_join(now: &str) -> String {
    format!(
        "LEFT JOIN LATERAL (SELECT o.point_cost FROM read.offers o \
         WHERE o.product_id = p.id AND o.starts_at <= {now} AND o.ends_effective > {now} \
           AND o.point_cost < p.point_cost AND (o.units IS NULL OR o.units_sold < o.units) LIMIT 1) lo ON true"
    )
}

/// The best-ranked candidates first, as of `now`. A live offer with units left counts
/// first, at its price; then redemptions weigh most, then wishlists, clicks and views
/// (the behaviour data kept now, plus the interaction events of the first release).
pub async fn candidates(
    client: &impl GenericClient,
    user: Uuid,
    spendable: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, tokio_postgres::Error> {
    let live_offer = live_offer_join("$3");
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS}, c.name AS category_name, \
                COALESCE(a.redeemed * 5 + a.clicks * 2 + a.views, 0) \
                  + COALESCE(bc.wishlists * 3 + bc.clicks * 2 + bc.views, 0) AS affinity, \
                COALESCE(pp.redeemed * 3 + pp.clicks * 2 + pp.views, 0) \
                  + COALESCE(bp.wishlists * 2 + bp.clicks * 2 + bp.views, 0) AS popularity, \
                lo.point_cost IS NOT NULL AS on_offer \
         FROM read.products p \
         JOIN read.categories c ON c.id = p.category_id \
         LEFT JOIN read.category_affinity a ON a.user_id = $1 AND a.category_id = p.category_id \
         LEFT JOIN read.product_popularity pp ON pp.product_id = p.id \
         LEFT JOIN behaviour.category_counts bc ON bc.user_id = $1 AND bc.category_id = p.category_id \
         LEFT JOIN behaviour.product_counts bp ON bp.product_id = p.id \
         {live_offer} \
         WHERE p.active AND p.available > 0 AND COALESCE(lo.point_cost, p.point_cost) <= $2 \
         ORDER BY on_offer DESC, affinity DESC, popularity DESC, p.in_offer_pool DESC, p.point_cost DESC, p.id \
         LIMIT 100"
    );
    let rows = client.query(&sql, &[&user, &spendable, &now]).await?;
    Ok(rows.iter().map(|r| Candidate::from_row(r, now)).collect())
}

impl Candidate {
    /// A candidate from a row of [`PRODUCT_COLUMNS`] plus `category_name`, `affinity` and
    /// `popularity`, its document as of `now`.
    pub fn from_row(r: &tokio_postgres::Row, now: DateTime<Utc>) -> Self {
        Candidate {
            doc: ProductDoc::from_row(r).at(now),
            category_name: r.get("category_name"),
            affinity: r.get("affinity"),
            popularity: r.get("popularity"),
        }
    }
}

/// The top category (that of the best-ranked candidate) and up to `limit` products,
/// that category's first.
pub fn pick(candidates: &[Candidate], spendable: i64, limit: usize) -> Pick {
    let Some(top) = candidates.first() else {
        return Pick {
            category: None,
            reason: format!(
                "Nothing in the catalog is both in stock and within your balance of {spendable} points yet."
            ),
            products: Vec::new(),
        };
    };
    let category = CategoryRef { id: top.doc.category_id, name: top.category_name.clone() };
    let (mut first, rest): (Vec<&Candidate>, Vec<&Candidate>) =
        candidates.iter().partition(|c| c.doc.category_id == category.id);
    first.extend(rest);
    let products = first.into_iter().take(limit).map(|c| c.doc.clone()).collect();
    let name = &category.name;
    let reason = if let Some(offer) = &top.doc.offer {
        format!(
            "{} is on offer at {} points instead of {} until {} UTC, and fits your balance of {spendable} points.",
            top.doc.name,
            offer.point_cost,
            top.doc.point_cost,
            offer.ends_at.format("%H:%M"),
        )
    } else if top.affinity > 0 {
        format!("You redeem and browse {name} products most; these fit your balance of {spendable} points and are in stock.")
    } else if top.popularity > 0 {
        format!("{name} has the most popular products you can afford with your {spendable} points.")
    } else if top.doc.in_offer_pool {
        format!("{name} products from the current offers fit your balance of {spendable} points.")
    } else {
        format!("These {name} products are in stock and within your balance of {spendable} points.")
    };
    Pick { category: Some(category), reason, products }
}
