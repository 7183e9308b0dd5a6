//! Shared by the projector tests: driving projections in-process or as real processes,
//! dumping read models, and checking them against a fresh fold of the events.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use command_api::testkit::TestApp;
use domain::account::Account;
use domain::product::Product;
use infra::store::Checkpoint;
use projector::batch;
use projector::projections::Projection;
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute("SET search_path = read").await.expect("search path");
    client
}

/// Applies batches of every projection in-process until each has passed the newest
/// committed event. The safe read stops below the oldest transaction running anywhere
/// on the server, so another test's open transaction can hold it back for a moment:
/// an empty batch is not yet "caught up".
pub async fn catch_up(url: &str) -> usize {
    let mut client = connect(url).await;
    let newest = client
        .query_opt(
            "SELECT tx_id::text, position FROM es.events ORDER BY tx_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await
        .expect("newest event")
        .map(|r| Checkpoint { tx_id: r.get::<_, &str>(0).parse().expect("xid"), position: r.get(1) });
    let mut applied = 0;
    for _ in 0..3000 {
        for p in Projection::ALL {
            while let Some(b) = batch::step(&mut client, p, 37).await.expect("batch") {
                applied += b.events;
            }
        }
        let mut behind = false;
        for p in Projection::ALL {
            let (at, _) = batch::checkpoint(&client, p).await.expect("checkpoint");
            behind |= newest.is_some_and(|n| n > at);
        }
        if !behind {
            return applied;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the projections never passed the newest event");
}

/// Every read-model table as JSON rows in a stable order (checkpoints excluded).
pub async fn dump(client: &Client) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for table in Projection::ALL.iter().flat_map(|p| p.tables()) {
        let sql = format!(
            "SELECT COALESCE(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]') FROM read.{table} t"
        );
        out.insert(table.to_string(), client.query_one(&sql, &[]).await.expect("dump").get(0));
    }
    out
}

/// Balances equal the sum of their ledger and the fold of the account's events, each
/// points movement has exactly one ledger line, and stock equals the product's fold.
pub async fn assert_read_models_match_events(app: &TestApp) {
    let client = connect(&app.db.url).await;
    let accounts = client
        .query("SELECT stream_id FROM es.streams WHERE stream_id LIKE 'account-%'", &[])
        .await
        .expect("streams");
    assert!(!accounts.is_empty());
    for row in accounts {
        let stream: String = row.get(0);
        let user = uuid::Uuid::parse_str(&stream["account-".len()..]).expect("uuid");
        let folded = app.fold::<Account>(&stream).await.balance();
        let r = client
            .query_one(
                "SELECT b.balance, (SELECT COALESCE(sum(delta), 0)::int8 FROM read.ledger l WHERE l.user_id = $1), \
                        (SELECT count(*) FROM read.ledger l WHERE l.user_id = $1), \
                        (SELECT count(*) FROM es.events WHERE stream_id = $2 \
                           AND event_type NOT IN ('AccountOpened', 'RoleGranted')) \
                 FROM read.balances b WHERE b.user_id = $1",
                &[&user, &stream],
            )
            .await
            .expect("balance row");
        let (balance, ledger_sum, lines, movements): (i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!((balance, ledger_sum, lines), (folded, folded, movements), "{stream}");
    }
    let products =
        client.query("SELECT id, on_hand, reserved FROM read.products", &[]).await.expect("products");
    assert!(!products.is_empty());
    for row in products {
        let id: uuid::Uuid = row.get(0);
        let folded = app.fold::<Product>(&format!("product-{id}")).await;
        assert_eq!(
            (row.get::<_, i64>(1), row.get::<_, i64>(2)),
            (folded.on_hand, folded.reserved),
            "product {id}"
        );
    }
    let orders: (i64, i64) = {
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM read.purchases) + (SELECT count(*) FROM read.redemptions), \
                        (SELECT count(*) FROM es.events WHERE event_type IN ('PurchaseStarted', 'RedemptionPlaced'))",
                &[],
            )
            .await
            .expect("orders");
        (r.get(0), r.get(1))
    };
    assert_eq!(orders.0, orders.1, "one order row per order");
}

/// Waits until every projection's checkpoint has reached the store's head.
pub async fn wait_caught_up(url: &str, within: Duration) {
    let client = connect(url).await;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let statuses = projector::status::status(&client).await.expect("status");
        if statuses.iter().all(|s| s.lag_events == 0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "projections did not catch up: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The projector binary as a real process.
pub fn spawn_projector(db_url: &str, redis_url: &str, port: u16) -> Child {
    spawn_projector_with(db_url, redis_url, port, &[])
}

/// [`spawn_projector`] with more environment.
pub fn spawn_projector_with(db_url: &str, redis_url: &str, port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg("run")
        .envs(env.iter().copied())
        .env("DATABASE_URL", db_url)
        .env("REDIS_URL", redis_url)
        .env("TALLY_PROJECTOR_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn projector")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The projector's /healthz: projection name → "active" / "standby".
pub async fn roles(port: u16) -> Option<BTreeMap<String, String>> {
    let res = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.ok()?;
    let body: Value = res.json().await.ok()?;
    serde_json::from_value(body["projections"].clone()).ok()
}
