//! Concurrency: the races that must never oversell, overspend or double-credit.

use std::sync::Arc;

use domain::account::Account;
use domain::product::Product;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{account_stream, assert_problem, body, product_stream, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_redemptions_of_ten_in_stock_sell_exactly_ten() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(100, 10).await;
    let customers = join_all((0..50).map(|_| app.customer_with_points(100))).await;
    // All requests are in flight at once: join_all polls them together.
    let results = join_all(customers.iter().map(|c| app.redeem_one(&c.token, &product))).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let sold_out = results.iter().filter(|(_, c)| c.as_deref() == Some("out_of_stock")).count();
    assert_eq!((ok, sold_out), (10, 40), "{results:?}");
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!((p.available(), p.reserved, p.on_hand), (0, 10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_redemptions_with_points_for_five_debit_exactly_five() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(20, 100).await;
    let c = Arc::new(app.customer_with_points(100).await);
    let results = join_all((0..30).map(|_| app.redeem_one(&c.token, &product))).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let refused = results.iter().filter(|(_, c)| c.as_deref() == Some("insufficient_points")).count();
    assert_eq!((ok, refused), (5, 25), "{results:?}");
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 0);
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!(p.available(), 95);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_deliveries_of_one_webhook_credit_once() {
    let app = Arc::new(spawn_app().await);
    let c = app.register("buyer").await;
    let package = app.package(250).await;
    let purchase = app.start_purchase(&c, &package).await;
    let payload = json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "pay-42" });
    let statuses = join_all((0..20).map(|_| {
        let (app, payload) = (app.clone(), payload.clone());
        async move { app.webhook(&payload).await.status() }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(app.count_type(&account_stream(&c.id), "PointsCredited").await, 1);
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_idempotency_key_ten_times_at_once_has_one_effect() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(10, 100).await;
    let c = Arc::new(app.customer_with_points(100).await);
    let raw = json!({ "product_id": product, "quantity": 2 }).to_string();
    let responses = join_all((0..10).map(|_| {
        let (app, c, raw) = (app.clone(), c.clone(), raw.clone());
        async move {
            let res = app
                .send(
                    Method::POST,
                    "/v1/redemptions",
                    Some(&c.token),
                    Some(raw),
                    &[("Idempotency-Key", "k-1")],
                )
                .await;
            let replayed = res.headers().contains_key("idempotent-replayed");
            let position = res.headers().get("x-tally-position").map(|v| v.to_str().unwrap_or("").to_owned());
            (res.status(), replayed, position, body(res).await)
        }
    }))
    .await;
    assert!(responses.iter().all(|r| r.0 == StatusCode::CREATED), "{responses:?}");
    assert_eq!(responses.iter().filter(|r| !r.1).count(), 1, "one fresh response, nine replays");
    assert!(responses.iter().all(|r| r.3 == responses[0].3 && r.2 == responses[0].2));
    assert_eq!(app.count_type(&account_stream(&c.id), "PointsDebited").await, 1);
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 80);

    // The same key with another body is refused and appends nothing.
    let before = app.event_count().await;
    let other = json!({ "product_id": product, "quantity": 3 }).to_string();
    let res = app
        .send(Method::POST, "/v1/redemptions", Some(&c.token), Some(other), &[("Idempotency-Key", "k-1")])
        .await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_and_a_fulfil_of_one_redemption_settle_it_once() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(30, 10).await;
    let c = app.customer_with_points(100).await;
    let placed =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let id = body(placed).await["id"].as_str().expect("id").to_owned();
    // Nine cancels (owner) and one fulfil (admin), all in flight at once.
    let requests = (0..10).map(|i| {
        let (app, id) = (app.clone(), id.clone());
        let (path, token) = if i == 5 {
            (format!("/v1/redemptions/{id}/fulfil"), app.admin.clone())
        } else {
            (format!("/v1/redemptions/{id}/cancel"), c.token.clone())
        };
        async move { app.post(&path, Some(&token), json!({})).await.status() }
    });
    let statuses = join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "exactly one settles: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::UNPROCESSABLE_ENTITY),
        "{statuses:?}"
    );
    let refunds = app.count_type(&account_stream(&c.id), "PointsRefunded").await;
    let account: Account = app.fold(&account_stream(&c.id)).await;
    let p: Product = app.fold(&product_stream(&product)).await;
    if refunds == 1 {
        assert_eq!((account.balance(), p.on_hand, p.reserved), (100, 10, 0), "cancelled once");
    } else {
        assert_eq!((refunds, account.balance(), p.on_hand, p.reserved), (0, 70, 9, 0), "fulfilled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_starts_of_experiments_with_one_key_run_exactly_one() {
    let app = Arc::new(spawn_app().await);
    let body = json!({ "key": "recommendations", "variants": [{ "name": "rules", "weight": 1 }] });
    let statuses = join_all((0..10).map(|_| {
        let (app, body) = (app.clone(), body.clone());
        async move {
            let res = app.post("/v1/experiments", Some(&app.admin), body).await;
            (res.status(), crate::helpers::body(res).await["code"].clone())
        }
    }))
    .await;
    let started = statuses.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|(_, code)| *code == "validation_failed").count();
    assert_eq!((started, refused), (1, 9), "{statuses:?}");
    let db = app.db.client().await.expect("db");
    let running: i64 = db
        .query_one("SELECT count(*) FROM es.events WHERE event_type = 'ExperimentStarted'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(running, 1);
}

/// Group commit (design §15): forty customers on one product at once, half of them
/// short of points. The redemptions share transactions, yet each is decided on its
/// own: exactly the twenty who can pay get theirs, each with its own request's
/// metadata, the stock is exact, and every stream's hash chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_with_mixed_outcomes_fails_only_the_customers_short_of_points() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(10, 1000).await;
    let rich = join_all((0..20).map(|_| app.customer_with_points(100))).await;
    let poor = join_all((0..20).map(|_| app.customer_with_points(5))).await;
    let interleaved: Vec<_> = rich.iter().zip(&poor).flat_map(|(r, p)| [(r, true), (p, false)]).collect();
    let results = join_all(interleaved.iter().map(|(c, _)| app.redeem_one(&c.token, &product))).await;
    for ((c, can_pay), (status, code)) in interleaved.iter().zip(&results) {
        let want = if *can_pay {
            (StatusCode::CREATED, None)
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_points"))
        };
        assert_eq!((*status, code.as_deref()), want, "customer {}", c.id);
    }
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!((p.available(), p.reserved), (980, 20));

    let client = app.db.client().await.expect("client");
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT tx_id), count(DISTINCT metadata->>'correlation_id') \
             FROM es.events WHERE event_type = 'RedemptionPlaced'",
            &[],
        )
        .await
        .expect("placed");
    let (placed, transactions, requests): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((placed, requests), (20, 20), "one redemption per paying request, each with its metadata");
    assert!(transactions < placed, "{placed} redemptions in {transactions} transactions: no group commit");
    assert!(infra::store::verify(&client).await.expect("verify").is_empty(), "every chain verifies");
}
