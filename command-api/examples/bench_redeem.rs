//! Redemptions over HTTP: the real command API (release build, in process, port 0)
//! against `DATABASE_URL`, driven by `clients` concurrent closed-loop clients.
//!
//! `cargo run --release -p command-api --example bench_redeem -- <seconds> <clients> <spread|hot>`
//! `spread` redeems from 200 products; `hot` has every client redeem the same product.
//! Prints throughput, p50/p99 latency, client-visible 409s and the final stock check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::infra::config::Settings;
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("bench-admin@tally.dev", "bench-admin-password");

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let clients: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let hot = args.get(2).is_some_and(|m| m == "hot");
    let url = std::env::var("DATABASE_URL")?;
    domain::infra::db::migrate(&url).await?;
    let settings = Settings::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "TALLY_COMMAND_ADDR" => Some("127.0.0.1:0".into()),
        "TALLY_JWT_SECRET" => Some("bench-jwt-secret".into()),
        "TALLY_PAYMENT_WEBHOOK_SECRET" => Some("bench-webhook-secret".into()),
        "TALLY_ADMIN_EMAIL" => Some(ADMIN.0.into()),
        "TALLY_ADMIN_PASSWORD" => Some(ADMIN.1.into()),
        "TALLY_DB_POOL_SIZE" => Some("32".into()),
        "TALLY_RATE_LIMIT_USER" | "TALLY_RATE_LIMIT_ADDR" => Some("0".into()),
        _ => None,
    })?;
    let app = command_api::startup::Application::build(&settings).await?;
    let base = Arc::new(format!("http://127.0.0.1:{}", app.port()));
    actix_web::rt::spawn(app.run());
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients * 2).build()?;

    let admin =
        post(&http, &base, "/v1/auth/login", None, json!({"email": ADMIN.0, "password": ADMIN.1})).await?;
    let admin = admin["token"].as_str().unwrap_or_default().to_owned();
    let cat = post(&http, &base, "/v1/categories", Some(&admin), json!({"name": "Bench"})).await?;
    let stock = 10_000_000;
    let mut products = Vec::new();
    for i in 0..if hot { 1 } else { 200 } {
        let body = json!({"name": format!("P{i}"), "category_id": cat["id"], "point_cost": 1, "initial_stock": stock});
        products.push(post(&http, &base, "/v1/products", Some(&admin), body).await?["id"].clone());
    }
    let mut tokens = Vec::new();
    for i in 0..clients {
        let email = format!("bench-{i}-{}@tally.dev", uuid::Uuid::new_v4().simple());
        let reg = post(
            &http,
            &base,
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "password123", "name": "B"}),
        )
        .await?;
        let adjust = format!("/v1/accounts/{}/adjustments", reg["user_id"].as_str().unwrap_or_default());
        post(&http, &base, &adjust, Some(&admin), json!({"delta": 100_000_000, "reason": "bench"})).await?;
        tokens.push(reg["token"].as_str().unwrap_or_default().to_owned());
    }

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    actix_web::rt::spawn(conn);
    let start: i64 = client.query_one("SELECT COALESCE(max(position), 0) FROM es.events", &[]).await?.get(0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let products = Arc::new(products);
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let (http, base, products) = (http.clone(), base.clone(), products.clone());
            actix_web::rt::spawn(async move {
                let (mut lat, mut conflicts, mut errors) = (Vec::new(), 0u64, 0u64);
                let mut n = i;
                while Instant::now() < deadline {
                    n += 1;
                    let product = &products[n % products.len()];
                    let started = Instant::now();
                    let res = http
                        .post(format!("{base}/v1/redemptions"))
                        .bearer_auth(&token)
                        .json(&json!({"product_id": product, "quantity": 1}))
                        .send()
                        .await;
                    match res.map(|r| r.status().as_u16()) {
                        Ok(201) => lat.push(started.elapsed()),
                        Ok(409) => conflicts += 1,
                        _ => errors += 1,
                    }
                }
                (lat, conflicts, errors)
            })
        })
        .collect();
    let (mut lat, mut conflicts, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, c, e) = t.await?;
        lat.extend(l);
        conflicts += c;
        errors += e;
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let reserved: i64 = client
        .query_one(
            "SELECT count(*) FROM es.events WHERE event_type = 'StockReserved' AND position > $1",
            &[&start],
        )
        .await?
        .get(0);
    println!(
        "mode={} clients={clients} ok={} per_sec={:.0} p50_ms={:.1} p99_ms={:.1} conflicts={conflicts} errors={errors} reservations_in_store={reserved}",
        if hot { "hot" } else { "spread" },
        lat.len(),
        lat.len() as f64 / seconds as f64,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    anyhow::ensure!(
        reserved as usize == lat.len(),
        "stock check: {reserved} reservations for {} successes",
        lat.len()
    );
    Ok(())
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = http.post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await?;
    anyhow::ensure!(res.status().is_success(), "{path}: {}", res.status());
    Ok(res.json().await?)
}
