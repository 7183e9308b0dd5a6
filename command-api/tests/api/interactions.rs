//! Interactions are behaviour data: recorded beside the ledger, never in it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{body, spawn_app};

#[tokio::test]
async fn a_batch_of_500_is_recorded_beside_the_ledger_once_per_idempotency_key() {
    let app = spawn_app().await;
    let c = app.customer_with_points(10).await;
    let (mug, cup) = (app.product(10, 5).await, app.product(20, 5).await);
    let items: Vec<_> = (0..500)
        .map(|i| {
            let (product, kind) =
                (if i % 5 == 0 { &cup } else { &mug }, ["view", "click", "wishlist"][i % 3]);
            json!({ "product_id": product, "kind": kind })
        })
        .collect();
    let raw = json!({ "items": items }).to_string();
    let before = app.event_count().await;
    for _ in 0..2 {
        let res = app
            .send(
                Method::POST,
                "/v1/interactions/batch",
                Some(&c.token),
                Some(raw.clone()),
                &[("Idempotency-Key", "b-1")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(body(res).await["accepted"], 500);
    }
    let one = json!({ "product_id": mug, "kind": "click" });
    assert_eq!(app.post("/v1/interactions", Some(&c.token), one).await.status(), StatusCode::ACCEPTED);
    assert_eq!(app.event_count().await, before, "interactions are not ledger events");

    let db = app.db.client().await.expect("db");
    let rows: i64 =
        db.query_one("SELECT count(*) FROM behaviour.interactions", &[]).await.expect("count").get(0);
    assert_eq!(rows, 501, "the replayed batch was not recorded again");
    let mug_id = uuid::Uuid::parse_str(&mug).expect("uuid");
    let counts = db
        .query_one(
            "SELECT views, clicks, wishlists FROM behaviour.product_counts WHERE product_id = $1",
            &[&mug_id],
        )
        .await
        .expect("counts");
    let want = |kind: usize| (0..500).filter(|i| i % 5 != 0 && i % 3 == kind).count() as i64;
    let got: (i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2));
    assert_eq!(got, (want(0), want(1) + 1, want(2)));
}

/// 500 items that each name a recommendation, pretty-printed, are over the shared 64 KiB
/// body limit: the batch route takes them; a bigger body is still 413.
#[tokio::test]
async fn a_full_batch_naming_recommendations_fits_and_a_bigger_body_does_not() {
    let app = spawn_app().await;
    let c = app.customer_with_points(10).await;
    let product = app.product(10, 5).await;
    let user = uuid::Uuid::parse_str(&c.id).expect("uuid");
    let shown = uuid::Uuid::new_v4();
    let db = app.db.client().await.expect("db");
    db.execute(
        "INSERT INTO behaviour.exposures (id, user_id, experiment_key, variant, products, at) \
         VALUES ($1, $2, 'default', 'rules', '{}', now())",
        &[&shown, &user],
    )
    .await
    .expect("an exposure");
    let items: Vec<_> = (0..500)
        .map(|_| json!({ "product_id": product, "kind": "click", "recommendation_id": shown }))
        .collect();
    let raw = serde_json::to_string_pretty(&json!({ "items": items })).expect("json");
    assert!(raw.len() > 64 * 1024, "the body is over the shared limit: {}", raw.len());
    let res = app.send(Method::POST, "/v1/interactions/batch", Some(&c.token), Some(raw), &[]).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let huge = format!("{{\"items\": [], \"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let res = app.send(Method::POST, "/v1/interactions/batch", Some(&c.token), Some(huge), &[]).await;
    assert_eq!(
        (res.status(), body(res).await["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("payload_too_large"))
    );
}
