//! Every endpoint × {anonymous, other customer, owner, admin, auditor}.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

const OK: u16 = 200;
const UNAUTH: u16 = 401;
const FORBIDDEN: u16 = 403;

#[tokio::test]
async fn every_endpoint_admits_exactly_the_roles_the_design_names() {
    let s = stack().await;
    let owner = s.cmd.customer_with_points(100).await;
    let other = s.cmd.customer_with_points(10).await;
    let product = s.cmd.product(10, 5).await;
    let redeemed = s
        .cmd
        .post("/v1/redemptions", Some(&owner.token), json!({ "product_id": product, "quantity": 1 }))
        .await;
    let redemption = redeemed.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let package = s.cmd.package(5).await;
    let purchase = s.cmd.start_purchase(&owner, &package).await;

    // An auditor: a registered user granted the role, logging in again for a token with it.
    let email = format!("auditor-{}@test.dev", uuid::Uuid::new_v4().simple());
    let reg = s
        .cmd
        .post("/v1/auth/register", None, json!({ "email": email, "password": "password123", "name": "Aud" }))
        .await;
    let auditor_id = reg.json::<Value>().await.expect("json")["user_id"].as_str().expect("id").to_owned();
    let granted = s
        .cmd
        .post(&format!("/v1/users/{auditor_id}/roles"), Some(&s.cmd.admin), json!({ "role": "auditor" }))
        .await;
    assert_eq!(granted.status(), 200);
    let login =
        s.cmd.post("/v1/auth/login", None, json!({ "email": email, "password": "password123" })).await;
    let auditor = login.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned();
    let at = s.head().await;

    let o = owner.id.as_str();
    let callers: [(&str, Option<&str>); 5] = [
        ("anonymous", None),
        ("other customer", Some(&other.token)),
        ("owner", Some(&owner.token)),
        ("admin", Some(&s.cmd.admin)),
        ("auditor", Some(&auditor)),
    ];
    let personal = [UNAUTH, FORBIDDEN, OK, OK, OK];
    let public = [OK; 5];
    let audit = [UNAUTH, FORBIDDEN, FORBIDDEN, OK, OK];
    let admin_only = [UNAUTH, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN];
    let anyone_signed_in = [UNAUTH, OK, OK, OK, OK];
    let category = s.cmd.create("/v1/categories", json!({ "name": "Authz", "description": "" })).await;
    let experiment = s
        .cmd
        .create("/v1/experiments", json!({ "key": "authz", "variants": [{ "name": "rules", "weight": 1 }] }))
        .await;
    let owner_email = s.get("/v1/me", Some(&owner.token), &[]).await.json::<Value>().await.expect("json")
        ["email"]
        .as_str()
        .expect("email")
        .to_owned();
    let endpoint = s
        .cmd
        .create(
            "/v1/webhook-endpoints",
            json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["purchase.paid"] }),
        )
        .await;
    let matrix: Vec<(String, [u16; 5])> = vec![
        ("/v1/me/balance".into(), [UNAUTH, OK, OK, OK, OK]),
        (format!("/v1/accounts/{o}/balance"), personal),
        (format!("/v1/accounts/{o}/ledger"), personal),
        (format!("/v1/accounts/{o}/redemptions"), personal),
        (format!("/v1/credit-purchases/{purchase}"), personal),
        (format!("/v1/redemptions/{redemption}"), personal),
        ("/v1/categories".into(), public),
        ("/v1/products?q=mug".into(), public),
        (format!("/v1/products/{product}"), public),
        ("/v1/offers?state=live".into(), public),
        ("/v1/products?on_offer=true".into(), public),
        ("/v1/credit-packages".into(), public),
        (format!("/v1/categories/{category}"), public),
        ("/v1/me".into(), anyone_signed_in),
        ("/v1/me/export".into(), anyone_signed_in),
        (format!("/v1/users/{o}"), audit),
        (format!("/v1/users?email={owner_email}"), admin_only),
        (format!("/v1/accounts/{o}/purchases"), personal),
        ("/v1/redemptions?status=placed".into(), audit),
        ("/v1/products?include_inactive=true".into(), admin_only),
        (format!("/v1/experiments/{experiment}/results"), audit),
        (format!("/v1/experiments/{experiment}/assignment"), [UNAUTH, OK, OK, FORBIDDEN, OK]),
        ("/v1/audit/events".into(), audit),
        (format!("/v1/audit/streams/account-{o}"), audit),
        (format!("/v1/audit/accounts/{o}/balance"), audit),
        ("/v1/webhook-endpoints".into(), admin_only),
        (format!("/v1/webhook-endpoints/{endpoint}/deliveries"), admin_only),
    ];
    for (path, expected) in &matrix {
        for ((who, token), want) in callers.iter().zip(expected) {
            let mut headers = vec![("X-Tally-Min-Position", at.as_str())];
            if token.is_none() {
                headers.clear();
            }
            let res = s.get(path, *token, &headers).await;
            assert_eq!(res.status().as_u16(), *want, "GET {path} as {who}");
            if res.status() != StatusCode::OK {
                let ct =
                    res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                assert_eq!(ct, "application/problem+json", "GET {path} as {who}");
            }
        }
    }
    // Recommendations are for customers (the auditor here is also a customer).
    for ((who, token), want) in callers.iter().zip([UNAUTH, OK, OK, FORBIDDEN, OK]) {
        let mut req = s.http.post(format!("{}/v1/recommendations", s.query)).json(&json!({}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.expect("send").status().as_u16(), want, "recommendations as {who}");
    }
    // A forged token is unauthenticated, not forbidden.
    let forged = format!("{}x", &owner.token[..owner.token.len() - 1]);
    assert_eq!(s.get(&format!("/v1/accounts/{o}/balance"), Some(&forged), &[]).await.status(), 401);
    // Unknown ids are 404 for those allowed to look.
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/accounts/{unknown}/balance"),
        format!("/v1/redemptions/{unknown}"),
        format!("/v1/products/{unknown}"),
        "/v1/products/not-a-uuid".into(),
    ] {
        assert_eq!(s.get(&path, Some(&s.cmd.admin), &[]).await.status(), 404, "{path}");
    }
}
