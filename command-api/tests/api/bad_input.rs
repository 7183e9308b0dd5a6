//! Every command endpoint refuses bad input with the documented problem and appends nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// method, path, bearer token, body, expected status, expected problem code
type Case<'a> = (&'a str, String, Option<&'a str>, String, StatusCode, &'a str);

#[tokio::test]
async fn bad_input_gets_the_documented_problem_and_appends_nothing() {
    let app = spawn_app().await;
    let c = app.customer_with_points(100).await;
    let product = app.product(10, 5).await;
    let package = app.package(10).await;
    let (admin, customer) = (app.admin.clone(), c.token.clone());
    let keys = infra::token::TokenKeys::new("test-jwt-secret", chrono::Duration::seconds(1));
    let (expired, _) = keys.issue(
        uuid::Uuid::new_v4(),
        vec![domain::Role::Admin],
        chrono::Utc::now() - chrono::Duration::hours(1),
    );
    let forged = infra::token::TokenKeys::new("not-the-secret", chrono::Duration::hours(1))
        .issue(uuid::Uuid::new_v4(), vec![domain::Role::Admin], chrono::Utc::now())
        .0;
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let unknown = uuid::Uuid::new_v4().to_string();
    // A live offer (for overlaps) and a cancelled one (for a second cancel) on `product`.
    let offer = app.offer(&product, 5, Some(3), Some(1)).await;
    let other = app.product(10, 5).await;
    let over = app.offer(&other, 5, None, None).await;
    app.post(&format!("/v1/offers/{over}/cancel"), Some(&app.admin), json!({})).await;
    let category = app.create("/v1/categories", json!({"name": "Kept"})).await;
    let admin_id = infra::token::TokenKeys::new("test-jwt-secret", chrono::Duration::hours(1))
        .verify(&admin)
        .expect("the admin's token")
        .sub;
    let running = app
        .create("/v1/experiments", json!({"key": "taken", "variants": [{"name": "rules", "weight": 1}]}))
        .await;
    let stopped = app
        .create("/v1/experiments", json!({"key": "done", "variants": [{"name": "rules", "weight": 1}]}))
        .await;
    app.post(&format!("/v1/experiments/{stopped}/stop"), Some(&app.admin), json!({})).await;
    let item = json!({"product_id": product, "kind": "view"});
    let batch = |n: usize| json!({"items": vec![item.clone(); n]}).to_string();
    let variants = |v: Value| json!({"key": "recommendations", "variants": v}).to_string();
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
    let offer_on = |p: &str, cost: i64, from: i64, to: i64| json!({"product_id": p, "point_cost": cost, "starts_at": at(from), "ends_at": at(to)});
    let hook = |url: &str| json!({"url": url, "event_types": ["points.credited"]}).to_string();
    let endpoint = app
        .create(
            "/v1/webhook-endpoints",
            json!({"url": "https://93.184.216.34/hook", "event_types": ["purchase.paid"]}),
        )
        .await;
    use StatusCode as S;
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("POST", "/v1/redemptions".into(), Some(&customer), "{not json".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": "two"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": -3}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 99999999999999999i64}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1e30}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": "nope", "quantity": 1}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": unknown, "quantity": 1}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/redemptions".into(), Some(&customer), huge.clone(), S::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("POST", "/v1/redemptions".into(), None, json!({"product_id": product, "quantity": 1}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/redemptions".into(), Some(&expired), json!({"product_id": product, "quantity": 1}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/redemptions".into(), Some(&forged), json!({"product_id": product, "quantity": 1}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/redemptions".into(), Some(&admin), json!({"product_id": product, "quantity": 1}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/redemptions/not-a-uuid/cancel".into(), Some(&customer), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/redemptions/{unknown}/cancel"), Some(&customer), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/redemptions/{unknown}/fulfil"), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/categories".into(), Some(&customer), json!({"name": "x"}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/categories".into(), Some(&admin), json!({"name": ""}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/categories".into(), Some(&admin), json!({"name": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/categories".into(), Some(&admin), huge.clone(), S::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("POST", "/v1/products".into(), Some(&admin), json!({"name": "x", "category_id": unknown, "point_cost": 5}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/products".into(), Some(&admin), json!({"name": "x", "category_id": unknown, "point_cost": -5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/products".into(), Some(&admin), json!({"name": "x", "point_cost": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/products/{product}"), Some(&admin), json!({"point_cost": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/products/{product}"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/products/{unknown}"), Some(&admin), json!({"name": "y"}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/products/{product}/stock"), Some(&admin), json!({"kind": "receive", "quantity": 0, "reason": "r"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/products/{product}/stock"), Some(&admin), json!({"kind": "adjust", "quantity": -6, "reason": "lost"}).to_string(), S::UNPROCESSABLE_ENTITY, "out_of_stock"),
        ("POST", format!("/v1/products/{product}/stock"), Some(&admin), json!({"kind": "steal", "quantity": 1, "reason": "r"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/products/{product}/relist"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "invalid_state"),
        ("POST", "/v1/credit-packages".into(), Some(&admin), json!({"name": "p", "price": "-1", "currency": "EUR", "points": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/credit-packages".into(), Some(&admin), json!({"name": "p", "price": "1", "currency": "EUR", "points": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/credit-packages/{unknown}/retire"), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/credit-purchases".into(), Some(&customer), json!({"package_id": unknown}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/credit-purchases".into(), Some(&admin), json!({"package_id": package}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", format!("/v1/accounts/{unknown}/adjustments"), Some(&admin), json!({"delta": 5, "reason": "r"}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/accounts/{}/adjustments", c.id), Some(&admin), json!({"delta": 0, "reason": "r"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/users/{}/roles", c.id), Some(&admin), json!({"role": "emperor"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/users/{}/roles", c.id), Some(&customer), json!({"role": "admin"}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/interactions".into(), Some(&customer), json!({"product_id": product, "kind": "stare"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/interactions".into(), Some(&customer), json!({"product_id": unknown, "kind": "view"}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/auth/register".into(), None, json!({"email": "nope", "password": "password123", "name": "n"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/auth/register".into(), None, json!({"email": "a@b.c", "password": "short", "name": "n"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/auth/login".into(), None, json!({"email": "admin@test.dev", "password": "wrong-password"}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/payments/webhook".into(), None, "{}".into(), S::UNAUTHORIZED, "invalid_signature"),
        ("POST", "/v1/auth/login".into(), None, "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", "/v1/auth/login".into(), None, json!({"email": "a@b.c"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/auth/register".into(), None, json!({"email": "a@b.c"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/auth/register".into(), None, huge.clone(), S::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("POST", format!("/v1/users/{unknown}/roles"), Some(&admin), json!({"role": "auditor"}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/users/42/roles".into(), Some(&admin), json!({"role": "auditor"}).to_string(), S::NOT_FOUND, "not_found"),
        ("PATCH", format!("/v1/products/{product}"), Some(&customer), json!({"name": "y"}).to_string(), S::FORBIDDEN, "forbidden"),
        ("PATCH", format!("/v1/products/{product}"), Some(&admin), json!({"point_cost": "ten"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/products/{unknown}/delist"), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/products/xyz/relist".into(), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/products/{product}/delist"), Some(&customer), "{}".into(), S::FORBIDDEN, "forbidden"),
        ("POST", format!("/v1/products/{product}/stock"), Some(&customer), json!({"kind": "receive", "quantity": 1, "reason": "r"}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", format!("/v1/products/{product}/stock"), Some(&admin), json!({"kind": "receive", "quantity": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/products/{unknown}/stock"), Some(&admin), json!({"kind": "receive", "quantity": 5, "reason": "r"}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/credit-packages".into(), Some(&customer), json!({"name": "p", "price": "1", "currency": "EUR", "points": 5}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/credit-packages".into(), Some(&admin), json!({"name": "p", "price": "1", "currency": "euro", "points": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/credit-packages".into(), Some(&admin), json!({"name": "p", "price": 1.5, "currency": "EUR"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/credit-packages/{package}/retire"), Some(&customer), "{}".into(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/credit-purchases".into(), None, json!({"package_id": package}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/credit-purchases".into(), Some(&customer), json!({"package_id": 7}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions/42/fulfil".into(), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/redemptions/{unknown}/cancel"), Some(&customer), json!({"reason": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/accounts/not-a-user/adjustments".into(), Some(&admin), json!({"delta": 5, "reason": "r"}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/accounts/{}/adjustments", c.id), Some(&admin), json!({"delta": 1e300, "reason": "r"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/interactions".into(), Some(&admin), json!({"product_id": product, "kind": "view"}).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/interactions".into(), Some(&customer), "[]".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1, "max_points": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1, "max_points": "x"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1, "offer_only": "no"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1, "max_points": 4}).to_string(), S::UNPROCESSABLE_ENTITY, "price_changed"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 2}).to_string(), S::UNPROCESSABLE_ENTITY, "offer_limit_reached"),
        ("POST", "/v1/offers".into(), Some(&admin), "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", "/v1/offers".into(), Some(&admin), huge.clone(), S::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("POST", "/v1/offers".into(), None, offer_on(&other, 5, 0, 60).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/offers".into(), Some(&customer), offer_on(&other, 5, 0, 60).to_string(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/offers".into(), Some(&admin), json!({"product_id": other, "point_cost": 5}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), json!({"product_id": other, "point_cost": 5, "starts_at": "soon", "ends_at": at(60)}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&other, 0, 0, 60).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&other, -5, 0, 60).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&other, 10, 0, 60).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&other, 5, 60, 30).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&other, 5, -60, -1).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&other, 5, 0, 32 * 24 * 60).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&product, 5, 30, 90).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), json!({"product_id": other, "point_cost": 5, "starts_at": at(0), "ends_at": at(60), "units": 6}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), json!({"product_id": other, "point_cost": 5, "starts_at": at(0), "ends_at": at(60), "units": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), json!({"product_id": other, "point_cost": 5, "starts_at": at(0), "ends_at": at(60), "per_customer_limit": -1}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/offers".into(), Some(&admin), offer_on(&unknown, 5, 0, 60).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/offers/{unknown}/cancel"), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/offers/not-an-id/cancel".into(), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/offers/{offer}/cancel"), Some(&customer), "{}".into(), S::FORBIDDEN, "forbidden"),
        ("POST", format!("/v1/offers/{offer}/cancel"), Some(&admin), json!({"reason": 7}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/offers/{over}/cancel"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "invalid_state"),
        ("POST", "/v1/experiments".into(), Some(&customer), variants(json!([{"name": "rules", "weight": 1}])), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/experiments".into(), Some(&admin), variants(json!([{"name": "rules", "weight": 1}, {"name": "magic", "weight": 1}])), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), variants(json!([{"name": "rules", "weight": 0}, {"name": "popular", "weight": 0}])), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), variants(json!([{"name": "rules", "weight": -1}, {"name": "popular", "weight": 2}])), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), variants(json!([{"name": "rules", "weight": "heavy"}])), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), variants(json!([])), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), json!({"key": "taken", "variants": [{"name": "popular", "weight": 1}]}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), json!({"key": "BAD KEY", "variants": [{"name": "rules", "weight": 1}]}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), json!({"key": "x", "variants": [{"name": "rules", "weight": 1}], "attribution_hours": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/experiments".into(), Some(&admin), "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", format!("/v1/experiments/{unknown}/stop"), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/experiments/{stopped}/stop"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "invalid_state"),
        ("POST", format!("/v1/experiments/{running}/stop"), Some(&customer), "{}".into(), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/interactions".into(), Some(&customer), json!({"product_id": product, "kind": "click", "recommendation_id": unknown}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/interactions/batch".into(), Some(&customer), batch(501), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/interactions/batch".into(), Some(&customer), batch(0), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/interactions/batch".into(), Some(&customer), json!({"items": [item, {"product_id": unknown, "kind": "view"}]}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/interactions/batch".into(), Some(&customer), json!({"items": [{"product_id": product, "kind": "poke"}]}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/interactions/batch".into(), Some(&admin), batch(1), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/interactions/batch".into(), None, batch(1), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1, "recommendation_id": unknown}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", "/v1/redemptions".into(), Some(&customer), json!({"product_id": product, "quantity": 1, "recommendation_id": "x"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/categories/{unknown}"), Some(&admin), json!({"name": "x"}).to_string(), S::NOT_FOUND, "not_found"),
        ("PATCH", format!("/v1/categories/{category}"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/categories/{category}"), Some(&admin), json!({"name": ""}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/categories/{category}"), Some(&admin), json!({"name": 7}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/categories/{category}"), Some(&admin), "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("PATCH", format!("/v1/categories/{category}"), Some(&customer), json!({"name": "x"}).to_string(), S::FORBIDDEN, "forbidden"),
        ("PATCH", format!("/v1/credit-packages/{package}"), Some(&admin), json!({"price": "1.999"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/credit-packages/{package}"), Some(&admin), json!({"points": 0}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/credit-packages/{package}"), Some(&admin), json!({"currency": "euro"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/credit-packages/{package}"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", format!("/v1/credit-packages/{unknown}"), Some(&admin), json!({"points": 5}).to_string(), S::NOT_FOUND, "not_found"),
        ("PATCH", format!("/v1/credit-packages/{package}"), Some(&customer), json!({"points": 5}).to_string(), S::FORBIDDEN, "forbidden"),
        ("DELETE", format!("/v1/users/{}/roles/emperor", c.id), Some(&admin), String::new(), S::NOT_FOUND, "not_found"),
        ("DELETE", format!("/v1/users/{unknown}/roles/auditor"), Some(&admin), String::new(), S::NOT_FOUND, "not_found"),
        ("DELETE", format!("/v1/users/{}/roles/customer", c.id), Some(&customer), String::new(), S::FORBIDDEN, "forbidden"),
        ("DELETE", format!("/v1/users/{}/roles/customer", c.id), None, String::new(), S::UNAUTHORIZED, "unauthenticated"),
        ("DELETE", format!("/v1/users/{admin_id}/roles/admin"), Some(&admin), String::new(), S::UNPROCESSABLE_ENTITY, "invalid_state"),
        ("DELETE", format!("/v1/users/{unknown}"), Some(&admin), String::new(), S::NOT_FOUND, "not_found"),
        ("DELETE", format!("/v1/users/{}", c.id), Some(&customer), String::new(), S::FORBIDDEN, "forbidden"),
        ("DELETE", "/v1/me".into(), None, String::new(), S::UNAUTHORIZED, "unauthenticated"),
        ("PATCH", "/v1/me".into(), Some(&customer), "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", "/v1/me".into(), Some(&customer), json!({"email": "nope"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", "/v1/me".into(), Some(&customer), json!({"name": "n".repeat(201)}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PATCH", "/v1/me".into(), Some(&customer), json!({"email": "admin@test.dev"}).to_string(), S::CONFLICT, "conflict"),
        ("PATCH", "/v1/me".into(), None, json!({"name": "x"}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/me/password".into(), Some(&customer), json!({"current_password": "wrong-one!", "new_password": "a-new-password"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/me/password".into(), Some(&customer), json!({"current_password": "password123", "new_password": "short"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/me/password".into(), Some(&customer), json!({"new_password": "a-new-password"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/me/password".into(), None, json!({"current_password": "password123", "new_password": "a-new-password"}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/auth/refresh".into(), None, "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/auth/refresh".into(), None, json!({"refresh_token": "x".repeat(64)}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/auth/refresh".into(), None, "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", "/v1/auth/logout".into(), None, json!({"refresh_token": "x"}).to_string(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/auth/logout".into(), Some(&customer), "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), huge.clone(), S::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("POST", "/v1/webhook-endpoints".into(), None, hook("https://93.184.216.34/"), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&customer), hook("https://93.184.216.34/"), S::FORBIDDEN, "forbidden"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), json!({"event_types": ["points.credited"]}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), json!({"url": "https://93.184.216.34/", "event_types": []}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), json!({"url": "https://93.184.216.34/", "event_types": ["points.stolen"]}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), json!({"url": "https://93.184.216.34/", "event_types": "points.credited"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), json!({"url": "https://93.184.216.34/", "event_types": ["points.credited"], "description": "d".repeat(501)}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), json!({"url": "https://93.184.216.34/", "event_types": ["points.credited"], "secret": "mine"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("ftp://93.184.216.34/"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("not a url"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("http://127.0.0.1:9/hook"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("http://localhost:8080/hook"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("http://169.254.169.254/latest/meta-data"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("http://10.0.0.8/hook"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", "/v1/webhook-endpoints".into(), Some(&admin), hook("http://[::1]/hook"), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("DELETE", format!("/v1/webhook-endpoints/{unknown}"), Some(&admin), String::new(), S::NOT_FOUND, "not_found"),
        ("DELETE", "/v1/webhook-endpoints/not-an-id".into(), Some(&admin), String::new(), S::NOT_FOUND, "not_found"),
        ("DELETE", format!("/v1/webhook-endpoints/{endpoint}"), Some(&customer), String::new(), S::FORBIDDEN, "forbidden"),
        ("DELETE", format!("/v1/webhook-endpoints/{endpoint}"), None, String::new(), S::UNAUTHORIZED, "unauthenticated"),
        ("POST", format!("/v1/webhook-endpoints/{unknown}/rotate-secret"), Some(&admin), "{}".into(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"), Some(&customer), "{}".into(), S::FORBIDDEN, "forbidden"),
        ("POST", format!("/v1/webhook-endpoints/{endpoint}/replay"), Some(&admin), json!({"from_position": -1}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/webhook-endpoints/{endpoint}/replay"), Some(&admin), "{}".into(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/webhook-endpoints/{endpoint}/replay"), Some(&admin), json!({"from_position": "start"}).to_string(), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("POST", format!("/v1/webhook-endpoints/{endpoint}/replay"), Some(&admin), "{".into(), S::BAD_REQUEST, "malformed_request"),
        ("POST", format!("/v1/webhook-endpoints/{unknown}/replay"), Some(&admin), json!({"from_position": 0}).to_string(), S::NOT_FOUND, "not_found"),
        ("POST", format!("/v1/webhook-endpoints/{endpoint}/replay"), Some(&customer), json!({"from_position": 0}).to_string(), S::FORBIDDEN, "forbidden"),
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
    let client = app.db.client().await.expect("db");
    let kept: i64 =
        client.query_one("SELECT count(*) FROM behaviour.interactions", &[]).await.expect("count").get(0);
    assert_eq!(kept, 0, "a rejected interaction was recorded");
    let hooks: (i64, i64) = {
        let r = client
            .query_one("SELECT (SELECT count(*) FROM webhooks.endpoints), (SELECT count(*) FROM webhooks.deliveries)", &[])
            .await
            .expect("count");
        (r.get(0), r.get(1))
    };
    assert_eq!(hooks, (1, 0), "a rejected webhook command changed the endpoints or queued deliveries");
}
