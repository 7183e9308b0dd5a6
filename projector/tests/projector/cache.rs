//! Redis is a derived cache: an outage stalls nothing, and the cache is repaired.

use std::time::Duration;

use command_api::testkit::spawn_app;
use fred::prelude::{Client as Redis, KeysInterface};
use infra::read_model;
use infra::testkit::TestRedis;
use infra::views::{self, BalanceDoc, ProductDoc};
use projector::runner;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// Starts the projector daemon in-process; cancel the token to stop it.
pub async fn start_projector(db_url: &str, redis_url: &str) -> CancellationToken {
    runner::spawn(db_url, redis_url).await.expect("projector")
}

/// The first difference between Redis and Postgres, if any.
async fn cache_drift(redis: &Redis, db_url: &str) -> Option<String> {
    let client = connect(db_url).await;
    for row in client.query("SELECT * FROM read.balances", &[]).await.expect("balances") {
        let want = views::balance_from_row(&row);
        let got: Option<String> = redis.get(read_model::balance_key(want.user_id)).await.ok()?;
        let got: Option<BalanceDoc> = got.and_then(|s| serde_json::from_str(&s).ok());
        if got.as_ref() != Some(&want) {
            return Some(format!("balance {}: cached {got:?}, Postgres {want:?}", want.user_id));
        }
    }
    let sql = format!("SELECT {} FROM read.products p", views::PRODUCT_COLUMNS);
    for row in client.query(&sql, &[]).await.expect("products") {
        let want = ProductDoc::from_row(&row);
        let got: Option<String> = redis.get(read_model::product_key(want.id)).await.ok()?;
        let got: Option<ProductDoc> = got.and_then(|s| serde_json::from_str(&s).ok());
        if got.as_ref() != Some(&want) {
            return Some(format!("product {}: cached {got:?}, Postgres {want:?}", want.id));
        }
    }
    let version: Option<i64> = redis.get(read_model::CATALOG_VERSION_KEY).await.ok()?;
    version.is_none().then(|| "no catalog version".to_owned())
}

pub async fn wait_cache_matches(redis: &Redis, db_url: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match cache_drift(redis, db_url).await {
            None => return,
            Some(drift) if tokio::time::Instant::now() > deadline => panic!("cache never matched: {drift}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn a_redis_outage_stalls_nothing_and_the_cache_is_repaired() {
    let app = spawn_app().await;
    let mut redis = TestRedis::start().await.expect("redis");
    let shutdown = start_projector(&app.db.url, &redis.url).await;
    let reader = infra::cache::connect(&redis.url).await.expect("reader");

    app.random_workload(1, 60).await;
    wait_caught_up(&app.db.url, Duration::from_secs(10)).await;
    wait_cache_matches(&reader, &app.db.url, Duration::from_secs(10)).await;
    let before = dump(&connect(&app.db.url).await).await;

    redis.stop().await.expect("stop redis");
    app.random_workload(2, 80).await;
    wait_caught_up(&app.db.url, Duration::from_secs(10)).await;
    assert_read_models_match_events(&app).await;
    let after = dump(&connect(&app.db.url).await).await;
    assert_ne!(before["balances"], after["balances"], "balances moved while Redis was down");
    assert_ne!(before["products"], after["products"], "products moved while Redis was down");

    // Redis comes back with the entries it saved before the outage, now stale.
    redis.restart().await.expect("restart redis");
    wait_cache_matches(&reader, &app.db.url, Duration::from_secs(15)).await;
    shutdown.cancel();
}
