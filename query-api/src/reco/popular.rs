//! The `popular` strategy: the products most redeemed in the last 7 days (cancelled
//! redemptions left out) that the customer can afford now and that are in stock.

use chrono::{DateTime, Utc};
use infra::views::PRODUCT_COLUMNS;
use tokio_postgres::GenericClient;

use super::rules::{live_offer_join, Candidate, CategoryRef, Pick};

/// Most redeemed first; `popularity` is the units redeemed in the 7 days before `now`.
pub async fn candidates(
    client: &impl GenericClient,
    spendable: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, tokio_postgres::Error> {
    let live_offer = live_offer_join("$2");
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS}, c.name AS category_name, 0::int8 AS affinity, r.redeemed AS popularity \
         FROM (SELECT product_id, sum(quantity)::int8 AS redeemed FROM read.redemptions \
               WHERE created_at > $2::timestamptz - interval '7 days' AND status <> 'cancelled' GROUP BY product_id) r \
         JOIN read.products p ON p.id = r.product_id \
         JOIN read.categories c ON c.id = p.category_id \
         {live_offer} \
         WHERE p.active AND p.available > 0 AND COALESCE(lo.point_cost, p.point_cost) <= $1 \
         ORDER BY r.redeemed DESC, p.id LIMIT 100"
    );
    let rows = client.query(&sql, &[&spendable, &now]).await?;
    Ok(rows.iter().map(|r| Candidate::from_row(r, now)).collect())
}

/// The first `limit` candidates, in their order; the category is the top one's.
pub fn pick(candidates: &[Candidate], spendable: i64, limit: usize) -> Pick {
    let Some(top) = candidates.first() else {
        return Pick {
            category: None,
            reason: format!(
                "Nothing redeemed in the last 7 days is both in stock and within your balance of {spendable} points."
            ),
            products: Vec::new(),
        };
    };
    Pick {
        category: Some(CategoryRef { id: top.doc.category_id, name: top.category_name.clone() }),
        reason: format!(
            "The most redeemed products of the last 7 days that fit your balance of {spendable} points."
        ),
        products: candidates.iter().take(limit).map(|c| c.doc.clone()).collect(),
    }
}
