//! Rule-based recommendations: affordable, available, active products, ranked by the
//! user's category affinity, then popularity, then offer-pool status.

use infra::views::ProductDoc;
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CategoryRef {
    pub id: Uuid,
    pub name: String,
}

/// What a recommendation says, whoever made it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Pick {
    pub category: Option<CategoryRef>,
    pub reason: String,
    pub products: Vec<ProductDoc>,
}

/// The best-ranked candidates first. Redemptions weigh most, then clicks, then views.
pub async fn candidates(
    client: &impl GenericClient,
    user: Uuid,
    spendable: i64,
) -> Result<Vec<Candidate>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT p.id, p.name, p.description, p.category_id, p.point_cost, p.available, p.in_offer_pool, \
                    p.active, p.image_url, c.name AS category_name, \
                    COALESCE(a.redeemed * 5 + a.clicks * 2 + a.views, 0) AS affinity, \
                    COALESCE(pp.redeemed * 3 + pp.clicks * 2 + pp.views, 0) AS popularity \
             FROM read.products p \
             JOIN read.categories c ON c.id = p.category_id \
             LEFT JOIN read.category_affinity a ON a.user_id = $1 AND a.category_id = p.category_id \
             LEFT JOIN read.product_popularity pp ON pp.product_id = p.id \
             WHERE p.active AND p.available > 0 AND p.point_cost <= $2 \
             ORDER BY affinity DESC, popularity DESC, p.in_offer_pool DESC, p.point_cost DESC, p.id \
             LIMIT 100",
            &[&user, &spendable],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Candidate {
            doc: ProductDoc::from_row(r),
            category_name: r.get("category_name"),
            affinity: r.get("affinity"),
            popularity: r.get("popularity"),
        })
        .collect())
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
    let reason = if top.affinity > 0 {
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
