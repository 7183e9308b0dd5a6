//! SIGTERM under load: the query API stops accepting, answers every request it had
//! already accepted (including reads still waiting for read-your-writes), never with a
//! 5xx, and exits cleanly.

use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use command_api::testkit::spawn_app;
use infra::testkit::TestRedis;
use projector::runner;
use serde_json::{json, Value};

/// (status, balance, answered after the signal) of one balance read.
type Outcome = (u16, Option<i64>, bool);

#[derive(Clone)]
struct Reader {
    http: reqwest::Client,
    url: String,
    token: String,
    signalled: Arc<OnceLock<()>>,
}

impl Reader {
    /// One balance read; `None` when the connection was refused or cut.
    async fn read(&self, min_position: Option<&str>) -> Option<Outcome> {
        let mut req = self.http.get(&self.url).bearer_auth(&self.token);
        if let Some(p) = min_position {
            req = req.header("X-Tally-Min-Position", p);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let body: Option<Value> = res.json().await.ok();
        Some((status, body.and_then(|b| b["balance"].as_i64()), self.signalled.get().is_some()))
    }
}

#[tokio::test]
async fn sigterm_under_load_answers_every_accepted_read() {
    let cmd = spawn_app().await;
    let redis = TestRedis::start().await.expect("redis");
    let customer = cmd.customer_with_points(100).await;
    let projector = runner::spawn(&cmd.db.url, &redis.url).await.expect("projector");

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_query-api"))
        .env("DATABASE_URL", &cmd.db.url)
        .env("REDIS_URL", &redis.url)
        .env("TALLY_QUERY_ADDR", format!("127.0.0.1:{port}"))
        .env("TALLY_JWT_SECRET", "test-jwt-secret")
        .env("TALLY_RATE_LIMIT_USER", "0")
        .env("TALLY_RATE_LIMIT_ADDR", "0")
        .env("TALLY_MIN_POSITION_WAIT_MS", "10000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn query-api");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let balance = format!("{base}/v1/me/balance");
    for _ in 0..200 {
        let res = http.get(&balance).bearer_auth(&customer.token).send().await;
        if res.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The projector stops; a credit it has not seen makes readers that ask for it wait.
    projector.cancel();
    let res = cmd
        .post(
            &format!("/v1/accounts/{}/adjustments", customer.id),
            Some(&cmd.admin),
            json!({ "delta": 5, "reason": "shutdown test" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let position = res.headers()["x-tally-position"].to_str().expect("position").to_owned();

    let reader = Reader { http, url: balance, token: customer.token.clone(), signalled: Arc::default() };
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (reader, position) = (reader.clone(), position.clone());
            tokio::spawn(async move { reader.read(Some(&position)).await })
        })
        .collect();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move {
                let mut outcomes: Vec<Outcome> = Vec::new();
                // A fresh connection per request: after the signal they are refused.
                while let Some(outcome) = reader.read(None).await {
                    outcomes.push(outcome);
                    if outcomes.len() >= 2_000 {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    reader.signalled.set(()).expect("signalled once");

    // The waiting reads are still being served well past the first drain check (actix
    // polls its draining workers every second): the projector catches up and they get
    // the new balance.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let projector = runner::spawn(&cmd.db.url, &redis.url).await.expect("projector");
    for waiter in waiters {
        let outcome = waiter.await.expect("waiter");
        assert_eq!(outcome, Some((200, Some(105), true)), "an accepted read was answered after the signal");
    }
    let mut answered = 0;
    for client in load {
        for (status, _, _) in client.await.expect("client") {
            assert!(status < 500, "a 5xx while shutting down: {status}");
            answered += 1;
        }
    }
    assert!(answered > 8, "the load ran before the signal");
    let exit = tokio::task::spawn_blocking(move || server.wait()).await.expect("join").expect("wait");
    assert!(exit.success(), "a clean exit: {exit:?}");
    projector.cancel();
}
