//! One active instance per projection; the standby takes over when it dies.

use std::time::Duration;

use command_api::testkit::spawn_app;
use infra::testkit::TestRedis;
use projector::projections::Projection;

use crate::support::*;

/// Events this instance applied to `projection`, from its /metrics.
async fn applied(port: u16, projection: &str) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let series = format!("tally_projection_events_total{{projection=\"{projection}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse().expect("number"))
}

async fn wait_for_roles(port: u16, role: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(roles) = roles(port).await {
            if roles.len() == Projection::ALL.len() && roles.values().all(|r| r == role) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "instance on {port} never became {role}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn of_two_instances_one_applies_and_the_other_takes_over_when_it_dies() {
    let app = spawn_app().await;
    let redis = TestRedis::start().await.expect("redis");
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = spawn_projector(&app.db.url, &redis.url, port_a);
    wait_for_roles(port_a, "active", Duration::from_secs(10)).await;
    let mut b = spawn_projector(&app.db.url, &redis.url, port_b);
    wait_for_roles(port_b, "standby", Duration::from_secs(10)).await;

    app.random_workload(3, 60).await;
    wait_caught_up(&app.db.url, Duration::from_secs(10)).await;
    for p in Projection::ALL {
        assert!(applied(port_a, p.name()).await > 0, "A applies {p}");
        assert_eq!(applied(port_b, p.name()).await, 0, "the standby applies nothing to {p}");
    }

    a.kill().expect("kill A");
    a.wait().expect("reaped");
    wait_for_roles(port_b, "active", Duration::from_secs(5)).await;
    app.random_workload(4, 60).await;
    wait_caught_up(&app.db.url, Duration::from_secs(10)).await;
    assert!(applied(port_b, "accounts").await > 0, "B took over");
    assert_read_models_match_events(&app).await;
    b.kill().expect("kill B");
    b.wait().expect("reaped");
}
