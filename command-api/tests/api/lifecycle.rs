//! Redemption, purchase and adjustment lifecycles, metadata and snapshots.

use domain::account::Account;
use domain::product::Product;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{account_stream, assert_problem, body, product_stream, sign, spawn_app, WEBHOOK_SECRET};

#[tokio::test]
async fn cancelling_refunds_points_to_their_lots_and_releases_stock_and_fulfilling_ships() {
    let app = spawn_app().await;
    let product = app.product(30, 5).await;
    let c = app.customer_with_points(100).await;
    let placed =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 2 })).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    assert!(placed.headers().contains_key("x-tally-position"));
    let placed = body(placed).await;
    assert_eq!((placed["points"].as_i64(), placed["balance_after"].as_i64()), (Some(60), Some(40)));
    assert!(placed["position"].is_string());
    let id = placed["id"].as_str().expect("id");

    let stranger = app.register("stranger").await;
    let res = app.post(&format!("/v1/redemptions/{id}/cancel"), Some(&stranger.token), json!({})).await;
    assert_problem(res, StatusCode::FORBIDDEN, "forbidden").await;

    let res = app
        .post(&format!("/v1/redemptions/{id}/cancel"), Some(&c.token), json!({ "reason": "changed my mind" }))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 100);
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!((p.available(), p.reserved), (5, 0));
    let res = app.post(&format!("/v1/redemptions/{id}/cancel"), Some(&c.token), json!({})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_state").await;

    let second = body(
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await,
    )
    .await;
    let id2 = second["id"].as_str().expect("id");
    let res = app.post(&format!("/v1/redemptions/{id2}/fulfil"), Some(&c.token), json!({})).await;
    assert_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.post(&format!("/v1/redemptions/{id2}/fulfil"), Some(&app.admin), json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!((p.on_hand, p.reserved, p.available()), (4, 0, 4));
}

#[tokio::test]
async fn delisted_products_and_retired_packages_cannot_be_had() {
    let app = spawn_app().await;
    let product = app.product(10, 5).await;
    let c = app.customer_with_points(100).await;
    assert_eq!(
        app.post(&format!("/v1/products/{product}/delist"), Some(&app.admin), json!({})).await.status(),
        StatusCode::OK
    );
    let res =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "product_unavailable").await;
    assert_eq!(
        app.post(&format!("/v1/products/{product}/relist"), Some(&app.admin), json!({})).await.status(),
        StatusCode::OK
    );
    let res =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let package = app.package(10).await;
    let res = app.post(&format!("/v1/credit-packages/{package}/retire"), Some(&app.admin), json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.post("/v1/credit-purchases", Some(&c.token), json!({ "package_id": package })).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "product_unavailable").await;
}

#[tokio::test]
async fn a_failed_payment_credits_nothing_and_bad_signatures_are_refused() {
    let app = spawn_app().await;
    let c = app.register("buyer").await;
    let package = app.package(50).await;
    let purchase = app.start_purchase(&c, &package).await;
    let payload =
        json!({ "purchase_id": purchase, "status": "failed", "payment_ref": "p", "reason": "card declined" });
    let raw = payload.to_string();
    let now = chrono::Utc::now().timestamp();
    let before = app.event_count().await;
    for sig in [
        None,
        Some("garbage".to_owned()),
        Some(sign("wrong-secret", now, &raw)),
        Some(sign(WEBHOOK_SECRET, now - 600, &raw)),
        Some(sign(WEBHOOK_SECRET, now, "{}")),
    ] {
        let headers: Vec<(&str, &str)> = sig.iter().map(|s| ("Tally-Signature", s.as_str())).collect();
        let res = app.send(Method::POST, "/v1/payments/webhook", None, Some(raw.clone()), &headers).await;
        assert_problem(res, StatusCode::UNAUTHORIZED, "invalid_signature").await;
    }
    assert_eq!(app.event_count().await, before);
    // Correctly signed, but not JSON / not the right shape.
    for (raw, status, code) in [
        ("{oops", StatusCode::BAD_REQUEST, "malformed_request"),
        (r#"{"purchase_id": "x"}"#, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            r#"{"purchase_id": "x", "status": "maybe", "payment_ref": "p"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let sig = sign(WEBHOOK_SECRET, now, raw);
        let headers = [("Tally-Signature", sig.as_str())];
        let res = app.send(Method::POST, "/v1/payments/webhook", None, Some(raw.into()), &headers).await;
        assert_problem(res, status, code).await;
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.webhook(&payload).await.status(), StatusCode::OK);
    assert_eq!(app.count_type(&format!("purchase-{purchase}"), "PurchaseFailed").await, 1);
    assert_eq!(app.count_type(&account_stream(&c.id), "PointsCredited").await, 0);
    let unknown = json!({ "purchase_id": uuid::Uuid::new_v4(), "status": "succeeded", "payment_ref": "p" });
    assert_problem(app.webhook(&unknown).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn adjustments_need_a_reason_and_cannot_overdraw() {
    let app = spawn_app().await;
    let c = app.customer_with_points(40).await;
    let path = format!("/v1/accounts/{}/adjustments", c.id);
    let res = app.post(&path, Some(&app.admin), json!({ "delta": -50, "reason": "fraud" })).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points").await;
    let res = app.post(&path, Some(&app.admin), json!({ "delta": 10, "reason": " " })).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app
        .post(&path, Some(&app.admin), json!({ "delta": -15, "reason": "correction", "reference": "T-1" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(body(res).await["balance_after"].as_i64(), Some(25));
    let res = app.post(&path, Some(&c.token), json!({ "delta": 1000, "reason": "please" })).await;
    assert_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn event_metadata_carries_the_request_id_and_actor_and_no_personal_data() {
    let app = spawn_app().await;
    let res = app
        .send(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(
                json!({ "email": "meta@test.dev", "password": "password123", "name": "Meta Person" })
                    .to_string(),
            ),
            &[("X-Request-Id", "req-abc-123")],
        )
        .await;
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-abc-123"));
    let user = body(res).await["user_id"].as_str().expect("id").to_owned();
    let client = app.db.client().await.expect("client");
    let row = client
        .query_one(
            "SELECT metadata, data::text FROM es.events WHERE stream_id = $1",
            &[&account_stream(&user)],
        )
        .await
        .expect("event");
    let metadata: serde_json::Value = row.get(0);
    assert_eq!(metadata["correlation_id"], "req-abc-123");
    assert_eq!(metadata["command"], "Register");
    assert_eq!(metadata["actor"]["user_id"], user.as_str());
    let all: String = client
        .query_one("SELECT string_agg(data::text || metadata::text, '') FROM es.events", &[])
        .await
        .expect("all")
        .get(0);
    assert!(
        !all.contains("meta@test.dev") && !all.contains("Meta Person"),
        "personal data leaked into events"
    );
}

#[tokio::test]
async fn long_streams_load_from_snapshots_that_agree_with_the_events() {
    let app = spawn_app().await;
    let product = app.product(1, 1000).await;
    let c = app.customer_with_points(1000).await;
    let mut ids = Vec::new();
    for _ in 0..150 {
        let res = app
            .post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 }))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        ids.push(body(res).await["id"].as_str().expect("id").to_owned());
    }
    let client = app.db.client().await.expect("client");
    let snapshots: i64 = client
        .query_one(
            "SELECT count(*) FROM es.snapshots WHERE stream_id = ANY($1)",
            &[&vec![account_stream(&c.id), product_stream(&product)]],
        )
        .await
        .expect("snapshots")
        .get(0);
    assert_eq!(snapshots, 2, "both streams passed the snapshot threshold");

    // Cancelling the first redemption needs its allocations, recorded by a debit the
    // snapshot covers: they are looked up in the store, not kept in the state.
    let res = app.post(&format!("/v1/redemptions/{}/cancel", ids[0]), Some(&c.token), json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(body(res).await["balance_after"].as_i64(), Some(1000 - 150));

    let account: Account = app.fold(&account_stream(&c.id)).await;
    let product_state: Product = app.fold(&product_stream(&product)).await;
    assert_eq!(account.balance(), 850);
    assert_eq!((product_state.reserved, product_state.available()), (150, 850));
    assert!(snapshot_matches_prefix::<Account>(&client, &account_stream(&c.id)).await);
    assert!(snapshot_matches_prefix::<Product>(&client, &product_stream(&product)).await);
}

/// The stored snapshot equals the fold of exactly the events it says it covers.
async fn snapshot_matches_prefix<A>(client: &tokio_postgres::Client, stream: &str) -> bool
where
    A: domain::Aggregate + serde::Serialize,
{
    use domain::DomainEvent;
    let row = client
        .query_one("SELECT version, state FROM es.snapshots WHERE stream_id = $1", &[&stream])
        .await
        .expect("snapshot");
    let version: i64 = row.get(0);
    let events = infra::store::read_stream(client, stream, 0).await.expect("events");
    let mut state = A::default();
    for e in events.iter().take_while(|e| e.version <= version) {
        state.apply(&A::Event::decode(&e.event_type, &e.data).expect("decode"));
    }
    assert!(version >= 64, "{stream}: snapshot at {version}");
    row.get::<_, serde_json::Value>(1) == serde_json::to_value(&state).expect("json")
}
