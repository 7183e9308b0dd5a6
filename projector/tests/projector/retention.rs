//! Behaviour data past its retention is deleted without touching the ledger: the hash
//! chain still verifies, the ranking counts equal the interactions kept, and a rebuild
//! still equals the incremental read models.

use chrono::{Duration, Utc};
use command_api::testkit::spawn_app;
use infra::store;
use projector::projections::Projection;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn interactions_past_retention_are_deleted_and_the_ledger_and_read_models_do_not_notice() {
    let app = spawn_app().await;
    let w = app.random_workload(11, 80).await;
    let c = &w.customers[0];
    let items: Vec<_> = (0..300)
        .map(|i| {
            let kind = ["view", "click", "wishlist"][i % 3];
            json!({ "product_id": w.products[i % w.products.len()], "kind": kind })
        })
        .collect();
    let res = app.post("/v1/interactions/batch", Some(&c.token), json!({ "items": items })).await;
    assert_eq!(res.status(), 202);
    catch_up(&app.db.url).await;
    let client = connect(&app.db.url).await;
    let incremental = dump(&client).await;

    // Half of them were recorded 200 days ago.
    let aged = client
        .execute("UPDATE behaviour.interactions SET at = now() - interval '200 days' WHERE id % 2 = 0", &[])
        .await
        .expect("age");
    assert!(aged >= 150);
    let pool = infra::db::pool(&app.db.url, 2).expect("pool");
    let deleted = projector::retention::sweep(&pool, Utc::now() - Duration::days(180)).await.expect("sweep");
    assert_eq!(deleted, aged);
    assert_eq!(projector::retention::sweep(&pool, Utc::now() - Duration::days(180)).await.expect("again"), 0);

    // The counts are exactly those of what is kept.
    let drift: i64 = client
        .query_one(
            "SELECT count(*) FROM behaviour.product_counts c FULL JOIN ( \
               SELECT product_id, count(*) FILTER (WHERE kind = 'click') AS clicks, \
                      count(*) FILTER (WHERE kind = 'view') AS views, \
                      count(*) FILTER (WHERE kind = 'wishlist') AS wishlists \
               FROM behaviour.interactions GROUP BY product_id) k ON k.product_id = c.product_id \
             WHERE (c.clicks, c.views, c.wishlists) IS DISTINCT FROM \
                   (COALESCE(k.clicks, 0), COALESCE(k.views, 0), COALESCE(k.wishlists, 0))",
            &[],
        )
        .await
        .expect("drift")
        .get(0);
    assert_eq!(drift, 0, "product counts differ from the interactions kept");

    assert!(store::verify(&client).await.expect("verify").is_empty(), "the chain still verifies");
    for p in Projection::ALL {
        projector::rebuild::rebuild(&app.db.url, p, false).await.expect("rebuild");
    }
    assert_eq!(dump(&client).await, incremental, "a rebuild equals the incremental read models");
}
