//! With Redis down every endpoint still answers with the right data.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn every_endpoint_answers_the_same_with_redis_down() {
    let mut s = stack().await;
    let c = s.cmd.customer_with_points(100).await;
    let product = s.cmd.product(10, 5).await;
    let res =
        s.cmd.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 2 })).await;
    let redemption = res.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let at = s.head().await;
    let paths = [
        "/v1/me/balance".to_owned(),
        format!("/v1/accounts/{}/balance", c.id),
        format!("/v1/accounts/{}/ledger", c.id),
        format!("/v1/accounts/{}/redemptions", c.id),
        format!("/v1/redemptions/{redemption}"),
        "/v1/categories".into(),
        "/v1/products?q=mug".into(),
        format!("/v1/products/{product}"),
        "/v1/credit-packages".into(),
    ];
    let mut up = Vec::new();
    for p in &paths {
        up.push(s.read(p, &c.token, &at).await);
    }
    let reco_up: Value =
        s.post("/v1/recommendations", Some(&c.token), json!({})).await.json().await.expect("json");
    let ready: Value = s.get("/readyz", None, &[]).await.json().await.expect("json");
    assert_eq!(ready["status"], "ready");

    s.redis.stop().await.expect("stop redis");
    for (p, want) in paths.iter().zip(&up) {
        // Without a position (which would skip the cache anyway) and with one.
        let res = s.get(p, Some(&c.token), &[]).await;
        assert_eq!(res.status(), 200, "{p}");
        assert_eq!(&res.json::<Value>().await.expect("json"), want, "{p}");
        assert_eq!(&s.read(p, &c.token, &at).await, want, "{p}");
    }
    let reco_down: Value =
        s.post("/v1/recommendations", Some(&c.token), json!({})).await.json().await.expect("json");
    // Every answer is a new exposure with its own id; the rest is the same.
    let without_id = |mut v: Value| {
        assert!(v
            .as_object_mut()
            .and_then(|o| o.remove("recommendation_id"))
            .is_some_and(|id| id.is_string()));
        v
    };
    assert_eq!(without_id(reco_down), without_id(reco_up));
    assert_eq!(up[0]["balance"], 80);
    let ready = s.get("/readyz", None, &[]).await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!((ready["status"].as_str(), ready["redis"].as_str()), (Some("degraded"), Some("down")));
}
