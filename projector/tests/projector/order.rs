//! The global order under a real race: customers crowding one hot product through the
//! HTTP API, with cancels mixed in, then an auditor's export. Every stream's events must
//! come out in version order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use command_api::testkit::spawn_app;
use futures_util::future::{join, join_all};
use serde_json::{json, Value};

use crate::support::connect;

/// The whole store as `projector audit export` writes it, once the safe horizon has
/// passed every event (other tests' transactions on the server hold it back briefly).
async fn export_all(url: &str) -> Vec<Value> {
    let client = connect(url).await;
    let total: i64 = client.query_one("SELECT count(*) FROM es.events", &[]).await.expect("count").get(0);
    for _ in 0..500 {
        let mut out = Vec::new();
        let written = projector::audit::export(&client, 0, &mut out).await.expect("export");
        if written as i64 == total {
            let text = String::from_utf8(out).expect("utf-8");
            return text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the export never reached the {total} events in the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_customers_on_one_hot_product_export_every_stream_in_version_order() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(10, 1_000).await;
    let customers = join_all((0..40).map(|_| app.customer_with_points(50))).await;
    let placed =
        join_all(customers.iter().flat_map(|c| (0..4).map(|_| app.redeem(&c.token, &product)))).await;
    let ids: Vec<&str> = placed.iter().filter_map(|id| id.as_deref()).collect();
    assert_eq!(ids.len(), 160, "every redemption was affordable and in stock");
    // A second wave: each customer cancels one redemption while redeeming once more, so
    // cancels (which lock the redemption first, then account and product) race placements.
    let cancels = customers.iter().zip(ids.iter().step_by(4)).map(|(c, id)| {
        let app = app.clone();
        async move {
            app.post(&format!("/v1/redemptions/{id}/cancel"), Some(&c.token), json!({}))
                .await
                .status()
                .as_u16()
        }
    });
    let again = customers.iter().map(|c| async { app.redeem_one(&c.token, &product).await.0.as_u16() });
    let (cancels, again) = join(join_all(cancels), join_all(again)).await;
    assert!(cancels.iter().chain(&again).all(|s| *s == 200 || *s == 201), "{cancels:?} {again:?}");

    let events = export_all(&app.db.url).await;
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut inversions = Vec::new();
    for e in &events {
        let (stream, version) = (e["stream_id"].as_str().expect("stream"), e["version"].as_i64().expect("v"));
        let previous = last.insert(stream, version).unwrap_or(0);
        if version != previous + 1 {
            inversions.push(format!("{stream}: v{version} after v{previous}"));
        }
    }
    assert!(
        inversions.is_empty(),
        "{} out of order: {:?}",
        inversions.len(),
        &inversions[..inversions.len().min(10)]
    );
    let product_events = last[format!("product-{product}").as_str()];
    assert_eq!(product_events, 1 + 1 + 160 + 40 + 40, "listed, stocked, 200 reserved, 40 released");
}
