//! A rebuild swaps fresh tables in while the daemon runs and readers keep reading.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use command_api::testkit::spawn_app;
use infra::testkit::TestRedis;
use projector::projections::Projection;

use crate::cache::start_projector;
use crate::support::*;

#[tokio::test]
async fn readers_keep_getting_answers_while_a_rebuild_swaps_tables() {
    let app = spawn_app().await;
    let redis = TestRedis::start().await.expect("redis");
    let shutdown = start_projector(&app.db.url, &redis.url).await;
    for seed in 20..24 {
        app.random_workload(seed, 60).await;
    }
    wait_caught_up(&app.db.url, Duration::from_secs(10)).await;

    let query = "SELECT (SELECT count(*) FROM read.balances), (SELECT sum(balance)::int8 FROM read.balances), \
                        (SELECT count(*) FROM read.products WHERE search @@ plainto_tsquery('english', 'lamp')), \
                        (SELECT count(*) FROM read.redemptions)";
    let client = connect(&app.db.url).await;
    let expected: (i64, i64, i64, i64) = {
        let r = client.query_one(query, &[]).await.expect("query");
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    assert!(expected.0 > 0 && expected.2 > 0);

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, url) = (done.clone(), app.db.url.clone());
        tokio::spawn(async move {
            let client = connect(&url).await;
            let mut answers = 0;
            while !done.load(Ordering::SeqCst) {
                let r = client.query_one(query, &[]).await.expect("a read failed during the rebuild");
                assert_eq!((r.get(0), r.get(1), r.get(2), r.get(3)), expected);
                answers += 1;
            }
            answers
        })
    };
    for _ in 0..3 {
        for p in Projection::ALL {
            projector::rebuild::rebuild(&app.db.url, p, false).await.expect("rebuild");
        }
    }
    done.store(true, Ordering::SeqCst);
    let answers = reader.await.expect("reader");
    assert!(answers > 10, "only {answers} reads ran during the rebuilds");

    // The daemon goes on applying on top of the swapped tables.
    app.random_workload(30, 40).await;
    wait_caught_up(&app.db.url, Duration::from_secs(10)).await;
    assert_read_models_match_events(&app).await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_second_rebuild_of_the_same_projection_is_refused() {
    let app = spawn_app().await;
    app.random_workload(5, 20).await;
    let holder = connect(&app.db.url).await;
    let key = Projection::Accounts.rebuild_lock();
    holder.execute("SELECT pg_advisory_lock($1)", &[&key]).await.expect("hold the rebuild lock");
    let err =
        projector::rebuild::rebuild(&app.db.url, Projection::Accounts, false).await.expect_err("refused");
    assert!(err.to_string().contains("already running"), "{err}");
    projector::rebuild::rebuild(&app.db.url, Projection::Catalog, false)
        .await
        .expect("another projection may rebuild");
    holder.execute("SELECT pg_advisory_unlock($1)", &[&key]).await.expect("release");
    projector::rebuild::rebuild(&app.db.url, Projection::Accounts, false).await.expect("rebuilds once free");
}
