//! The scale row (design §9, §14), behind `BENCH_SCALE`: a store of 1,000,000 accounts
//! (`BENCH_SCALE=<accounts>` for another size) with 11 events each (opened, credited,
//! three redemptions of three events), seeded straight into the store; every
//! projection rebuilt, timed; then balance GETs at 1,000 accounts spread over the
//! store, open loop and from a cold cache, beside the same on a 1,000-account store.

use std::time::{Duration, Instant};

use domain::{Role, UserId};
use infra::token::TokenKeys;
use projector::projections::Projection;

use crate::loadgen::{open_loop, Run};
use crate::report::Row;
use crate::scenarios::{connect, send};
use crate::services::{Service, JWT_SECRET};
use crate::setup;

/// Redemptions per account: 2 + 3 × 3 = 11 events.
const REDEMPTIONS: usize = 3;
/// Accounts read, and the size of the small store.
const SAMPLE: usize = 1_000;
const RATE: f64 = 200.0;

/// The accounts `BENCH_SCALE` asks for (`1` or `on`: one million), if it is set.
pub fn accounts() -> Option<usize> {
    match std::env::var("BENCH_SCALE").ok()?.as_str() {
        "" | "0" | "off" => None,
        "1" | "on" => Some(1_000_000),
        n => n.parse().ok(),
    }
}

/// The rebuild row and the balance GET row. `big` and `small` are empty databases.
pub async fn rows(
    big: &str,
    small: &str,
    redis: &str,
    accounts: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    let mut stores = Vec::new();
    for (url, n) in [(small, SAMPLE), (big, accounts)] {
        infra::db::migrate(url).await?;
        crate::log(&format!("scale: seeding {n} accounts ({} events)", n * (2 + 3 * REDEMPTIONS)));
        let ids = setup::corpus(&mut connect(url).await?, n, REDEMPTIONS, SAMPLE).await?;
        let started = Instant::now();
        let mut events = 0;
        for p in Projection::ALL {
            events += projector::rebuild::rebuild(url, p, false).await?.events;
        }
        stores.push((url, ids, started.elapsed(), events));
    }
    let (_, _, rebuilt, events) = &stores[1];
    let minutes = rebuilt.as_secs_f64() / 60.0;
    let rebuild = Row::new("Scale: rebuild of all projections", minutes, "min", "≤ 3 min")
        .met(minutes <= 3.0)
        .note(format!("{accounts} accounts, {events} events replayed over the four projections"));

    let mut runs = Vec::new();
    for (url, ids, _, _) in &stores {
        runs.push(balance_gets(url, redis, ids, duration).await?);
    }
    let ([s50, s99, _], [b50, b99, b999]) = (runs[0].percentiles_ms(), runs[1].percentiles_ms());
    let failures = runs[0].failures() + runs[1].failures();
    let gets = Row::new("Scale: balance GET p99, cold cache", b99, "ms", "p99 ≤ 1.2× a 1,000-account store")
        .latency([b50, b99, b999])
        .against("1,000-account store p99", s99, "ms")
        .met(b99 <= 1.2 * s99 && failures == 0)
        .note(format!("{accounts} accounts; p50 {b50:.1} vs {s50:.1} ms; {RATE:.0} GETs/s over {SAMPLE} accounts, {failures} failures"));
    Ok(vec![rebuild, gets])
}

/// Open-loop balance GETs by a staff token at `ids`, through a query API of the store
/// at `url` with an empty Redis.
async fn balance_gets(url: &str, redis: &str, ids: &[UserId], duration: Duration) -> anyhow::Result<Run> {
    let flushed = std::process::Command::new("redis-cli").args(["-u", redis, "flushall"]).output()?;
    anyhow::ensure!(flushed.status.success(), "redis-cli flushall failed");
    let env = [("DATABASE_URL", url.to_owned()), ("REDIS_URL", redis.to_owned())];
    let query = Service::start("query-api", &[], &env).await?;
    let keys = TokenKeys::new(JWT_SECRET, chrono::Duration::hours(1));
    let (token, _) = keys.issue(uuid::Uuid::new_v4(), vec![Role::Auditor], chrono::Utc::now());
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let urls: Vec<String> =
        ids.iter().map(|u| format!("{}/v1/accounts/{}/balance", query.base, u.0)).collect();
    let run = open_loop(RATE, duration, move |n| {
        send(http.get(&urls[n as usize % urls.len()]).bearer_auth(&token))
    })
    .await;
    query.stop().await;
    Ok(run)
}
