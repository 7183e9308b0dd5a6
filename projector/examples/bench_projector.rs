//! Projector benchmarks against `DATABASE_URL` (a scratch database):
//!
//! `bench_projector rebuild <events>` seeds about `<events>` realistic events straight
//! into the store (accounts credited and redeeming, products reserving stock,
//! redemptions placed), then rebuilds every projection and reports events/s.
//!
//! `bench_projector lag <seconds> <rate>` runs the command API and the projector
//! daemon, sends redemptions at a fixed rate (open loop) and reports, per command,
//! the time from its acknowledgement until the `accounts` checkpoint covers it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::account::{AccountEvent, Allocation, CreditSource};
use domain::infra::store::{self, Actor, Checkpoint, Metadata, NewEvent, StreamAppend};
use domain::product::{ProductDetails, ProductEvent};
use domain::redemption::RedemptionEvent;
use domain::{CategoryId, DomainEvent, LotId, ProductId, PurchaseId, RedemptionId, UserId};
use projector::projections::Projection;
use serde_json::json;
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("DATABASE_URL")?;
    domain::infra::db::migrate(&url).await?;
    match args.first().map(String::as_str) {
        Some("rebuild") => {
            rebuild(&url, args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1_000_000)).await
        }
        Some("lag") => {
            let seconds = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
            let rate = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(300);
            lag(&url, seconds, rate).await
        }
        _ => anyhow::bail!("usage: bench_projector rebuild <events> | lag <seconds> <rate>"),
    }
}

fn new_event(e: &impl DomainEvent) -> NewEvent {
    let (event_type, data) = e.encode();
    NewEvent { event_id: Uuid::new_v4(), event_type, schema_version: 1, data }
}

const PRODUCTS: usize = 200;
/// Redemptions per account: each appends three events.
const REDEMPTIONS: usize = 16;
const ACCOUNTS_PER_TX: usize = 20;

async fn rebuild(url: &str, events: usize) -> anyhow::Result<()> {
    let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let existing: i64 = client.query_one("SELECT count(*) FROM es.events", &[]).await?.get(0);
    if (existing as usize) < events {
        seed(&mut client, events - existing as usize).await?;
    }
    let total: i64 = client.query_one("SELECT count(*) FROM es.events", &[]).await?.get(0);
    println!("events in store: {total}");
    let mut report = Vec::new();
    for p in Projection::ALL {
        let r = projector::rebuild::rebuild(url, p, false).await?;
        println!(
            "rebuild {:<9} {:>9} events in {:>6.2}s = {:>8.0} events/s",
            r.projection, r.events, r.seconds, r.events_per_second
        );
        report.push(r);
    }
    let seconds: f64 = report.iter().map(|r| r.seconds).sum();
    println!(
        "rebuild all       {:>9} events x4 in {:>6.2}s = {:>8.0} events/s per projection",
        total,
        seconds,
        4.0 * total as f64 / seconds
    );
    Ok(())
}

async fn seed(client: &mut tokio_postgres::Client, events: usize) -> anyhow::Result<()> {
    let meta = Metadata {
        correlation_id: "bench".into(),
        causation_id: "bench".into(),
        actor: Actor::system("bench"),
        command: "Seed".into(),
    };
    let category = CategoryId(Uuid::new_v4());
    let products: Vec<ProductId> = (0..PRODUCTS).map(|_| ProductId(Uuid::new_v4())).collect();
    let mut product_versions = vec![0i64; PRODUCTS];
    let tx = client.transaction().await?;
    let appends: Vec<StreamAppend> = products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let details = ProductDetails {
                name: format!("Product {i}"),
                description: "A sturdy thing for the bench".into(),
                category_id: category,
                point_cost: 1,
                image_url: None,
                in_offer_pool: i % 5 == 0,
            };
            product_versions[i] = 2;
            StreamAppend {
                stream_id: p.stream(),
                expected_version: 0,
                events: vec![
                    new_event(&ProductEvent::ProductListed { product_id: *p, details }),
                    new_event(&ProductEvent::StockReceived {
                        product_id: *p,
                        quantity: 1_000_000_000,
                        reason: "bench".into(),
                    }),
                ],
            }
        })
        .collect();
    store::append(&tx, &appends, &meta, Utc::now()).await?;
    tx.commit().await?;

    let per_account = 2 + 3 * REDEMPTIONS;
    let accounts = events.div_ceil(per_account);
    let started = Instant::now();
    for chunk in 0..accounts.div_ceil(ACCOUNTS_PER_TX) {
        let mut appends = Vec::new();
        let mut product_events: Vec<Vec<NewEvent>> = vec![Vec::new(); PRODUCTS];
        for a in 0..ACCOUNTS_PER_TX.min(accounts - chunk * ACCOUNTS_PER_TX) {
            let user = UserId(Uuid::new_v4());
            let lot = LotId(Uuid::new_v4());
            let mut account = vec![
                new_event(&AccountEvent::AccountOpened { user_id: user }),
                new_event(&AccountEvent::PointsCredited {
                    user_id: user,
                    lot_id: lot,
                    points: 1000,
                    source: CreditSource::Purchase { purchase_id: PurchaseId(Uuid::new_v4()) },
                    expires_at: None,
                }),
            ];
            for r in 0..REDEMPTIONS {
                let redemption = RedemptionId(Uuid::new_v4());
                let p = (chunk * ACCOUNTS_PER_TX + a + r) % PRODUCTS;
                let product_id = products[p];
                account.push(new_event(&AccountEvent::PointsDebited {
                    user_id: user,
                    redemption_id: redemption,
                    points: 1,
                    allocations: vec![Allocation { lot_id: lot, points: 1 }],
                }));
                product_events[p].push(new_event(&ProductEvent::StockReserved {
                    product_id,
                    redemption_id: redemption,
                    quantity: 1,
                }));
                appends.push(StreamAppend {
                    stream_id: redemption.stream(),
                    expected_version: 0,
                    events: vec![new_event(&RedemptionEvent::RedemptionPlaced {
                        redemption_id: redemption,
                        user_id: user,
                        product_id,
                        quantity: 1,
                        points: 1,
                    })],
                });
            }
            appends.push(StreamAppend { stream_id: user.stream(), expected_version: 0, events: account });
        }
        for (p, events) in product_events.into_iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            let n = events.len() as i64;
            appends.push(StreamAppend {
                stream_id: products[p].stream(),
                expected_version: product_versions[p],
                events,
            });
            product_versions[p] += n;
        }
        let tx = client.transaction().await?;
        store::append(&tx, &appends, &meta, Utc::now()).await?;
        tx.commit().await?;
        if chunk % 100 == 0 {
            eprintln!("seeded {} accounts in {:.0?}", chunk * ACCOUNTS_PER_TX, started.elapsed());
        }
    }
    Ok(())
}

async fn lag(url: &str, seconds: u64, rate: u64) -> anyhow::Result<()> {
    let settings = domain::infra::config::Settings::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.to_owned()),
        "TALLY_COMMAND_ADDR" => Some("127.0.0.1:0".into()),
        "TALLY_JWT_SECRET" => Some("bench-jwt-secret".into()),
        "TALLY_ADMIN_EMAIL" => Some("bench-admin@tally.dev".into()),
        "TALLY_ADMIN_PASSWORD" => Some("bench-admin-password".into()),
        "TALLY_DB_POOL_SIZE" => Some("32".into()),
        "TALLY_RATE_LIMIT_USER" | "TALLY_RATE_LIMIT_ADDR" => Some("0".into()),
        _ => None,
    })?;
    let app = command_api::startup::Application::build(&settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| domain::infra::config::DEV_REDIS_URL.into());
    tokio::spawn(projector::runner::run(projector::runner::Context {
        config: projector::runner::RunConfig::new(url),
        pool: domain::infra::db::pool(url, 4)?,
        redis: domain::infra::cache::connect(&redis_url).await?,
        metrics: projector::metrics::Metrics::new(),
        shutdown: shutdown.clone(),
    }));

    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut req = http.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let admin: serde_json::Value = post(
        "/v1/auth/login",
        None,
        json!({"email": "bench-admin@tally.dev", "password": "bench-admin-password"}),
    )
    .await?
    .json()
    .await?;
    let admin = admin["token"].as_str().unwrap_or_default().to_owned();
    let cat: serde_json::Value =
        post("/v1/categories", Some(&admin), json!({"name": "Lag"})).await?.json().await?;
    let mut products = Vec::new();
    for i in 0..50 {
        let body = json!({"name": format!("L{i}"), "category_id": cat["id"], "point_cost": 1, "initial_stock": 100_000_000});
        let p: serde_json::Value = post("/v1/products", Some(&admin), body).await?.json().await?;
        products.push(p["id"].clone());
    }
    let mut tokens = Vec::new();
    for i in 0..64 {
        let reg: serde_json::Value = post("/v1/auth/register", None, json!({"email": format!("lag-{i}-{}@tally.dev", Uuid::new_v4().simple()), "password": "password123", "name": "L"})).await?.json().await?;
        let path = format!("/v1/accounts/{}/adjustments", reg["user_id"].as_str().unwrap_or_default());
        post(&path, Some(&admin), json!({"delta": 100_000_000, "reason": "bench"})).await?;
        tokens.push(reg["token"].as_str().unwrap_or_default().to_owned());
    }

    // Watches the accounts checkpoint every millisecond.
    let seen: Arc<Mutex<Vec<(Instant, Checkpoint)>>> = Arc::default();
    let watcher = {
        let (seen, url, stop) = (seen.clone(), url.to_owned(), shutdown.clone());
        tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let stmt = client
                .prepare("SELECT tx_id, position FROM read.checkpoints WHERE projection = 'accounts'")
                .await
                .expect("prepare");
            while !stop.is_cancelled() {
                if let Ok(r) = client.query_one(&stmt, &[]).await {
                    let cp = Checkpoint { tx_id: r.get::<_, i64>(0) as u64, position: r.get(1) };
                    seen.lock().expect("lock").push((Instant::now(), cp));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    let acks: Arc<Mutex<Vec<(Instant, Checkpoint)>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let end = begin + Duration::from_secs(seconds);
    let mut n = 0usize;
    let mut inflight = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        n += 1;
        let req = http
            .post(format!("{base}/v1/redemptions"))
            .bearer_auth(&tokens[n % tokens.len()])
            .json(&json!({"product_id": products[n % products.len()], "quantity": 1}));
        let acks = acks.clone();
        inflight.push(tokio::spawn(async move {
            if let Ok(res) = req.send().await {
                let at = Instant::now();
                if let Some(cp) = res
                    .headers()
                    .get("x-tally-position")
                    .and_then(|v| v.to_str().ok())
                    .and_then(Checkpoint::parse_token)
                {
                    acks.lock().expect("lock").push((at, cp));
                }
            }
        }));
    }
    for t in inflight {
        let _ = t.await;
    }
    let done = begin.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    shutdown.cancel();
    let _ = watcher.await;

    let seen = seen.lock().expect("lock").clone();
    let mut lags: Vec<Duration> = acks
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(at, cp)| seen.iter().find(|(t, s)| t >= at && s >= cp).map(|(t, _)| *t - *at))
        .collect();
    lags.sort();
    let q = |p: f64| {
        lags.get(((lags.len() as f64 * p) as usize).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "throughput: {} commands acknowledged in {:.1}s = {:.0}/s",
        acks.lock().expect("lock").len(),
        done.as_secs_f64(),
        acks.lock().expect("lock").len() as f64 / done.as_secs_f64()
    );
    println!(
        "lag rate={rate}/s commands={} acked={} p50={:.1}ms p99={:.1}ms p99.9={:.1}ms max={:.1}ms",
        n,
        lags.len(),
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        q(0.999).as_secs_f64() * 1e3,
        lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    Ok(())
}
