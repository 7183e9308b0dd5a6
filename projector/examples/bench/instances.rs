//! `bench instances` (design §14): one vs two instances of each API on this machine,
//! the cost of rate limits kept in Redis, and what a read replica takes off the
//! primary. Figures to reason with, not bars: on two cores a second instance competes
//! for the same CPU as the first.

use std::sync::Arc;

use crate::baselines;
use crate::report::Row;
use crate::scenarios::{connect, get_closed, Bench, CLIENTS};
use crate::services::Service;

/// Every row of the phase; `env` is the services' environment (database, Redis),
/// `replica` a streaming standby's URL of the same database, if one runs.
pub async fn rows(
    bench: &Arc<Bench>,
    env: &[(&str, String)],
    replica: Option<&str>,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = redemptions(bench, env).await?;
    rows.extend(cached_gets(bench, env).await?);
    match replica {
        Some(url) => rows.push(replica_reads(bench, env, url).await?),
        None => crate::log("no replica (the primary refused pg_basebackup): its row is left out"),
    }
    Ok(rows)
}

/// Closed-loop redemptions, 64 clients, against one command API, then spread over two.
async fn redemptions(bench: &Arc<Bench>, env: &[(&str, String)]) -> anyhow::Result<Vec<Row>> {
    crate::log("redemptions: one command API, then two");
    let one = bench.redemptions_spread(vec![bench.api.base.clone()]).await;
    let second = Service::start("command-api", &[], env).await?;
    let two = bench.redemptions_spread(vec![bench.api.base.clone(), second.base.clone()]).await;
    second.stop().await;
    Ok(vec![
        Row::new("Redemptions, 64 clients, 1 command API", one.rate(), "/s", "reported")
            .latency(one.percentiles_ms())
            .note(format!("{} failures", one.failures())),
        Row::new("Redemptions, 64 clients over 2 command APIs", two.rate(), "/s", "reported")
            .latency(two.percentiles_ms())
            .against("1 command API", one.rate(), "/s")
            .note(format!("{} failures", two.failures())),
    ])
}

/// Cached balance GETs under wrk, each request as the next of the 64 customers: one
/// query API with 64 connections, two with 32 each, then one with the rate limits on
/// (kept in Redis).
async fn cached_gets(bench: &Arc<Bench>, env: &[(&str, String)]) -> anyhow::Result<Vec<Row>> {
    crate::log("cached balance GETs: one query API, two, then one with rate limits on");
    let tokens: Vec<String> = bench.customers.iter().map(|c| c.token.clone()).collect();
    let (a, b) = (Service::start("query-api", &[], env).await?, Service::start("query-api", &[], env).await?);
    let url = |s: &Service| format!("{}/v1/me/balance", s.base);
    let (url_a, url_b) = (url(&a), url(&b));
    let one = baselines::wrk_tokens(&url_a, &tokens, CLIENTS, bench.duration).await?;
    let (x, y) = tokio::join!(
        baselines::wrk_tokens(&url_a, &tokens, CLIENTS / 2, bench.duration),
        baselines::wrk_tokens(&url_b, &tokens, CLIENTS / 2, bench.duration)
    );
    let (x, y) = (x?, y?);
    b.stop().await;
    a.stop().await;
    let mut limited_env = env.to_vec();
    // Rates no run reaches, with the default bursts (so the default lease sizes).
    for (k, v) in [
        ("TALLY_RATE_LIMIT_USER", "1000000"),
        ("TALLY_RATE_LIMIT_USER_BURST", "200"),
        ("TALLY_RATE_LIMIT_ADDR", "1000000"),
        ("TALLY_RATE_LIMIT_ADDR_BURST", "2000"),
    ] {
        limited_env.push((k, v.to_owned()));
    }
    let limited = Service::start("query-api", &[], &limited_env).await?;
    let with_limits = baselines::wrk_tokens(&url(&limited), &tokens, CLIENTS, bench.duration).await?;
    limited.stop().await;
    let errors = one.errors + x.errors + y.errors + with_limits.errors;
    Ok(vec![
        Row::new(
            "Cached balance GET, 1 query API, wrk 64 connections",
            one.requests_per_second,
            "req/s",
            "reported",
        ),
        Row::new(
            "Cached balance GET, 2 query APIs, wrk 32 connections each",
            x.requests_per_second + y.requests_per_second,
            "req/s",
            "reported",
        )
        .against("1 query API", one.requests_per_second, "req/s"),
        Row::new(
            "Cached balance GET, 1 query API, per-user and per-address limits in Redis",
            with_limits.requests_per_second,
            "req/s",
            "reported",
        )
        .against("limits off", one.requests_per_second, "req/s")
        .note(format!("{errors} non-2xx or socket errors over the three runs")),
    ])
}

/// Balance GETs with Redis unreachable (every read goes to Postgres), first from the
/// primary, then from the replica: the rate, and the primary's commits per second
/// during each run.
async fn replica_reads(bench: &Arc<Bench>, env: &[(&str, String)], replica: &str) -> anyhow::Result<Row> {
    crate::log("balance GETs from Postgres: on the primary, then on the replica");
    let mut no_cache: Vec<(&str, String)> = env.iter().filter(|(k, _)| *k != "REDIS_URL").cloned().collect();
    no_cache.push(("REDIS_URL", "redis://127.0.0.1:1".into()));
    let on_primary = Service::start("query-api", &[], &no_cache).await?;
    let (primary, primary_tps) = measure(bench, &on_primary.base).await?;
    on_primary.stop().await;
    no_cache.push(("TALLY_READ_DATABASE_URL", replica.to_owned()));
    let on_replica = Service::start("query-api", &[], &no_cache).await?;
    let (replicated, replica_tps) = measure(bench, &on_replica.base).await?;
    on_replica.stop().await;
    Ok(Row::new("Balance GET from Postgres on the replica (Redis down)", replicated.rate(), "req/s", "reported")
        .latency(replicated.percentiles_ms())
        .against("the same on the primary", primary.rate(), "req/s")
        .note(format!(
            "the primary committed {primary_tps:.0} tx/s during the primary run, {replica_tps:.0} tx/s during the replica run; {} failures",
            primary.failures() + replicated.failures()
        )))
}

/// Closed-loop balance GETs on the query API at `base`, and the primary's commits per
/// second meanwhile.
async fn measure(bench: &Arc<Bench>, base: &str) -> anyhow::Result<(crate::loadgen::Run, f64)> {
    let db = connect(&bench.db_url).await?;
    let commits =
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()";
    let stats_flushed = "SELECT pg_stat_force_next_flush()";
    db.batch_execute(stats_flushed).await.ok();
    let before: i64 = db.query_one(commits, &[]).await?.get(0);
    let run = get_closed(bench, format!("{base}/v1/me/balance"), true).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    db.batch_execute(stats_flushed).await.ok();
    let after: i64 = db.query_one(commits, &[]).await?.get(0);
    Ok((run, (after - before) as f64 / bench.duration.as_secs_f64()))
}
