//! What a hostile client tried against the query API: NUL characters, search syntax
//! that broke Postgres's parser, a flood of distinct searches, and far-future
//! read-your-writes positions used as an amplifier.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

/// A category of `n` mugs; the position of the last. Listed 100 a second, within the
/// admin's rate limit.
async fn mugs(s: &Stack, n: usize) -> String {
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Mugs", "description": "" })).await;
    let all: Vec<usize> = (0..n).collect();
    for (round, chunk) in all.chunks(100).enumerate() {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        join_all(chunk.iter().map(|i| {
            let mug = json!({ "name": format!("Mug {i}"), "description": "A glazed ceramic mug",
                              "category_id": cat, "point_cost": 5 });
            async move { s.cmd.create("/v1/products", mug).await }
        }))
        .await;
    }
    s.head().await
}

#[tokio::test]
async fn nul_characters_and_operator_soup_never_reach_a_500() {
    let s = stack().await;
    let at = mugs(&s, 1).await;
    let res = s.get("/v1/products?q=mug%00", None, &[]).await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.expect("json")["code"], "validation_failed");
    let auditor = s.cmd.admin.clone();
    let res = s.get("/v1/audit/streams/%00", Some(&auditor), &[]).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    for q in ["-".repeat(45), "\"-(!|&".repeat(30), "mug -mug -\"a b\" or or or ---".into(), "!!!".into()] {
        let path = format!("/v1/products?q={}", urlencode(&q));
        let res = s.get(&path, None, &[("X-Tally-Min-Position", &at)]).await;
        assert_eq!(res.status(), 200, "q={q}");
    }
    let found = s.read("/v1/products?q=glazed%20mug!!", "", &at).await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn cached_searches(s: &Stack) -> usize {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &s.redis.url, "--scan", "--pattern", "tally:search:*"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn broad_and_countless_anonymous_searches_leave_a_bounded_search_cache() {
    let s = stack().await;
    let at = mugs(&s, 260).await;
    s.read("/v1/categories", "", &at).await;
    // 260 results are more than one entry may hold: answered, not cached.
    let broad = s.get("/v1/products?q=mug&limit=5", None, &[]).await.json::<Value>().await.expect("json");
    assert!(broad["next_cursor"].is_string(), "{broad}");
    assert_eq!(cached_searches(&s), 0);
    let paths: Vec<String> = (0..500).map(|i| format!("/v1/products?q=word{i}")).collect();
    let searches = join_all(paths.iter().map(|p| s.get(p, None, &[]))).await;
    assert!(searches.iter().all(|r| r.status() == 200));
    // At most one minute's admissions (two, should the run straddle a minute) of 500.
    let cached = cached_searches(&s);
    assert!(cached > 0 && cached <= 400, "{cached} cached searches");
}

#[tokio::test]
async fn a_far_future_position_is_refused_at_once_and_waiting_requests_share_one_poller() {
    let s = stack_with(&[("TALLY_MIN_POSITION_WAIT_MS", "1000".into())]).await;
    let c = s.cmd.register("wait").await;
    let far = format!("{}.{}", u32::MAX, i64::MAX);
    let started = Instant::now();
    let res = s.get("/v1/me/balance", Some(&c.token), &[("X-Tally-Min-Position", &far)]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.expect("json")["code"], "malformed_request");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());

    // A real position the stopped projector never applies: 50 requests wait a second.
    s.stop_projector();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.cmd.product(5, 5).await;
    let unapplied = s.head().await;
    let stats = s.cmd.db.client().await.expect("client");
    let commits = || async {
        tokio::time::sleep(Duration::from_millis(1200)).await; // stats are flushed about once a second
        let row = stats
            .query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", &[])
            .await
            .expect("stats");
        row.get::<_, i64>(0)
    };
    let before = commits().await;
    let header = [("X-Tally-Min-Position", unapplied.as_str())];
    let waits = join_all((0..50).map(|_| s.get("/v1/me/balance", Some(&c.token), &header))).await;
    assert!(waits.iter().all(|r| r.status() == 503));
    let spent = commits().await - before;
    // One poller: about 200 looks (2 statements each) a second; one per request would be 10,000.
    assert!(spent < 2_000, "{spent} transactions for 50 waiting requests");
}

#[tokio::test]
async fn personal_reads_are_not_stored_by_caches_and_nothing_is_sniffed() {
    let s = stack().await;
    let c = s.cmd.register("private").await;
    let at = s.head().await;
    let res = s.get("/v1/me/balance", Some(&c.token), &[("X-Tally-Min-Position", &at)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let res = s.get("/v1/categories", None, &[]).await;
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}
