//! Exactly-once: whatever happens to the projector, read models equal the events.

use std::sync::Arc;
use std::time::Duration;

use command_api::testkit::spawn_app;
use infra::store;
use infra::testkit::TestRedis;
use projector::batch;
use projector::projections::Projection;
use rand::Rng;

use crate::support::*;

#[tokio::test]
async fn incremental_batches_equal_a_rebuild() {
    let app = spawn_app().await;
    for seed in 0..3 {
        app.random_workload(seed, 60).await;
        assert!(catch_up(&app.db.url).await > 0);
    }
    assert_read_models_match_events(&app).await;
    let client = connect(&app.db.url).await;
    let incremental = dump(&client).await;
    for (table, rows) in &incremental {
        assert!(rows.as_array().is_some_and(|r| !r.is_empty()), "the workload left {table} empty");
    }

    for p in Projection::ALL {
        projector::rebuild::rebuild(&app.db.url, p, false).await.expect("rebuild");
    }
    assert_eq!(dump(&client).await, incremental);
    let generations: Vec<i64> = client
        .query("SELECT generation FROM read.checkpoints", &[])
        .await
        .expect("generations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(generations, vec![1; 4]);
    assert_eq!(catch_up(&app.db.url).await, 0, "the rebuilt checkpoints are at the head");
}

#[tokio::test]
async fn a_batch_that_dies_before_commit_leaves_no_trace() {
    let app = spawn_app().await;
    app.random_workload(7, 80).await;
    let mut client = connect(&app.db.url).await;
    // Another test's open transaction on the same server can hold the safe horizon back.
    for _ in 0..500 {
        let (safe, head) = (
            store::safe_head(&client).await.expect("safe"),
            store::visible_head(&client).await.expect("head"),
        );
        if safe >= head {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for p in Projection::ALL {
        // Everything up to the commit, then the "crash": the transaction is dropped.
        let tx = client.transaction().await.expect("tx");
        batch::lock_batch(&tx, p).await.expect("lock");
        let (after, _) = batch::checkpoint(&tx, p).await.expect("checkpoint");
        let events = store::read_all(&tx, after, 10_000).await.expect("read");
        assert!(!events.is_empty());
        projector::projections::apply(p, &tx, &events).await.expect("apply");
        drop(tx);
    }
    let empty = dump(&client).await;
    assert!(empty.values().all(|rows| rows.as_array().is_some_and(Vec::is_empty)), "{empty:?}");
    catch_up(&app.db.url).await;
    assert_read_models_match_events(&app).await;
}

#[tokio::test]
async fn a_projector_killed_at_random_moments_applies_everything_once() {
    let app = Arc::new(spawn_app().await);
    let redis = TestRedis::start().await.expect("redis");
    let port = free_port();
    let workload = {
        let app = app.clone();
        tokio::spawn(async move {
            for seed in 10..14 {
                app.random_workload(seed, 50).await;
            }
        })
    };
    let mut kills = 0;
    while !workload.is_finished() {
        let mut child = spawn_projector(&app.db.url, &redis.url, port);
        let wait = rand::thread_rng().gen_range(100..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
    }
    workload.await.expect("workload");
    assert!(kills >= 3, "the projector was killed {kills} times");

    let mut child = spawn_projector(&app.db.url, &redis.url, port);
    wait_caught_up(&app.db.url, Duration::from_secs(30)).await;
    child.kill().expect("stop");
    child.wait().expect("reaped");
    assert_read_models_match_events(&app).await;

    let client = connect(&app.db.url).await;
    let survived = dump(&client).await;
    for p in Projection::ALL {
        projector::rebuild::rebuild(&app.db.url, p, false).await.expect("rebuild");
    }
    assert_eq!(dump(&client).await, survived, "the killed-and-restarted result equals a clean rebuild");
}

#[tokio::test]
async fn sigterm_stops_the_daemon_after_its_batch_and_a_restart_misses_nothing() {
    let app = Arc::new(spawn_app().await);
    let redis = TestRedis::start().await.expect("redis");
    let port = free_port();
    let workload = {
        let app = app.clone();
        tokio::spawn(async move { app.random_workload(77, 120).await })
    };
    for _ in 0..3 {
        let mut child = spawn_projector(&app.db.url, &redis.url, port);
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(300..800))).await;
        let pid = child.id().to_string();
        assert!(std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .expect("kill")
            .success());
        let status = child.wait().expect("reaped");
        assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
    }
    workload.await.expect("workload");
    let mut child = spawn_projector(&app.db.url, &redis.url, port);
    wait_caught_up(&app.db.url, Duration::from_secs(30)).await;
    child.kill().expect("stop");
    child.wait().expect("reaped");
    assert_read_models_match_events(&app).await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(["--json", "status"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("status");
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let projections = status["projections"].as_array().expect("projections");
    assert_eq!(projections.len(), 4);
    assert!(projections.iter().all(|p| p["lag_events"] == 0 && p["checkpoint"] == p["head"]), "{status}");
}
