//! Behaviour data (schema `behaviour`, migration V7): recommendation exposures,
//! experiment assignments and product interactions. They are not money and not
//! events: high volume, kept `TALLY_INTERACTION_RETENTION_DAYS` and then deleted, so
//! they live beside the ledger, not in it (the README's "Experiments" says why).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::store::StoreError;

/// One interaction to record.
#[derive(Debug, Clone)]
pub struct Interaction {
    pub user_id: Uuid,
    pub product_id: Uuid,
    /// `view`, `click` or `wishlist`.
    pub kind: &'static str,
    pub recommendation_id: Option<Uuid>,
}

/// Records `items` (one statement) and raises the ranking counts with them. Each keeps
/// the category its product has in the catalog read model now (none if the read model
/// has not seen the product yet).
pub async fn record_interactions(
    client: &impl GenericClient,
    items: &[Interaction],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let users: Vec<Uuid> = items.iter().map(|i| i.user_id).collect();
    let products: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let kinds: Vec<&str> = items.iter().map(|i| i.kind).collect();
    let recommendations: Vec<Option<Uuid>> = items.iter().map(|i| i.recommendation_id).collect();
    client
        .execute(
            "WITH new AS ( \
               INSERT INTO behaviour.interactions (user_id, product_id, category_id, kind, recommendation_id, at) \
               SELECT i.user_id, i.product_id, p.category_id, i.kind, i.recommendation_id, $5 \
               FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[]) AS i(user_id, product_id, kind, recommendation_id) \
               LEFT JOIN read.products p ON p.id = i.product_id \
               RETURNING user_id, product_id, category_id, kind), \
             products AS ( \
               INSERT INTO behaviour.product_counts AS t (product_id, clicks, views, wishlists) \
               SELECT product_id, count(*) FILTER (WHERE kind = 'click'), count(*) FILTER (WHERE kind = 'view'), \
                      count(*) FILTER (WHERE kind = 'wishlist') FROM new GROUP BY product_id \
               ON CONFLICT (product_id) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks, \
                  views = t.views + EXCLUDED.views, wishlists = t.wishlists + EXCLUDED.wishlists) \
             INSERT INTO behaviour.category_counts AS t (user_id, category_id, clicks, views, wishlists) \
             SELECT user_id, category_id, count(*) FILTER (WHERE kind = 'click'), \
                    count(*) FILTER (WHERE kind = 'view'), count(*) FILTER (WHERE kind = 'wishlist') \
             FROM new WHERE category_id IS NOT NULL GROUP BY user_id, category_id \
             ON CONFLICT (user_id, category_id) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks, \
                views = t.views + EXCLUDED.views, wishlists = t.wishlists + EXCLUDED.wishlists",
            &[&users, &products, &kinds, &recommendations, &at],
        )
        .await?;
    Ok(())
}

/// Of `ids`, those that name no recommendation shown to `user`.
pub async fn unknown_recommendations(
    client: &impl GenericClient,
    user: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            "SELECT id FROM unnest($1::uuid[]) AS r(id) \
             WHERE NOT EXISTS (SELECT 1 FROM behaviour.exposures e WHERE e.id = r.id AND e.user_id = $2)",
            &[&ids, &user],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One recommendation answer as shown.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub id: Uuid,
    pub user_id: Uuid,
    pub experiment_key: String,
    pub experiment_id: Option<Uuid>,
    pub variant: String,
    pub products: Vec<Uuid>,
    pub at: DateTime<Utc>,
}

/// Records an exposure and, for an experiment, the user's assignment if it is new.
pub async fn record_exposure(client: &impl GenericClient, e: &Exposure) -> Result<(), StoreError> {
    client
        .execute(
            "WITH assigned AS ( \
               INSERT INTO behaviour.assignments (experiment_id, user_id, variant, at) \
               SELECT $5, $2, $6, $7 WHERE $5::uuid IS NOT NULL ON CONFLICT DO NOTHING) \
             INSERT INTO behaviour.exposures (id, user_id, experiment_key, products, experiment_id, variant, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&e.id, &e.user_id, &e.experiment_key, &e.products, &e.experiment_id, &e.variant, &e.at],
        )
        .await?;
    Ok(())
}

/// Records that `user` was assigned `variant` of `experiment`, the first time only.
pub async fn record_assignment(
    client: &impl GenericClient,
    experiment: Uuid,
    user: Uuid,
    variant: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO behaviour.assignments (experiment_id, user_id, variant, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &[&experiment, &user, &variant, &at],
        )
        .await?;
    Ok(())
}

/// Deletes up to `batch` interactions older than `before`, lowering the ranking counts
/// by what it deletes in the same statement. Returns how many it deleted.
pub async fn sweep_interactions(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "WITH gone AS ( \
               DELETE FROM behaviour.interactions WHERE id IN ( \
                 SELECT id FROM behaviour.interactions WHERE at < $1 ORDER BY at LIMIT $2) \
               RETURNING user_id, product_id, category_id, kind), \
             products AS ( \
               UPDATE behaviour.product_counts t SET clicks = t.clicks - g.clicks, views = t.views - g.views, \
                 wishlists = t.wishlists - g.wishlists \
               FROM (SELECT product_id, count(*) FILTER (WHERE kind = 'click') AS clicks, \
                       count(*) FILTER (WHERE kind = 'view') AS views, \
                       count(*) FILTER (WHERE kind = 'wishlist') AS wishlists \
                     FROM gone GROUP BY product_id) g WHERE t.product_id = g.product_id), \
             categories AS ( \
               UPDATE behaviour.category_counts t SET clicks = t.clicks - g.clicks, views = t.views - g.views, \
                 wishlists = t.wishlists - g.wishlists \
               FROM (SELECT user_id, category_id, count(*) FILTER (WHERE kind = 'click') AS clicks, \
                       count(*) FILTER (WHERE kind = 'view') AS views, \
                       count(*) FILTER (WHERE kind = 'wishlist') AS wishlists \
                     FROM gone WHERE category_id IS NOT NULL GROUP BY user_id, category_id) g \
               WHERE t.user_id = g.user_id AND t.category_id = g.category_id) \
             SELECT count(*) FROM gone",
            &[&before, &batch],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}
