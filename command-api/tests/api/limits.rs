//! Rate limits: a burst over a user's or an address's limit gets 429 with Retry-After;
//! other users and addresses are unaffected.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn burst(app: &TestApp, http: &reqwest::Client, token: &str, n: usize) -> Vec<reqwest::Response> {
    let mut out = Vec::new();
    for _ in 0..n {
        let res = http
            .post(format!("{}/v1/interactions", app.base))
            .bearer_auth(token)
            .json(&json!({ "product_id": uuid::Uuid::new_v4(), "kind": "view" }))
            .send()
            .await
            .expect("send");
        out.push(res);
    }
    out
}

#[tokio::test]
async fn a_user_over_the_limit_gets_429_and_others_do_not() {
    let app = spawn_app_with(&[("TALLY_RATE_LIMIT_USER", "2"), ("TALLY_RATE_LIMIT_USER_BURST", "5")]).await;
    let (greedy, calm) = (app.register("greedy").await, app.register("calm").await);
    let responses = burst(&app, &app.http, &greedy.token, 12).await;
    let limited: Vec<&reqwest::Response> =
        responses.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(limited.len() >= 6, "{} of 12 limited", limited.len());
    assert!(limited.iter().all(|r| r
        .headers()
        .get("retry-after")
        .is_some_and(|v| v.to_str().is_ok_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)))));
    let last = responses.into_iter().last().expect("a response");
    assert_problem(last, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    for res in burst(&app, &app.http, &calm.token, 3).await {
        assert_ne!(res.status(), StatusCode::TOO_MANY_REQUESTS, "another user is unaffected");
    }
}

#[tokio::test]
async fn an_address_over_the_limit_gets_429_and_other_addresses_do_not() {
    let app = spawn_app_with(&[("TALLY_RATE_LIMIT_ADDR", "2"), ("TALLY_RATE_LIMIT_ADDR_BURST", "4")]).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.http.get(format!("{}/healthz", app.base)).send().await.expect("send").status());
    }
    assert!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count() >= 5, "{statuses:?}");
    // Another loopback address is another client.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let res = other.get(format!("{}/healthz", app.base)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
}

/// `n` requests by `token`, alternating between the instances at `bases`; how many
/// were let through, and how long the burst took.
async fn alternate(http: &reqwest::Client, bases: &[&str], token: &str, n: usize) -> (usize, f64) {
    let started = std::time::Instant::now();
    let mut allowed = 0;
    for i in 0..n {
        let res = http
            .post(format!("{}/v1/interactions", bases[i % bases.len()]))
            .bearer_auth(token)
            .json(&json!({ "product_id": uuid::Uuid::new_v4(), "kind": "view" }))
            .send()
            .await
            .expect("send");
        allowed += usize::from(res.status() != StatusCode::TOO_MANY_REQUESTS);
    }
    (allowed, started.elapsed().as_secs_f64())
}

/// How many times Redis ran a Lua script (the rate limits' GCRA).
fn script_calls(redis_url: &str) -> u64 {
    let out =
        std::process::Command::new("redis-cli").args(["-u", redis_url, "info", "commandstats"]).output();
    let text = String::from_utf8(out.expect("redis-cli").stdout).expect("utf8");
    text.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Two instances sharing a Redis enforce one limit between them: a burst spread over
/// both gets the user's burst once, not once per instance. With Redis down, each
/// instance falls back to its own limit.
#[tokio::test]
async fn two_instances_share_one_limit_through_redis_and_fall_back_to_their_own() {
    let mut redis = infra::testkit::TestRedis::start().await.expect("redis");
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("TALLY_RATE_LIMIT_USER", "1"),
        ("TALLY_RATE_LIMIT_USER_BURST", "6"),
    ];
    let app = spawn_app_with(&env).await;
    let second = another_instance(&app, &env).await;
    let bases = [app.base.as_str(), second.base.as_str()];

    let shared = app.register("shared").await;
    let (allowed, secs) = alternate(&app.http, &bases, &shared.token, 24).await;
    // The burst, plus one per second the burst took (the rate is 1/s).
    assert!(allowed >= 6 && allowed <= 6 + secs.ceil() as usize, "{allowed} let through in {secs:.2} s");
    // Once Redis refused the user, each instance refuses it on its own until the wait
    // Redis named has passed: not a script call per refused request. (Six grants, each
    // instance's first call twice (NOSCRIPT, then the script itself), and about one
    // refusal per instance and second.)
    let calls = script_calls(&redis.url);
    assert!(calls <= 6 + 2 * 2 + 2 * (1 + secs.ceil() as u64), "{calls} script calls for 24 requests");

    redis.stop().await.expect("stop redis");
    let alone = app.register("alone").await;
    let (allowed, secs) = alternate(&app.http, &bases, &alone.token, 24).await;
    assert!(
        allowed >= 12 && allowed <= 12 + 2 * secs.ceil() as usize,
        "{allowed} let through in {secs:.2} s: each instance should allow its own burst"
    );
}

/// With a burst of 40, each instance takes leases of 4 requests from Redis and spends
/// them locally: the two still let through the burst once between them (less at most
/// what their last leases left unspent), never a burst each.
#[tokio::test]
async fn leased_requests_keep_two_instances_within_one_limit() {
    let redis = infra::testkit::TestRedis::start().await.expect("redis");
    let env = [
        ("REDIS_URL", redis.url.as_str()),
        ("TALLY_RATE_LIMIT_USER", "1"),
        ("TALLY_RATE_LIMIT_USER_BURST", "40"),
    ];
    let app = spawn_app_with(&env).await;
    let second = another_instance(&app, &env).await;
    let user = app.register("leased").await;
    let (allowed, secs) =
        alternate(&app.http, &[app.base.as_str(), second.base.as_str()], &user.token, 100).await;
    let (unspent, over_time) = (2 * 3, secs.ceil() as usize);
    assert!(
        allowed + unspent >= 40 && allowed <= 40 + over_time,
        "{allowed} let through in {secs:.2} s, for a burst of 40 between two instances"
    );
}
