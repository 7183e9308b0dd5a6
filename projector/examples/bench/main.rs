//! `scripts/bench`: every target of the README's benchmark table in one run, each beside its baseline,
//! printed as one Markdown table and written as JSON (`BENCH_OUT`).
//!
//! Runs the release binaries of the three services against `DATABASE_URL` (a scratch
//! database), with `BENCH_PGBENCH_URL` and `BENCH_REBUILD_URL` as scratch siblings on
//! the same server. `BENCH_SECONDS` (10) per measurement, `BENCH_REBUILD_EVENTS`
//! (500,000), `BENCH_LONG_STREAM` (100,000).

mod baselines;
mod golden;
mod grown;
mod instances;
mod loadgen;
mod logins;
mod report;
mod scale;
mod scenarios;
mod services;
mod setup;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use projector::projections::Projection;

use report::{Report, Row};
use scenarios::{connect, Bench, CLIENTS};
use services::Service;
use setup::Api;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn log(what: &str) {
    eprintln!("[bench] {what}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let db_url = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let redis_url = std::env::var("REDIS_URL").context("REDIS_URL")?;
    let pgbench_url = std::env::var("BENCH_PGBENCH_URL").context("BENCH_PGBENCH_URL")?;
    let rebuild_url = std::env::var("BENCH_REBUILD_URL").context("BENCH_REBUILD_URL")?;
    let duration = Duration::from_secs(var("BENCH_SECONDS", "10").parse()?);
    let events: usize = var("BENCH_REBUILD_EVENTS", "500000").parse()?;
    let long: i64 = var("BENCH_LONG_STREAM", "100000").parse()?;
    for url in [&db_url, &pgbench_url, &rebuild_url] {
        infra::db::migrate(url).await?;
    }

    let env = [
        ("DATABASE_URL", db_url.clone()),
        ("REDIS_URL", redis_url.clone()),
        ("TALLY_DB_POOL_SIZE", "32".into()),
        // The webhook row's receiver is on loopback.
        ("TALLY_WEBHOOK_ALLOW_PRIVATE", "true".into()),
    ];
    let command = Service::start("command-api", &[], &env).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let api = Api::login(http, &command.base).await?;
    log("setting up 201 products and 64 customers");
    let products = api.products(200, 1_000_000_000).await?;
    let hot = api.products(1, 1_000_000_000).await?.remove(0);
    let mut customers = Vec::new();
    for _ in 0..CLIENTS {
        customers.push(api.customer(1_000_000_000).await?);
    }
    setup::pgbench_streams(&mut connect(&pgbench_url).await?).await?;
    let bench = Arc::new(Bench {
        api,
        customers: Arc::new(customers),
        products: Arc::new(products),
        duration,
        db_url: db_url.clone(),
        pgbench_url,
        sql_dir: var("BENCH_SQL_DIR", "scripts/pgbench"),
    });

    if std::env::args().nth(1).as_deref() == Some("instances") {
        log("starting the projector and waiting for it to catch up");
        let projector = Service::start("projector", &["run"], &env).await?;
        wait_caught_up(&db_url).await?;
        let replica = std::env::var("BENCH_REPLICA_URL").ok();
        let rows = instances::rows(&bench, &env, replica.as_deref()).await?;
        projector.stop().await;
        command.stop().await;
        return write_report(started, &db_url, rows).await;
    }

    // One row alone, for working on it: `bench hot`, `bench grown`, `bench redemptions`
    // or `bench lag`
    // (at BENCH_LAG_RATE commands/s).
    let alone = match std::env::args().nth(1).as_deref() {
        Some("hot") => Some(vec![scenarios::hot_product(&bench, &hot).await?]),
        Some("grown") => Some(grown::rows(&bench).await?),
        Some("redemptions") => Some(vec![scenarios::redemptions(&bench).await?.0]),
        Some("scale") => Some(scale_rows(&redis_url, duration).await?),
        Some("lag") => {
            let projector = Service::start("projector", &["run"], &env).await?;
            wait_caught_up(&db_url).await?;
            let rate: f64 = var("BENCH_LAG_RATE", "700").parse()?;
            let row = scenarios::projection_lag(&bench, rate).await?;
            projector.stop().await;
            Some(vec![row])
        }
        _ => None,
    };
    if let Some(rows) = alone {
        command.stop().await;
        return write_report(started, &db_url, rows).await;
    }

    let mut rows = Vec::new();
    log("redemptions, 64 closed-loop clients, then pgbench");
    let (row, max_rate) = scenarios::redemptions(&bench).await?;
    rows.push(row);
    log("one hot product, then pgbench on one product");
    rows.push(scenarios::hot_product(&bench, &hot).await?);
    log(
        "redemptions alone, then during a burst of 2,000 interactions from one customer (default user limit)",
    );
    let limited_env = [
        env[0].clone(),
        env[1].clone(),
        env[2].clone(),
        env[3].clone(),
        ("TALLY_RATE_LIMIT_USER", "100".into()),
    ];
    let limited = Service::start("command-api", &[], &limited_env).await?;
    rows.push(scenarios::interactions_burst(&bench, &limited.base).await?);
    limited.stop().await;
    log("golden hour: 640 customers, one offer of 1,000 units, 256 connections at its start");
    rows.push(golden::golden_hour(&bench).await?);
    log("redemption latency, open loop at half the maximum");
    rows.push(scenarios::redemption_latency(&bench, max_rate / 2.0).await);
    log("a 100,000-event account beside a fresh one");
    rows.push(scenarios::long_stream(&bench, long).await?);
    log("a product with 10,000 open redemptions, an account with 10,000 purchases, beside fresh ones");
    rows.extend(grown::rows(&bench).await?);

    log("starting the projector and waiting for it to catch up");
    let projector = Service::start("projector", &["run"], &env).await?;
    wait_caught_up(&db_url).await?;
    // Steady state, not the catch-up's aftermath: vacuum and flush what it wrote.
    let db = connect(&db_url).await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    db.batch_execute("CHECKPOINT").await?;
    log("projection lag, open loop at half the maximum command rate");
    rows.push(scenarios::projection_lag(&bench, max_rate / 2.0).await?);
    log("webhooks: event to delivery at half the maximum command rate, then a 30 s receiver outage");
    rows.push(webhooks::webhook_delivery(&bench, max_rate / 2.0).await?);

    log("balance GETs: /healthz and cached under wrk, open loop; redis-benchmark");
    let query = Service::start("query-api", &[], &env).await?;
    rows.extend(scenarios::cached_balance(&bench, &query.base).await?);
    let redis = baselines::redis_get(&redis_url, CLIENTS, 200_000).await?;
    rows.push(Row::new("Redis GET (redis-benchmark, 64 connections)", redis, "req/s", "reference"));
    query.stop().await;

    log("balance GETs with Redis unreachable, then pgbench on the same SELECT");
    let fallback_env = [env[0].clone(), ("REDIS_URL", "redis://127.0.0.1:1".into())];
    let query = Service::start("query-api", &[], &fallback_env).await?;
    let fallback = scenarios::get_closed(&bench, format!("{}/v1/me/balance", query.base), true).await;
    let sql = format!(
        "SELECT user_id, balance, lifetime_earned, lifetime_spent, lots FROM read.balances WHERE user_id = '{}';",
        bench.customers[0].id
    );
    let pg = baselines::pgbench_sql(&db_url, &sql, CLIENTS, duration).await?;
    rows.push(
        Row::new("Balance GET from Postgres (Redis down)", fallback.rate(), "req/s", "reported")
            .latency(fallback.percentiles_ms())
            .against("pgbench, same SELECT", pg, "tx/s")
            .note(format!("{} failures", fallback.failures())),
    );
    log("2,000 failed logins at 64 concurrent against a fresh command API, then its memory");
    let fresh = Service::start("command-api", &[], &env).await?;
    rows.push(logins::failed_logins(&fresh.base, fresh.pid()).await?);
    for service in [fresh, query, projector, command] {
        service.stop().await;
    }

    log(&format!("rebuild: seeding about {events} events"));
    rows.push(rebuild(&rebuild_url, events).await?);
    if scale::accounts().is_some() {
        rows.extend(scale_rows(&redis_url, duration).await?);
    }

    write_report(started, &db_url, rows).await
}

/// Prints the rows as Markdown and writes them as JSON to `BENCH_OUT`.
async fn write_report(started: Instant, db_url: &str, rows: Vec<Row>) -> anyhow::Result<()> {
    let report = Report {
        machine: machine(),
        settings: settings(db_url).await?,
        seconds: started.elapsed().as_secs_f64(),
        rows,
    };
    println!("{}", report.markdown());
    let out = var("BENCH_OUT", "target/bench/latest.json");
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    log(&format!("wrote {out}"));
    Ok(())
}

async fn wait_caught_up(url: &str) -> anyhow::Result<()> {
    let client = connect(url).await?;
    for _ in 0..3000 {
        if projector::status::status(&client).await?.iter().all(|s| s.lag_events == 0) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the projector did not catch up within 5 minutes")
}

/// Every projection rebuilt from scratch; the row reports the slowest.
async fn rebuild(url: &str, events: usize) -> anyhow::Result<Row> {
    setup::rebuild_corpus(&mut connect(url).await?, events).await?;
    let mut speeds = Vec::new();
    for p in Projection::ALL {
        let r = projector::rebuild::rebuild(url, p, false).await?;
        speeds.push((r.projection, r.events, r.events_per_second));
    }
    let slowest = speeds.iter().map(|s| s.2).fold(f64::INFINITY, f64::min);
    let note = speeds.iter().map(|(p, _, s)| format!("{p} {s:.0}")).collect::<Vec<_>>().join(", ");
    Ok(Row::new("Projection rebuild, slowest projection", slowest, "events/s", "≥ 150,000 events/s")
        .met(slowest >= 150_000.0)
        .note(format!("{} events; {note}", speeds[0].1)))
}

/// The scale rows, on the databases `scripts/bench` made for them when `BENCH_SCALE`
/// is set.
async fn scale_rows(redis_url: &str, duration: Duration) -> anyhow::Result<Vec<Row>> {
    let accounts = scale::accounts().context("BENCH_SCALE (1 for a million accounts, or a number)")?;
    let big = std::env::var("BENCH_SCALE_URL").context("BENCH_SCALE_URL")?;
    let small = std::env::var("BENCH_SMALL_URL").context("BENCH_SMALL_URL")?;
    scale::rows(&big, &small, redis_url, accounts, duration).await
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|m| m.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0.0);
    format!(
        "{} × {}, {:.0} GiB",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        model.unwrap_or("unknown CPU"),
        mem_kb / 1024.0 / 1024.0
    )
}

async fn settings(url: &str) -> anyhow::Result<String> {
    let client = connect(url).await?;
    let show = |name: &'static str| {
        let client = &client;
        async move { client.query_one(&format!("SHOW {name}"), &[]).await.map(|r| r.get::<_, String>(0)) }
    };
    Ok(format!(
        "Postgres {} (fsync={}, synchronous_commit={})",
        show("server_version").await?,
        show("fsync").await?,
        show("synchronous_commit").await?
    ))
}
