//! One function per design §9 target, each returning its report row.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use infra::store::Checkpoint;
use serde_json::json;

use crate::baselines;
use crate::loadgen::{closed_loop, open_loop, Run, Status};
use crate::report::Row;
use crate::setup::{Api, Customer};

pub const CLIENTS: usize = 64;

/// What every scenario works with.
pub struct Bench {
    pub api: Api,
    pub customers: Arc<Vec<Customer>>,
    pub products: Arc<Vec<String>>,
    pub duration: Duration,
    pub db_url: String,
    /// A sibling database holding pgbench's streams, so the projector never reads them.
    pub pgbench_url: String,
    pub sql_dir: String,
}

pub async fn send(req: reqwest::RequestBuilder) -> Status {
    let res = req.send().await.ok()?;
    let status = res.status().as_u16();
    let _ = res.bytes().await;
    Some(status)
}

impl Bench {
    fn redeem(&self, customer: usize, product: &str) -> reqwest::RequestBuilder {
        self.redeem_at(&self.api.base, customer, product)
    }

    /// One redemption of one unit by customer `customer` (modulo their number).
    pub fn redeem_request(&self, customer: usize, product: &str) -> reqwest::RequestBuilder {
        self.redeem(customer, product)
    }

    /// One redemption of one unit of `product` by the customer holding `token`.
    pub fn redeem_as(&self, token: &str, product: &str) -> reqwest::RequestBuilder {
        self.api
            .http
            .post(format!("{}/v1/redemptions", self.api.base))
            .bearer_auth(token)
            .json(&json!({"product_id": product, "quantity": 1}))
    }

    fn redeem_at(&self, base: &str, customer: usize, product: &str) -> reqwest::RequestBuilder {
        self.api
            .http
            .post(format!("{base}/v1/redemptions"))
            .bearer_auth(&self.customers[customer % self.customers.len()].token)
            .json(&json!({"product_id": product, "quantity": 1}))
    }

    /// Closed-loop redemptions: worker `w` is customer `w`, picking products in turn
    /// from `products`.
    async fn redemptions_closed(self: &Arc<Self>, products: Arc<Vec<String>>) -> Run {
        self.redemptions_closed_at(self.api.base.clone(), products).await
    }

    /// [`Bench::redemptions_closed`] with worker `w` on the command API at
    /// `bases[w % bases.len()]`, over every product.
    pub async fn redemptions_spread(self: &Arc<Self>, bases: Vec<String>) -> Run {
        let bench = self.clone();
        closed_loop(CLIENTS, self.duration, move |w, n| {
            let products = &bench.products;
            send(bench.redeem_at(&bases[w % bases.len()], w, &products[(w + n as usize) % products.len()]))
        })
        .await
    }

    /// [`Bench::redemptions_closed`] against the command API at `base`.
    async fn redemptions_closed_at(self: &Arc<Self>, base: String, products: Arc<Vec<String>>) -> Run {
        let bench = self.clone();
        closed_loop(CLIENTS, self.duration, move |w, n| {
            let req = bench.redeem_at(&base, w, &products[(w + n as usize) % products.len()]);
            send(req)
        })
        .await
    }
}

/// Redemptions at 64 closed-loop clients over 200 products, beside pgbench running
/// the same transaction. Returns the row and the maximum rate it found.
pub async fn redemptions(bench: &Arc<Bench>) -> anyhow::Result<(Row, f64)> {
    let run = bench.redemptions_closed(bench.products.clone()).await;
    let script = format!("{}/redeem.sql", bench.sql_dir);
    let pgbench = baselines::pgbench(&bench.pgbench_url, &script, CLIENTS, bench.duration).await?;
    let row = Row::new("Redemptions over HTTP, 64 clients", run.rate(), "/s", "≥ 80 % of pgbench")
        .latency(run.percentiles_ms())
        .against("pgbench, equivalent tx", pgbench, "tx/s");
    let met = row.ratio.is_some_and(|r| r >= 0.8) && run.failures() == 0;
    let note = format!("{} failures", run.failures());
    Ok((row.met(met).note(note), run.rate()))
}

/// Every client on one product: no client sees a conflict, and the stock is exact.
pub async fn hot_product(bench: &Arc<Bench>, hot: &str) -> anyhow::Result<Row> {
    let db = connect(&bench.db_url).await?;
    let stream = format!("product-{hot}");
    let sql = "SELECT COALESCE(sum((data->>'quantity')::int8), 0)::int8 FROM es.events \
               WHERE stream_id = $1 AND event_type = 'StockReserved'";
    let before: i64 = db.query_one(sql, &[&stream]).await?.get(0);
    let run = bench.redemptions_closed(Arc::new(vec![hot.to_owned()])).await;
    let stored = db.query_one(sql, &[&stream]).await?.get::<_, i64>(0) - before;
    let conflicts = run.count(409);
    let exact = stored == run.ok() as i64;
    let script = std::fs::read_to_string(format!("{}/redeem.sql", bench.sql_dir))?;
    let hot_sql = std::env::temp_dir().join("tally-bench-hot.sql");
    std::fs::write(&hot_sql, script.replace("\\set p random(1, 1000)", "\\set p 1"))?;
    let pgbench =
        baselines::pgbench(&bench.pgbench_url, &hot_sql.to_string_lossy(), CLIENTS, bench.duration).await?;
    Ok(Row::new(
        "One hot product, 64 clients",
        run.rate(),
        "/s",
        "≥ 3× pgbench's same-product rate, no 409s, stock exact",
    )
    .latency(run.percentiles_ms())
    .against("pgbench, same product", pgbench, "tx/s")
    .met(run.rate() >= 3.0 * pgbench && conflicts == 0 && exact && run.failures() == 0)
    .note(format!("{conflicts} conflicts, {stored} reserved for {} acknowledged", run.ok())))
}

/// Redemption latency from the open-loop generator at `rate`.
pub async fn redemption_latency(bench: &Arc<Bench>, rate: f64) -> Row {
    let b = bench.clone();
    let run = open_loop(rate, bench.duration, move |n| {
        let n = n as usize;
        send(b.redeem(n, &b.products[n % b.products.len()]))
    })
    .await;
    Row::new("Redemption latency, open loop", run.rate(), "/s", "reported")
        .latency(run.percentiles_ms())
        .note(format!("offered {rate:.0}/s, {} failures", run.failures()))
}

/// Rounds the long-stream comparison alternates over.
const ROUNDS: u32 = 4;

/// Redemptions on an account with a `length`-event stream, beside a fresh account,
/// both open loop at 50/s (one account: its commands serialize on its stream).
pub async fn long_stream(bench: &Arc<Bench>, length: i64) -> anyhow::Result<Row> {
    let fresh = bench.api.customer(1_000_000_000).await?;
    let long = bench.api.customer(1).await?;
    let mut db = connect(&bench.db_url).await?;
    crate::setup::long_account(&mut db, &long.id, length).await?;
    let one = |c: &Customer, n: usize| {
        let req = bench.api.http.post(format!("{}/v1/redemptions", bench.api.base)).bearer_auth(&c.token);
        send(req.json(&json!({"product_id": bench.products[n % bench.products.len()], "quantity": 1})))
    };
    // The first command on the long stream folds it whole and writes a snapshot.
    let first = Instant::now();
    anyhow::ensure!(one(&long, 0).await == Some(201), "a redemption on the long stream failed");
    let first = first.elapsed();
    anyhow::ensure!(one(&fresh, 0).await == Some(201), "a redemption on the fresh account failed");

    // The seed's writes are flushed first, and the two accounts take turns in short
    // rounds, so background I/O and drift weigh on both alike.
    db.batch_execute("CHECKPOINT").await?;
    let customers = [Arc::new(fresh), Arc::new(long)];
    let mut runs = [Run::empty(), Run::empty()];
    for _ in 0..ROUNDS {
        for (c, run) in customers.iter().zip(runs.iter_mut()) {
            let (http, base, products, c) =
                (bench.api.http.clone(), bench.api.base.clone(), bench.products.clone(), c.clone());
            let round = open_loop(50.0, bench.duration / ROUNDS, move |n| {
                let body = json!({"product_id": products[n as usize % products.len()], "quantity": 1});
                send(http.post(format!("{base}/v1/redemptions")).bearer_auth(&c.token).json(&body))
            })
            .await;
            run.merge(round);
        }
    }
    let ([f50, f99, _], [l50, l99, l999]) = (runs[0].percentiles_ms(), runs[1].percentiles_ms());
    let row = Row::new("Redemption p50 on a 100,000-event account", l50, "ms", "p50 and p99 ≤ 1.2× fresh")
        .latency([l50, l99, l999])
        .against("fresh account p50", f50, "ms");
    let met = l50 <= 1.2 * f50 && l99 <= 1.2 * f99 && runs.iter().all(|r| r.failures() == 0);
    Ok(row.met(met).note(format!(
        "p99 {l99:.1} vs {f99:.1} ms; first command after seeding {:.0} ms",
        first.as_secs_f64() * 1e3
    )))
}

/// Time from a redemption's acknowledgement until the `accounts` projection covers
/// its position, with redemptions arriving open loop at `rate`; split at the moment
/// the safe global order reached it (the horizon: every older transaction ended), the
/// rest being the projector's (wake-up, batch, commit).
pub async fn projection_lag(bench: &Arc<Bench>, rate: f64) -> anyhow::Result<Row> {
    // (when, the accounts checkpoint, the safe horizon), polled every millisecond.
    let seen: Arc<Mutex<Vec<(Instant, Checkpoint, Checkpoint)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (seen, stop, db) = (seen.clone(), stop.clone(), connect(&bench.db_url).await?);
        tokio::spawn(async move {
            let sql = "SELECT tx_id, position FROM read.checkpoints WHERE projection = 'accounts'";
            let stmt = db.prepare(sql).await?;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Both on one connection, pipelined: one round trip.
                let (r, horizon) =
                    futures_util::future::join(db.query_one(&stmt, &[]), infra::store::safe_head(&db)).await;
                let (r, horizon) = (r?, horizon?);
                let cp = Checkpoint { tx_id: r.get::<_, i64>(0) as u64, position: r.get(1) };
                seen.lock().expect("seen").push((Instant::now(), cp, horizon));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::Ok(())
        })
    };
    let acks: Arc<Mutex<Vec<(Instant, Checkpoint)>>> = Arc::default();
    let (b, a) = (bench.clone(), acks.clone());
    let run = open_loop(rate, bench.duration, move |n| {
        let n = n as usize;
        let req = b.redeem(n, &b.products[n % b.products.len()]);
        let acks = a.clone();
        async move {
            let res = req.send().await.ok()?;
            let at = Instant::now();
            let position = res.headers().get("x-tally-position").and_then(|v| v.to_str().ok());
            if let Some(cp) = position.and_then(Checkpoint::parse_token) {
                acks.lock().expect("acks").push((at, cp));
            }
            Some(res.status().as_u16())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.await??;

    let seen = seen.lock().expect("seen");
    let (mut lags, mut horizon) = (histogram()?, histogram()?);
    let mut unseen = 0;
    for (at, cp) in acks.lock().expect("acks").iter() {
        // The first observations at or after the acknowledgement that cover it.
        let after = &seen[seen.partition_point(|(t, _, _)| t < at)..];
        if let Some((t, _, _)) = after.iter().find(|(_, _, h)| h >= cp) {
            horizon.saturating_record((*t - *at).as_micros().max(1) as u64);
        }
        match after.iter().find(|(_, c, _)| c >= cp) {
            Some((t, _, _)) => lags.saturating_record((*t - *at).as_micros().max(1) as u64),
            None => unseen += 1,
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q / 100.0) as f64 / 1e3;
    let p = [50.0, 99.0, 99.9].map(|q| ms(&lags, q));
    Ok(Row::new("Append-to-visible projection lag", p[1], "ms p99", "p99 ≤ 25 ms at half the max rate")
        .latency(p)
        .met(p[1] <= 25.0 && unseen == 0 && run.failures() == 0)
        .note(format!(
            "at {rate:.0} commands/s, {} failures, {unseen} never seen; safe horizon reached after \
             p50 {:.1} / p99 {:.1} ms, the rest is the projector's",
            run.failures(),
            ms(&horizon, 50.0),
            ms(&horizon, 99.0)
        )))
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?)
}

/// The cached balance GET beside `/healthz` of the same binary, both at their maximum
/// under `wrk` (closed loop, 64 connections: a C client, so the 2-core machine's
/// ceiling is the server, not the generator), then the GET's latency from the open-loop
/// generator at a quarter of that maximum.
pub async fn cached_balance(bench: &Arc<Bench>, query: &str) -> anyhow::Result<Vec<Row>> {
    let token = &bench.customers[0].token;
    let trivial = baselines::wrk(&format!("{query}/healthz"), None, CLIENTS, bench.duration).await?;
    let balance = format!("{query}/v1/me/balance");
    let cached = baselines::wrk(&balance, Some(token), CLIENTS, bench.duration).await?;
    let rate = cached.requests_per_second / 4.0;
    let (http, customers) = (bench.api.http.clone(), bench.customers.clone());
    let open = open_loop(rate, bench.duration, move |n| {
        send(http.get(&balance).bearer_auth(&customers[n as usize % customers.len()].token))
    })
    .await;
    let ok = cached.errors == 0 && trivial.errors == 0;
    Ok(vec![
        Row::new(
            "Cached balance GET, wrk 64 connections",
            cached.requests_per_second,
            "req/s",
            "≥ 75 % of a trivial handler",
        )
        .against("/healthz, same binary", trivial.requests_per_second, "req/s")
        .met(cached.requests_per_second >= 0.75 * trivial.requests_per_second && ok)
        .note(format!("{} non-2xx or socket errors", cached.errors + trivial.errors)),
        Row::new("Cached balance GET latency, open loop", open.rate(), "req/s", "reported")
            .latency(open.percentiles_ms())
            .note(format!("offered {rate:.0}/s, {} failures", open.failures())),
    ])
}

/// Closed-loop GETs of `url`, as customer `w` when `auth`.
pub async fn get_closed(bench: &Arc<Bench>, url: String, auth: bool) -> Run {
    let (http, customers) = (bench.api.http.clone(), bench.customers.clone());
    closed_loop(CLIENTS, bench.duration, move |w, _| {
        let req = http.get(&url);
        send(if auth { req.bearer_auth(&customers[w % customers.len()].token) } else { req })
    })
    .await
}

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Redemptions at 64 closed-loop clients alone, then again while one customer sends a
/// burst of 2,000 interactions (64 in flight) at the start of the run, all against the
/// command API at `base`, which runs with the default per-user rate limit: one noisy
/// client must not slow the ledger by more than 10 % over the run.
pub async fn interactions_burst(bench: &Arc<Bench>, base: &str) -> anyhow::Result<Row> {
    let alone = bench.redemptions_closed_at(base.to_owned(), bench.products.clone()).await;
    let burst = {
        let (http, base, products) = (bench.api.http.clone(), base.to_owned(), bench.products.clone());
        let token = bench.api.customer(1).await?.token;
        tokio::spawn(async move {
            let started = Instant::now();
            let requests = (0..2_000).map(|n| {
                let body = json!({"product_id": products[n % products.len()], "kind": "view"});
                send(http.post(format!("{base}/v1/interactions")).bearer_auth(&token).json(&body))
            });
            let statuses: Vec<_> =
                futures_util::stream::iter(requests).buffer_unordered(CLIENTS).collect().await;
            let count = |status| statuses.iter().filter(|s| **s == Some(status)).count();
            (count(202), count(429), started.elapsed())
        })
    };
    let during = bench.redemptions_closed_at(base.to_owned(), bench.products.clone()).await;
    let (accepted, limited, took) = burst.await?;
    let ratio = during.rate() / alone.rate();
    Ok(Row::new(
        "Redemptions during a burst of 2,000 interactions, 64 clients",
        during.rate(),
        "/s",
        "≥ 90 % of alone",
    )
    .latency(during.percentiles_ms())
    .against("redemptions alone", alone.rate(), "/s")
    .met(ratio >= 0.9 && during.failures() == 0)
    .note(format!(
        "the burst: {accepted} accepted, {limited} refused (429), in {:.2} s; {} failures",
        took.as_secs_f64(),
        during.failures()
    )))
}
