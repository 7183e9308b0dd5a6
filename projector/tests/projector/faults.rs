//! Postgres going away under a stream of commands: every connection of the database
//! killed and new ones refused for a second, as in a restart. The services reconnect
//! by themselves, no request gets a 500, every acknowledged position is in the store,
//! and the read models reconcile.

use std::sync::Arc;
use std::time::Duration;

use command_api::testkit::{spawn_app, TestApp};
use domain::infra::store::Checkpoint;
use domain::infra::testkit::{admin_url, TestRedis};
use serde_json::{json, Value};

use crate::cache::start_projector;
use crate::support::*;

/// Kills every session of `db` and refuses new ones for `outage`.
async fn outage(db: &str, outage: Duration) {
    let admin = connect(&admin_url()).await;
    admin.batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false")).await.expect("refuse");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .expect("terminate");
    tokio::time::sleep(outage).await;
    admin.batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await.expect("allow");
}

async fn redeem_stream(
    app: Arc<TestApp>,
    token: String,
    product: String,
    n: usize,
) -> Vec<(u16, Option<String>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let res =
            app.post("/v1/redemptions", Some(&token), json!({ "product_id": product, "quantity": 1 })).await;
        let status = res.status().as_u16();
        let position = res.headers().get("x-tally-position").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let _ = res.json::<Value>().await;
        out.push((status, position));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

#[tokio::test]
async fn a_database_outage_loses_no_acknowledged_command_and_everything_recovers() {
    let app = Arc::new(spawn_app().await);
    let redis = TestRedis::start().await.expect("redis");
    let shutdown = start_projector(&app.db.url, &redis.url).await;
    let customer = app.customer_with_points(1_000).await;
    let product = app.product(1, 1_000).await;

    let stream = tokio::spawn(redeem_stream(app.clone(), customer.token.clone(), product.clone(), 150));
    tokio::time::sleep(Duration::from_millis(400)).await;
    outage(&app.db.name, Duration::from_secs(1)).await;
    let outcomes = stream.await.expect("stream");

    let statuses: Vec<u16> = outcomes.iter().map(|(s, _)| *s).collect();
    assert!(statuses.iter().all(|s| *s == 201 || *s == 503 || *s == 409), "{statuses:?}");
    assert!(statuses.contains(&503), "the outage was felt: {statuses:?}");
    assert_eq!(statuses.last(), Some(&201), "the command API reconnected by itself");

    let client = connect(&app.db.url).await;
    for (_, position) in outcomes.iter().filter(|(s, _)| *s == 201) {
        let cp = Checkpoint::parse_token(position.as_deref().expect("a position")).expect("token");
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM es.events WHERE position = $1 AND tx_id = $2::text::xid8",
                &[&cp.position, &cp.tx_id.to_string()],
            )
            .await
            .expect("lookup")
            .get(0);
        assert_eq!(found, 1, "acknowledged position {} is in the store", cp.token());
    }

    // The projector reconnected too: it catches up and its models match the events.
    wait_caught_up(&app.db.url, Duration::from_secs(20)).await;
    assert_read_models_match_events(&app).await;
    let drifts = projector::reconcile::reconcile(&client).await.expect("reconcile");
    assert!(drifts.is_empty(), "{drifts:?}");
    shutdown.cancel();
}
