//! The query API on a hot standby (`TALLY_READ_DATABASE_URL`): a real replica made
//! with `pg_basebackup -R`, streaming from a private primary.

use std::time::Duration;

use infra::testkit::{TestDb, TestPostgres};
use serde_json::{json, Value};

use crate::support::*;

async fn ledger_lines(
    s: &Stack,
    who: &command_api::testkit::Customer,
    at: Option<&str>,
) -> reqwest::Response {
    let path = format!("/v1/accounts/{}/ledger", who.id);
    match at {
        Some(at) => s.get(&path, Some(&who.token), &[("X-Tally-Min-Position", at)]).await,
        None => s.get(&path, Some(&who.token), &[]).await,
    }
}

async fn count(res: reqwest::Response) -> usize {
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.expect("json")["items"].as_array().expect("items").len()
}

async fn ready(s: &Stack) -> Value {
    let res = s.get("/readyz", None, &[]).await;
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

/// Waits (up to 15 s) until `/readyz` says reads go to `reads`.
async fn reads_go_to(s: &Stack, reads: &str) -> Value {
    for _ in 0..150 {
        let r = ready(s).await;
        if r["replica"]["reads"] == reads {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reads never went to the {reads}: {}", ready(s).await);
}

/// Waits until the primary's projections have applied everything appended so far.
async fn primary_projected(db_url: &str) {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await.expect("primary");
    tokio::spawn(conn);
    for _ in 0..200 {
        let behind: i64 = client
            .query_one(
                "SELECT count(*) FROM read.checkpoints c WHERE c.projection = 'accounts' \
                 AND c.position < (SELECT max(position) FROM es.events)",
                &[],
            )
            .await
            .expect("checkpoints")
            .get(0);
        if behind == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the primary's accounts projection never caught up");
}

#[tokio::test]
async fn reads_come_from_the_replica_wait_for_its_replay_and_fail_over_while_it_is_down() {
    let primary = TestPostgres::start().await.expect("primary");
    let db = TestDb::on(&primary.admin_url).await.expect("database");
    let replica = primary.start_replica().await.expect("replica");
    let env = [
        ("TALLY_READ_DATABASE_URL", replica.url_of(&db.name)),
        ("TALLY_MIN_POSITION_WAIT_MS", "1000".to_owned()),
    ];
    let s = stack_on(db, &env).await;
    let primary_url = s.cmd.db.url.clone();
    let c = s.cmd.customer_with_points(100).await;
    let product = s.cmd.product(10, 50).await;
    let redeem = || async {
        let res = s
            .cmd
            .post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 }))
            .await;
        assert_eq!(res.status(), 201);
        position(&res)
    };

    // Read-your-writes through the replica.
    let at = s.head().await;
    assert_eq!(count(ledger_lines(&s, &c, Some(&at)).await).await, 1);
    let r = ready(&s).await;
    assert_eq!((r["status"].as_str(), r["replica"]["state"].as_str()), (Some("ready"), Some("up")));
    assert_eq!(r["replica"]["reads"], "replica");
    let metrics = s.get("/metrics", None, &[]).await.text().await.expect("metrics");
    assert!(metrics.contains("tally_replica_lag_seconds ") && metrics.contains("tally_replica_serving 1"));

    // With the replica's replay paused, reads show the replica's (older) rows, and a
    // read at the new position waits for the replica, not the primary.
    let (paused, conn) =
        tokio_postgres::connect(&replica.url_of("postgres"), tokio_postgres::NoTls).await.expect("replica");
    tokio::spawn(conn);
    paused.batch_execute("SELECT pg_wal_replay_pause()").await.expect("pause replay");
    let at = redeem().await;
    primary_projected(&primary_url).await;
    assert_eq!(count(ledger_lines(&s, &c, None).await).await, 1, "served by the paused replica");
    let lagging = ledger_lines(&s, &c, Some(&at)).await;
    assert_eq!(lagging.status(), 503);
    assert_eq!(lagging.json::<Value>().await.expect("json")["code"], "projection_lagging");
    paused.batch_execute("SELECT pg_wal_replay_resume()").await.expect("resume replay");
    assert_eq!(count(ledger_lines(&s, &c, Some(&at)).await).await, 2);

    // Replica down: reads (read-your-writes included) fail over to the primary.
    replica.stop().await.expect("stop the replica");
    assert_eq!(count(ledger_lines(&s, &c, Some(&at)).await).await, 2);
    let at = redeem().await;
    assert_eq!(count(ledger_lines(&s, &c, Some(&at)).await).await, 3);
    let r = reads_go_to(&s, "primary").await;
    assert_eq!((r["status"].as_str(), r["replica"]["state"].as_str()), (Some("degraded"), Some("down")));
    let metrics = s.get("/metrics", None, &[]).await.text().await.expect("metrics");
    assert!(metrics.contains("tally_replica_up 0"), "{metrics}");

    // Back: once it has replayed what readers saw, reads return to it.
    replica.start_again().await.expect("restart the replica");
    reads_go_to(&s, "replica").await;
    assert_eq!(count(ledger_lines(&s, &c, Some(&at)).await).await, 3);
    assert_eq!(count(ledger_lines(&s, &c, None).await).await, 3);
}
