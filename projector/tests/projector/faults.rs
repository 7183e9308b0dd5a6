//! Restarts under a stream of commands: the Postgres server process itself is stopped
//! hard (`pg_ctl -m immediate`) and started again, then Redis is restarted with stale
//! saved entries. The services reconnect by themselves, no request gets a 500, every
//! acknowledged position is in the store, the read models reconcile and the cache is
//! repaired.

use std::sync::Arc;
use std::time::Duration;

use command_api::testkit::{spawn_app_on, TestApp};
use infra::store::Checkpoint;
use infra::testkit::{TestDb, TestPostgres, TestRedis};
use serde_json::{json, Value};

use crate::cache::{start_projector, wait_cache_matches};
use crate::support::*;

/// `n` redemptions one after another; each outcome's status and position header.
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
async fn restarting_postgres_and_redis_under_load_loses_no_acknowledged_command() {
    let pg = TestPostgres::start().await.expect("a private Postgres server");
    let db = TestDb::on(&pg.admin_url).await.expect("test database");
    let app = Arc::new(spawn_app_on(db, &[]).await);
    let mut redis = TestRedis::start().await.expect("redis");
    let shutdown = start_projector(&app.db.url, &redis.url).await;
    let product = app.product(1, 10_000).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let customer = app.customer_with_points(1_000).await;
        streams.push(tokio::spawn(redeem_stream(app.clone(), customer.token, product.clone(), 120)));
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    pg.restart().await.expect("restart Postgres");
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.stop().await.expect("stop Redis");
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart().await.expect("start Redis");

    let mut outcomes = Vec::new();
    for stream in streams {
        let mine = stream.await.expect("stream");
        assert_eq!(mine.last().map(|(s, _)| *s), Some(201), "the command API reconnected by itself");
        outcomes.extend(mine);
    }
    let statuses: Vec<u16> = outcomes.iter().map(|(s, _)| *s).collect();
    assert!(statuses.iter().all(|s| [201, 409, 503].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&503), "the restart was felt: {statuses:?}");

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

    // The projector reconnected to both: its models match the events, and Redis, which
    // came back with entries saved before the redemptions, is repaired.
    wait_caught_up(&app.db.url, Duration::from_secs(30)).await;
    assert_read_models_match_events(&app).await;
    let drifts = projector::reconcile::reconcile(&client).await.expect("reconcile");
    assert!(drifts.is_empty(), "{drifts:?}");
    let reader = infra::cache::connect(&redis.url).await.expect("reader");
    wait_cache_matches(&reader, &app.db.url, Duration::from_secs(20)).await;
    shutdown.cancel();
}
