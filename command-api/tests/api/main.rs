//! The command API over real HTTP against a real Postgres.

mod helpers;

use std::sync::Arc;

use domain::account::Account;
use domain::product::Product;
use domain::{ProductId, UserId};
use futures::future::join_all;
use helpers::{assert_problem, body, sign, spawn_app, WEBHOOK_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn product_stream(id: &str) -> String {
    ProductId::parse(id).expect("uuid").stream()
}

fn account_stream(id: &str) -> String {
    UserId::parse(id).expect("uuid").stream()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_redemptions_of_ten_in_stock_sell_exactly_ten() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(100, 10).await;
    let customers = join_all((0..50).map(|_| app.customer_with_points(100))).await;
    let results = join_all(customers.iter().map(|c| {
        let (app, product) = (app.clone(), product.clone());
        async move {
            let res = app
                .post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 }))
                .await;
            let status = res.status();
            (status, body(res).await["code"].as_str().map(str::to_owned))
        }
    }))
    .await;
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
    let results = join_all((0..30).map(|_| {
        let (app, product, c) = (app.clone(), product.clone(), c.clone());
        async move {
            let res = app
                .post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 }))
                .await;
            let status = res.status();
            (status, body(res).await["code"].as_str().map(str::to_owned))
        }
    }))
    .await;
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

/// method, path, bearer token, body, expected status, expected problem code
type Case<'a> = (&'a str, String, Option<&'a str>, String, StatusCode, &'a str);

#[tokio::test]
async fn bad_input_gets_the_documented_problem_and_appends_nothing() {
    let app = spawn_app().await;
    let c = app.customer_with_points(100).await;
    let product = app.product(10, 5).await;
    let package = app.package(10).await;
    let (admin, customer) = (app.admin.clone(), c.token.clone());
    let keys = domain::infra::token::TokenKeys::new("test-jwt-secret", chrono::Duration::seconds(1));
    let (expired, _) = keys.issue(
        uuid::Uuid::new_v4(),
        vec![domain::Role::Admin],
        chrono::Utc::now() - chrono::Duration::hours(1),
    );
    let forged = domain::infra::token::TokenKeys::new("not-the-secret", chrono::Duration::hours(1))
        .issue(uuid::Uuid::new_v4(), vec![domain::Role::Admin], chrono::Utc::now())
        .0;
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let unknown = uuid::Uuid::new_v4().to_string();
    use StatusCode as S;
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            "{not json".into(),
            S::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": product, "quantity": "two"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": product}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": product, "quantity": 0}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": product, "quantity": -3}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": product, "quantity": 99999999999999999i64}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": product, "quantity": 1e30}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": "nope", "quantity": 1}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            json!({"product_id": unknown, "quantity": 1}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&customer),
            huge.clone(),
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            None,
            json!({"product_id": product, "quantity": 1}).to_string(),
            S::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&expired),
            json!({"product_id": product, "quantity": 1}).to_string(),
            S::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&forged),
            json!({"product_id": product, "quantity": 1}).to_string(),
            S::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(&admin),
            json!({"product_id": product, "quantity": 1}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/v1/redemptions/not-a-uuid/cancel".into(),
            Some(&customer),
            "{}".into(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/redemptions/{unknown}/cancel"),
            Some(&customer),
            "{}".into(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/redemptions/{unknown}/fulfil"),
            Some(&admin),
            "{}".into(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/categories".into(),
            Some(&customer),
            json!({"name": "x"}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/v1/categories".into(),
            Some(&admin),
            json!({"name": ""}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/categories".into(),
            Some(&admin),
            json!({"name": 5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/categories".into(),
            Some(&admin),
            huge.clone(),
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/products".into(),
            Some(&admin),
            json!({"name": "x", "category_id": unknown, "point_cost": 5}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/products".into(),
            Some(&admin),
            json!({"name": "x", "category_id": unknown, "point_cost": -5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/products".into(),
            Some(&admin),
            json!({"name": "x", "point_cost": 5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "PATCH",
            format!("/v1/products/{product}"),
            Some(&admin),
            json!({"point_cost": 0}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "PATCH",
            format!("/v1/products/{product}"),
            Some(&admin),
            "{}".into(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "PATCH",
            format!("/v1/products/{unknown}"),
            Some(&admin),
            json!({"name": "y"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/products/{product}/stock"),
            Some(&admin),
            json!({"kind": "receive", "quantity": 0, "reason": "r"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/products/{product}/stock"),
            Some(&admin),
            json!({"kind": "adjust", "quantity": -6, "reason": "lost"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "out_of_stock",
        ),
        (
            "POST",
            format!("/v1/products/{product}/stock"),
            Some(&admin),
            json!({"kind": "steal", "quantity": 1, "reason": "r"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/products/{product}/relist"),
            Some(&admin),
            "{}".into(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_state",
        ),
        (
            "POST",
            "/v1/credit-packages".into(),
            Some(&admin),
            json!({"name": "p", "price": "-1", "currency": "EUR", "points": 5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/credit-packages".into(),
            Some(&admin),
            json!({"name": "p", "price": "1", "currency": "EUR", "points": 0}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/credit-packages/{unknown}/retire"),
            Some(&admin),
            "{}".into(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/credit-purchases".into(),
            Some(&customer),
            json!({"package_id": unknown}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/credit-purchases".into(),
            Some(&admin),
            json!({"package_id": package}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            format!("/v1/accounts/{unknown}/adjustments"),
            Some(&admin),
            json!({"delta": 5, "reason": "r"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/accounts/{}/adjustments", c.id),
            Some(&admin),
            json!({"delta": 0, "reason": "r"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/users/{}/roles", c.id),
            Some(&admin),
            json!({"role": "emperor"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/users/{}/roles", c.id),
            Some(&customer),
            json!({"role": "admin"}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/v1/interactions".into(),
            Some(&customer),
            json!({"product_id": product, "kind": "stare"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/interactions".into(),
            Some(&customer),
            json!({"product_id": unknown, "kind": "view"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/auth/register".into(),
            None,
            json!({"email": "nope", "password": "password123", "name": "n"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/auth/register".into(),
            None,
            json!({"email": "a@b.c", "password": "short", "name": "n"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/auth/login".into(),
            None,
            json!({"email": "admin@test.dev", "password": "wrong-password"}).to_string(),
            S::UNAUTHORIZED,
            "unauthenticated",
        ),
        ("POST", "/v1/payments/webhook".into(), None, "{}".into(), S::UNAUTHORIZED, "invalid_signature"),
        ("POST", "/v1/auth/login".into(), None, "{".into(), S::BAD_REQUEST, "malformed_request"),
        (
            "POST",
            "/v1/auth/login".into(),
            None,
            json!({"email": "a@b.c"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/auth/register".into(),
            None,
            json!({"email": "a@b.c"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("POST", "/v1/auth/register".into(), None, huge.clone(), S::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (
            "POST",
            format!("/v1/users/{unknown}/roles"),
            Some(&admin),
            json!({"role": "auditor"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/users/42/roles".into(),
            Some(&admin),
            json!({"role": "auditor"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "PATCH",
            format!("/v1/products/{product}"),
            Some(&customer),
            json!({"name": "y"}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "PATCH",
            format!("/v1/products/{product}"),
            Some(&admin),
            json!({"point_cost": "ten"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/products/{unknown}/delist"),
            Some(&admin),
            "{}".into(),
            S::NOT_FOUND,
            "not_found",
        ),
        ("POST", "/v1/products/xyz/relist".into(), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        (
            "POST",
            format!("/v1/products/{product}/delist"),
            Some(&customer),
            "{}".into(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            format!("/v1/products/{product}/stock"),
            Some(&customer),
            json!({"kind": "receive", "quantity": 1, "reason": "r"}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            format!("/v1/products/{product}/stock"),
            Some(&admin),
            json!({"kind": "receive", "quantity": 5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/products/{unknown}/stock"),
            Some(&admin),
            json!({"kind": "receive", "quantity": 5, "reason": "r"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/credit-packages".into(),
            Some(&customer),
            json!({"name": "p", "price": "1", "currency": "EUR", "points": 5}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/v1/credit-packages".into(),
            Some(&admin),
            json!({"name": "p", "price": "1", "currency": "euro", "points": 5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/credit-packages".into(),
            Some(&admin),
            json!({"name": "p", "price": 1.5, "currency": "EUR"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            format!("/v1/credit-packages/{package}/retire"),
            Some(&customer),
            "{}".into(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/v1/credit-purchases".into(),
            None,
            json!({"package_id": package}).to_string(),
            S::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "POST",
            "/v1/credit-purchases".into(),
            Some(&customer),
            json!({"package_id": 7}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("POST", "/v1/redemptions/42/fulfil".into(), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        (
            "POST",
            format!("/v1/redemptions/{unknown}/cancel"),
            Some(&customer),
            json!({"reason": 5}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/accounts/not-a-user/adjustments".into(),
            Some(&admin),
            json!({"delta": 5, "reason": "r"}).to_string(),
            S::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/accounts/{}/adjustments", c.id),
            Some(&admin),
            json!({"delta": 1e300, "reason": "r"}).to_string(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/interactions".into(),
            Some(&admin),
            json!({"product_id": product, "kind": "view"}).to_string(),
            S::FORBIDDEN,
            "forbidden",
        ),
        (
            "POST",
            "/v1/interactions".into(),
            Some(&customer),
            "[]".into(),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("GET", "/v1/nothing-here".into(), None, String::new(), S::NOT_FOUND, "not_found"),
    ];
    let before = app.event_count().await;
    for (method, path, token, payload, status, code) in cases {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let res = app.send(method.clone(), &path, token, Some(payload), &[]).await;
        let got = res.status();
        let b: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!((got, b["code"].as_str()), (status, Some(code)), "{method} {path}: {b}");
    }
    assert_eq!(app.event_count().await, before, "a rejected command appended something");
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

    // Cancelling the first redemption needs its allocations, which only the snapshot
    // (not the events read after it) still carries.
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
    let events = domain::infra::store::read_stream(client, stream, 0).await.expect("events");
    let mut state = A::default();
    for e in events.iter().take_while(|e| e.version <= version) {
        state.apply(&A::Event::decode(&e.event_type, &e.data).expect("decode"));
    }
    assert!(version >= 64, "{stream}: snapshot at {version}");
    row.get::<_, serde_json::Value>(1) == serde_json::to_value(&state).expect("json")
}
