//! `REDIS_URL` naming a Redis Cluster: a real local cluster of three masters. The
//! caches fill across the nodes, reads use them, and with a node killed every read
//! falls back to Postgres and answers the same.

use infra::testkit::TestRedisCluster;
use serde_json::{json, Value};

use crate::support::*;

fn hits(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("tally_cache_lookups_total{outcome=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_caches_work_on_a_cluster_and_reads_answer_the_same_with_a_node_down() {
    let mut cluster = TestRedisCluster::start().await.expect("cluster");
    let s = stack_with(&[("REDIS_URL", cluster.url.clone())]).await;
    let c = s.cmd.customer_with_points(100).await;
    let product = s.cmd.product(10, 5).await;
    let res =
        s.cmd.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 2 })).await;
    assert_eq!(res.status(), 201);
    let at = position(&res);
    let paths = [
        "/v1/me/balance".to_owned(),
        format!("/v1/accounts/{}/balance", c.id),
        format!("/v1/accounts/{}/ledger", c.id),
        format!("/v1/products/{product}"),
        "/v1/products?q=mug".into(),
        "/v1/products".into(),
        "/v1/categories".into(),
    ];
    let mut want = Vec::new();
    for p in &paths {
        want.push(s.read(p, &c.token, &at).await);
    }
    assert_eq!(want[0]["balance"], 80);

    // The projector wrote the documents into the cluster, each on its slot's node.
    let balance_key = format!("tally:balance:{}", c.id);
    let product_key = format!("tally:{{catalog}}:product:{product}");
    for _ in 0..100 {
        if cluster
            .cli(cluster.ports[0], &["GET", &balance_key])
            .await
            .expect("cli")
            .contains("\"balance\":80")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cached = cluster.cli(cluster.ports[0], &["GET", &balance_key]).await.expect("cli");
    assert!(cached.contains("\"balance\":80"), "{cached}");
    assert!(cluster
        .cli(cluster.ports[1], &["GET", &product_key])
        .await
        .expect("cli")
        .contains("\"available\":3"));

    // Reads without a position are served from the cluster, with the same answers.
    let before = hits(&s.get("/metrics", None, &[]).await.text().await.expect("metrics"));
    for (p, w) in paths.iter().zip(&want) {
        let res = s.get(p, Some(&c.token), &[]).await;
        assert_eq!(res.status(), 200, "{p}");
        assert_eq!(&res.json::<Value>().await.expect("json"), w, "{p}");
    }
    let after = hits(&s.get("/metrics", None, &[]).await.text().await.expect("metrics"));
    assert!(after >= before + 2.0, "cache hits went from {before} to {after}");

    // Kill the node holding the balance, then the one holding the catalog if another.
    let balance_node = cluster.owner_of(&balance_key).await.expect("owner");
    let catalog_node = cluster.owner_of(&product_key).await.expect("owner");
    cluster.kill(balance_node);
    for round in 0..2 {
        for (p, w) in paths.iter().zip(&want) {
            let res = s.get(p, Some(&c.token), &[]).await;
            assert_eq!(res.status(), 200, "{p}");
            assert_eq!(&res.json::<Value>().await.expect("json"), w, "{p}, round {round}");
            assert_eq!(&s.read(p, &c.token, &at).await, w, "{p} at a position, round {round}");
        }
        cluster.kill(catalog_node);
    }

    // Writes go on; reads at their position see them.
    let res =
        s.cmd.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(res.status(), 201);
    let at = position(&res);
    assert_eq!(s.read("/v1/me/balance", &c.token, &at).await["balance"], 70);
    assert_eq!(s.read(&format!("/v1/products/{product}"), &c.token, &at).await["available"], 2);
}
