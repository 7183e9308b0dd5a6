//! The webhook dispatcher as a real process: killed with SIGKILL in the middle of a
//! delivery, its hot standby (a second `projector run`) takes over and re-sends at most
//! that one delivery.

use std::collections::HashMap;
use std::time::Duration;

use command_api::testkit::{feed_order, spawn_app_with, Mode, Receiver};
use infra::testkit::TestRedis;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn kill_9_mid_delivery_hands_over_to_the_standby_and_duplicates_at_most_the_delivery_in_flight() {
    let app = spawn_app_with(&[("TALLY_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let redis = TestRedis::start().await.expect("redis");
    // Each request is held for a while: there is nearly always one in flight.
    let receiver = Receiver::start(Mode::Slow(Duration::from_millis(300))).await;
    let res = app
        .post(
            "/v1/webhook-endpoints",
            Some(&app.admin),
            json!({ "url": receiver.url, "event_types": ["purchase.paid", "points.credited"] }),
        )
        .await;
    assert_eq!(res.status(), 201);
    for _ in 0..8 {
        app.customer_with_points(100).await;
    }
    let env = [("TALLY_WEBHOOK_ALLOW_PRIVATE", "true"), ("RUST_LOG", "warn")];
    let mut projector = spawn_projector_with(&app.db.url, &redis.url, free_port(), &env);
    for _ in 0..400 {
        if receiver.received().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A second instance waits as a standby; then the active one dies mid-delivery.
    let mut standby = spawn_projector_with(&app.db.url, &redis.url, free_port(), &env);
    tokio::time::sleep(Duration::from_millis(300)).await;
    projector.kill().expect("SIGKILL");
    projector.wait().expect("reaped");
    let before = receiver.received().len();
    assert!((4..16).contains(&before), "killed mid-stream, after {before} requests");
    let projector = &mut standby;
    let got = receiver.wait_for(Duration::from_secs(60), |got| {
        got.iter().map(|r| r.id.as_str()).collect::<std::collections::HashSet<_>>().len() == 16
    });
    let got = got.await;
    projector.kill().expect("stop");
    projector.wait().expect("reaped");
    let mut times: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *times.entry(r.id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.len() <= 1 && duplicated.iter().all(|(_, n)| **n == 2), "{duplicated:?}");
    let order = feed_order(&app.db.client().await.expect("db"), &got).await;
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "still in the feed's order: {order:?}");
}
