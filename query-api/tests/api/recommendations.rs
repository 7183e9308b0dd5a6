//! Recommendations: rules, and a local fake LLM provider behind the real reqwest path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Valid,
    Garbage,
    UnknownCategory,
    Unaffordable,
    Error500,
    TooMany,
    Slow,
}

#[derive(Clone)]
struct Fake {
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
    /// An id the model may "hallucinate": a real product the customer cannot afford.
    pricey: Arc<Mutex<String>>,
}

/// The `(product id, category id)` pairs the prompt lists.
fn listed(prompt: &str) -> Vec<(String, String)> {
    prompt
        .lines()
        .filter_map(|l| {
            let id = l.strip_prefix("- id ")?.split(' ').next()?.to_owned();
            let category = l.split("| category ").nth(1)?.split(' ').next()?.to_owned();
            Some((id, category))
        })
        .collect()
}

async fn answer(fake: &Fake, prompt: &str) -> HttpResponse {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let mode = *fake.mode.lock().expect("mode");
    let products = listed(prompt);
    let (first, category) = products.first().cloned().unwrap_or_default();
    let content = match mode {
        Mode::Valid => {
            json!({ "category_id": category, "product_ids": [first], "reason": "Picked for you" }).to_string()
        }
        Mode::Garbage => "I think you would love a teapot!".to_owned(),
        Mode::UnknownCategory => {
            json!({ "category_id": uuid::Uuid::new_v4(), "product_ids": [first], "reason": "x" }).to_string()
        }
        Mode::Unaffordable => {
            let pricey = fake.pricey.lock().expect("pricey").clone();
            json!({ "category_id": category, "product_ids": [pricey], "reason": "Treat yourself" })
                .to_string()
        }
        Mode::Error500 => return HttpResponse::InternalServerError().finish(),
        Mode::TooMany => return HttpResponse::TooManyRequests().finish(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return HttpResponse::Ok().finish();
        }
    };
    HttpResponse::Ok().json(json!({
        "choices": [{ "message": { "role": "assistant", "content": content } }],
        "candidates": [{ "content": { "parts": [{ "text": content }] } }],
    }))
}

async fn openai(fake: web::Data<Fake>, body: web::Json<Value>) -> HttpResponse {
    let prompt = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
    answer(&fake, &prompt).await
}

async fn gemini(fake: web::Data<Fake>, body: web::Json<Value>) -> HttpResponse {
    let prompt = body["contents"][0]["parts"][0]["text"].as_str().unwrap_or_default().to_owned();
    answer(&fake, &prompt).await
}

fn start_fake() -> (Fake, String) {
    let fake = Fake {
        mode: Arc::new(Mutex::new(Mode::Valid)),
        calls: Arc::new(AtomicUsize::new(0)),
        pricey: Arc::new(Mutex::new(String::new())),
    };
    let data = web::Data::new(fake.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/chat/completions", web::post().to(openai))
            .route("/v1beta/models/{model}", web::post().to(gemini))
    })
    .workers(2)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    (fake, format!("http://127.0.0.1:{port}"))
}

/// A customer with 100 points and a catalog with affordable, unaffordable, sold-out
/// and delisted products.
async fn shop(s: &Stack) -> (command_api::testkit::Customer, String) {
    let c = s.cmd.customer_with_points(100).await;
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Books", "description": "" })).await;
    let product = |name: &str, cost: i64, stock: i64| json!({ "name": name, "description": "A book", "category_id": cat, "point_cost": cost, "initial_stock": stock });
    for (name, cost, stock) in [("Novel", 30, 5), ("Atlas", 90, 1), ("Comic", 10, 2)] {
        s.cmd.create("/v1/products", product(name, cost, stock)).await;
    }
    let pricey = s.cmd.create("/v1/products", product("Encyclopedia", 500, 3)).await;
    s.cmd.create("/v1/products", product("Sold out", 20, 0)).await;
    let gone = s.cmd.create("/v1/products", product("Delisted", 20, 4)).await;
    s.cmd.post(&format!("/v1/products/{gone}/delist"), Some(&s.cmd.admin), json!({})).await;
    (c, pricey)
}

fn assert_only_redeemable(reco: &Value) {
    let products = reco["products"].as_array().expect("products");
    assert!(!products.is_empty(), "{reco}");
    for p in products {
        assert!(p["point_cost"].as_i64() <= Some(100) && p["available"].as_i64() > Some(0), "{p}");
        assert_eq!(p["active"], true, "{p}");
    }
}

#[tokio::test]
async fn rules_recommend_only_affordable_available_active_products() {
    let s = stack().await;
    let (c, _) = shop(&s).await;
    let reco = s.recommend(&c.token, 10).await;
    assert_only_redeemable(&reco);
    assert_eq!((reco["source"].as_str(), reco["variant"].as_str()), (Some("rules"), Some("rules")));
    assert_eq!(reco["category"]["name"], "Books");
    assert!(reco["reason"].as_str().is_some_and(|r| r.contains("100 points")), "{reco}");
    let names: Vec<&str> =
        reco["products"].as_array().expect("p").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names.len(), 3, "Novel, Atlas and Comic: {names:?}");
}

async fn provider_stack(kind: &str) -> (Stack, Fake) {
    let (fake, url) = start_fake();
    let base = if kind == "openai" { format!("{url}/v1") } else { url };
    let env = [
        ("RECO_PROVIDER", kind.to_owned()),
        ("RECO_BASE_URL", base),
        ("RECO_MODEL", "test-model".to_owned()),
        ("RECO_API_KEY", "test-key".to_owned()),
        ("RECO_TIMEOUT_MS", "300".to_owned()),
        ("RECO_BREAKER_FAILURES", "3".to_owned()),
        ("RECO_BREAKER_COOLDOWN_MS", "60000".to_owned()),
    ];
    (stack_with(&env).await, fake)
}

#[tokio::test]
async fn a_valid_provider_answer_is_used_and_every_failure_falls_back_to_rules() {
    for kind in ["openai", "gemini"] {
        let (s, fake) = provider_stack(kind).await;
        let (c, pricey) = shop(&s).await;
        *fake.pricey.lock().expect("pricey") = pricey;

        let reco = s.recommend(&c.token, 10).await;
        assert_eq!(
            (reco["source"].as_str(), reco["variant"].as_str()),
            (Some("ai"), Some("ai")),
            "{kind}: {reco}"
        );
        assert_eq!(reco["reason"], "Picked for you");
        assert_only_redeemable(&reco);
        let calls = fake.calls.load(Ordering::SeqCst);
        s.recommend(&c.token, 10).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), calls, "{kind}: the answer is cached per user");

        // Each failure on a fresh customer (no cached answer), with the breaker reset by
        // a success in between.
        for mode in [
            Mode::Garbage,
            Mode::UnknownCategory,
            Mode::Unaffordable,
            Mode::Error500,
            Mode::TooMany,
            Mode::Slow,
        ] {
            *fake.mode.lock().expect("mode") = mode;
            let other = s.cmd.customer_with_points(100).await;
            let started = Instant::now();
            let reco = s.recommend(&other.token, 10).await;
            assert_eq!(reco["source"], "rules", "{kind} {mode:?}: {reco}");
            assert_only_redeemable(&reco);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{kind} {mode:?} took {:?}",
                started.elapsed()
            );
            *fake.mode.lock().expect("mode") = Mode::Valid;
            let fine = s.cmd.customer_with_points(100).await;
            assert_eq!(
                s.recommend(&fine.token, 10).await["source"],
                "ai",
                "{kind}: recovered after {mode:?}"
            );
        }
    }
}

#[tokio::test]
async fn repeated_provider_failures_open_the_breaker() {
    let (s, fake) = provider_stack("openai").await;
    shop(&s).await;
    *fake.mode.lock().expect("mode") = Mode::Error500;
    for _ in 0..3 {
        let c = s.cmd.customer_with_points(100).await;
        assert_eq!(s.recommend(&c.token, 10).await["source"], "rules");
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    *fake.mode.lock().expect("mode") = Mode::Valid;
    for _ in 0..3 {
        let c = s.cmd.customer_with_points(100).await;
        assert_eq!(s.recommend(&c.token, 10).await["source"], "rules", "the breaker is open");
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3, "no call while the breaker is open");
    let ready: Value = s.get("/readyz", None, &[]).await.json().await.expect("json");
    assert_eq!(ready["provider"], "circuit_open");
    let metrics = s.get("/metrics", None, &[]).await.text().await.expect("text");
    assert!(metrics.contains("tally_recommendation_breaker_open 1"), "{metrics}");
    assert!(metrics.contains("tally_recommendation_fallbacks_total{reason=\"breaker_open\"} 3"), "{metrics}");
}
