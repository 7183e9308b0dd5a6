//! What a hostile client tried against the command API, each answered with the right
//! problem and nothing appended: NUL characters, arrays for objects, oversized raw
//! bodies, trickled bodies, squatted idempotency keys, password guessing, made-up
//! methods, and the smaller items of the hardening review.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// A client whose connections come from `addr` (any 127.x.y.z is this machine).
fn client_from(addr: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from(addr)).build().expect("client")
}

#[tokio::test]
async fn nul_characters_and_arrays_for_objects_are_422_and_append_nothing() {
    let app = spawn_app().await;
    let c = app.customer_with_points(100).await;
    let product = app.product(10, 5).await;
    let placed =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    let redemption = body(placed).await["id"].as_str().expect("id").to_owned();
    let before = app.event_count().await;
    let cancel = format!("/v1/redemptions/{redemption}/cancel");
    let cases: Vec<(&str, Option<&str>, Value)> = vec![
        ("/v1/auth/login", None, json!({ "email": "a\u{0}@b.c", "password": "password123" })),
        (
            "/v1/auth/register",
            None,
            json!({ "email": "nul@test.dev", "password": "password123", "name": "N\u{0}" }),
        ),
        ("/v1/categories", Some(&app.admin), json!({ "name": "Cat\u{0}", "description": "" })),
        (&cancel, Some(&c.token), json!({ "reason": "why\u{0}" })),
        ("/v1/redemptions", Some(&c.token), json!([product, 1])),
        ("/v1/categories", Some(&app.admin), json!(["Kitchen", ""])),
        ("/v1/auth/login", None, json!("admin@test.dev")),
    ];
    for (path, token, payload) in cases {
        let res = app.post(path, token, payload.clone()).await;
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    // The signed webhook: NUL in payment_ref.
    let raw = json!({ "purchase_id": uuid::Uuid::new_v4(), "status": "succeeded", "payment_ref": "p\u{0}" })
        .to_string();
    let sig = sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &raw);
    let res =
        app.send(Method::POST, "/v1/payments/webhook", None, Some(raw), &[("Tally-Signature", &sig)]).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // In a path it names nothing.
    let res =
        app.send(Method::POST, "/v1/redemptions/%00/cancel", Some(&c.token), Some("{}".into()), &[]).await;
    assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn oversized_raw_bodies_and_unparsable_paths_are_problem_json() {
    let app = spawn_app().await;
    let product = app.product(10, 5).await;
    let package = app.package(10).await;
    let huge = "x".repeat(70 * 1024);
    for path in [
        format!("/v1/products/{product}/delist"),
        format!("/v1/products/{product}/relist"),
        format!("/v1/credit-packages/{package}/retire"),
        format!("/v1/redemptions/{}/fulfil", uuid::Uuid::new_v4()),
        "/v1/payments/webhook".to_owned(),
    ] {
        let res = app.send(Method::POST, &path, Some(&app.admin), Some(huge.clone()), &[]).await;
        assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    }
    let res =
        app.send(Method::POST, "/v1/products/%FF%FE/delist", Some(&app.admin), Some("{}".into()), &[]).await;
    assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let metrics = app.send(Method::GET, "/metrics", None, None, &[]).await.text().await.expect("metrics");
    let counted = metrics.lines().any(|l| {
        l.starts_with("tally_http_outcomes_total") && l.contains("/delist") && l.contains("payload_too_large")
    });
    assert!(counted, "a 413 is counted under its code:\n{metrics}");
}

#[tokio::test]
async fn a_body_trickled_slower_than_the_deadline_gets_408_and_the_connection_is_freed() {
    let app = spawn_app_with(&[("TALLY_BODY_TIMEOUT_MS", "500")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let head = "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        s.write_all(head.as_bytes()).expect("write");
        let started = Instant::now();
        let mut answer = String::new();
        let mut buf = [0u8; 4096];
        // Trickle a byte every 200 ms until the server answers or 5 s pass.
        while started.elapsed() < Duration::from_secs(5) && !answer.contains("\r\n\r\n{") {
            std::thread::sleep(Duration::from_millis(200));
            let _ = s.write_all(b" ");
            s.set_nonblocking(true).expect("nonblocking");
            if let Ok(n) = s.read(&mut buf) {
                answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            s.set_nonblocking(false).expect("blocking");
        }
        (answer, started.elapsed())
    })
    .await
    .expect("client thread");
    let (answer, took) = answer;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("request_timeout"), "{answer}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
}

#[tokio::test]
async fn an_anonymous_idempotency_key_is_scoped_to_the_client_and_never_replays_a_token() {
    let app = spawn_app().await;
    let url = format!("{}/v1/auth/register", app.base);
    let register = |client: reqwest::Client, email: &str| {
        let (url, payload) =
            (url.clone(), json!({ "email": email, "password": "password123", "name": "Ann" }));
        async move {
            let res =
                client.post(url).header("Idempotency-Key", "k-1").json(&payload).send().await.expect("send");
            let replayed = res.headers().contains_key("idempotent-replayed");
            (res.status(), replayed, res.json::<Value>().await.expect("json"))
        }
    };
    let (ann, squatter) = (client_from([127, 0, 0, 21]), client_from([127, 0, 0, 22]));
    // A squatter's different body under the same key does not block Ann.
    let (status, _, _) = register(squatter, "squatter@test.dev").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, replayed, first) = register(ann.clone(), "ann@test.dev").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    // Ann's retry replays her registration, with a token of its own.
    let (status, replayed, again) = register(ann, "ann@test.dev").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again["user_id"], first["user_id"]);
    assert!(again["token"].as_str().is_some_and(|t| !t.is_empty()));
    // Someone else sending Ann's exact body and key gets no replay of her response.
    let (status, replayed, theirs) = register(client_from([127, 0, 0, 23]), "ann@test.dev").await;
    assert_eq!((status, replayed, theirs["code"].as_str()), (StatusCode::CONFLICT, false, Some("conflict")));
}

#[tokio::test]
async fn guessing_one_password_is_slowed_down_then_429_while_the_right_one_still_works_later() {
    let app = spawn_app().await;
    let c = app.register("victim").await;
    let email = login_email(&app, &c).await;
    let guesser = client_from([127, 0, 0, 31]);
    let login = |password: &str| {
        let req = guesser
            .post(format!("{}/v1/auth/login", app.base))
            .json(&json!({ "email": email, "password": password }));
        async move { req.send().await.expect("send") }
    };
    for _ in 0..6 {
        assert_eq!(login("wrong-password").await.status(), StatusCode::UNAUTHORIZED);
    }
    let res = login("wrong-password").await;
    let retry: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Even the right password waits out the delay; then it works and clears the count.
    assert_eq!(login("password123").await.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(login("password123").await.status(), StatusCode::OK);
    assert_eq!(login("wrong-password").await.status(), StatusCode::UNAUTHORIZED);
}

/// The email the testkit registered `c` with.
async fn login_email(app: &TestApp, c: &Customer) -> String {
    let client = app.db.client().await.expect("client");
    let row = client
        .query_one("SELECT email FROM users WHERE id = $1", &[&uuid::Uuid::parse_str(&c.id).expect("uuid")])
        .await
        .expect("user");
    row.get(0)
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let app = spawn_app().await;
    for i in 0..20 {
        let method = Method::from_bytes(format!("PROBE{i}").as_bytes()).expect("method");
        app.send(method, "/v1/redemptions", None, None, &[]).await;
    }
    let metrics = app.send(Method::GET, "/metrics", None, None, &[]).await.text().await.expect("metrics");
    assert!(!metrics.contains("PROBE"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

#[tokio::test]
async fn the_smaller_items_emails_prices_lengths_and_headers() {
    let app = spawn_app().await;
    let long = "x".repeat(2_001);
    let cases: Vec<(&str, Value)> = vec![
        ("/v1/auth/register", json!({ "email": "x@@probe.test", "password": "password123", "name": "X" })),
        ("/v1/auth/register", json!({ "email": "a b@probe.test", "password": "password123", "name": "X" })),
        ("/v1/categories", json!({ "name": "Kitchen", "description": long })),
        (
            "/v1/credit-packages",
            json!({ "name": "P", "description": long, "price": "9.99", "currency": "EUR", "points": 5 }),
        ),
        ("/v1/credit-packages", json!({ "name": "P", "price": "1e3", "currency": "EUR", "points": 5 })),
        ("/v1/credit-packages", json!({ "name": "P", "price": "9.999", "currency": "EUR", "points": 5 })),
        ("/v1/credit-packages", json!({ "name": "P", "price": "100.5", "currency": "JPY", "points": 5 })),
        ("/v1/credit-packages", json!({ "name": "P", "price": " 9.99", "currency": "EUR", "points": 5 })),
    ];
    for (path, payload) in cases {
        let res = app.post(path, Some(&app.admin), payload.clone()).await;
        assert_eq!(res.headers().get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let res = app
        .post(
            "/v1/credit-packages",
            Some(&app.admin),
            json!({ "name": "P", "price": "1.250", "currency": "KWD", "points": 5 }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers().get("cache-control").map(|v| v.as_bytes()), Some(&b"no-store"[..]));
    // A failed payment's reason is free text too.
    let raw = json!({ "purchase_id": uuid::Uuid::new_v4(), "status": "failed", "payment_ref": "p", "reason": "r".repeat(501) })
        .to_string();
    let sig = sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &raw);
    let res =
        app.send(Method::POST, "/v1/payments/webhook", None, Some(raw), &[("Tally-Signature", &sig)]).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let health = app.send(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(health.headers().get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
}
