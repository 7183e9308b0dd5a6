//! The back office's reads (design §10): a category, delisted products for admins,
//! an account's purchases, the fulfilment queue, expiring points, and paging through a
//! catalog of 5,000 products with no hidden cap.

use std::collections::HashSet;

use futures_util::{stream, StreamExt};
use serde_json::{json, Value};

use crate::support::*;

async fn all_ids(s: &Stack, query: &str, token: &str, at: &str) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("{query}&limit=200&cursor={c}"),
            None => format!("{query}&limit=200"),
        };
        let page = s.read(&path, token, at).await;
        ids.extend(
            page["items"].as_array().expect("items").iter().map(|i| i["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn five_thousand_products_page_to_the_end_with_and_without_q() {
    let s = stack().await;
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Lamps", "description": "" })).await;
    let created: Vec<String> = stream::iter(0..5_000)
        .map(|i| {
            let body = json!({ "name": format!("Lamp {i:04}"), "description": "A warm lamp", "category_id": cat, "point_cost": 1 + i % 50 });
            let cmd = &s.cmd;
            async move { cmd.create("/v1/products", body).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let at = s.head().await;
    let want: HashSet<&String> = created.iter().collect();
    for query in ["/v1/products?", "/v1/products?q=warm%20lamp"] {
        let ids = all_ids(&s, query, "", &at).await;
        assert_eq!(ids.len(), 5_000, "{query}: every product once");
        assert_eq!(ids.iter().collect::<HashSet<_>>(), want, "{query}: no duplicates, no gaps");
    }
}

#[tokio::test]
async fn the_back_office_reads_categories_delisted_products_purchases_and_the_queue() {
    let s = stack().await;
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Mugs", "description": "Stoneware" })).await;
    let product = |name: &str| json!({ "name": name, "description": "", "category_id": cat, "point_cost": 10, "initial_stock": 9 });
    let (mug, cup) = (
        s.cmd.create("/v1/products", product("Mug")).await,
        s.cmd.create("/v1/products", product("Cup")).await,
    );
    let gone = s.cmd.create("/v1/products", product("Old mug")).await;
    s.cmd.post(&format!("/v1/products/{gone}/delist"), Some(&s.cmd.admin), json!({})).await;

    // Two purchases (one expiring in 30 days, paid; one pending), then redemptions.
    let c = s.cmd.register("ann").await;
    let expiring = s.cmd.create("/v1/credit-packages", json!({ "name": "Month", "description": "", "price": "5.00", "currency": "EUR", "points": 100, "points_valid_days": 30 })).await;
    let paid = s.cmd.start_purchase(&c, &expiring).await;
    s.cmd.webhook(&json!({ "purchase_id": paid, "status": "succeeded", "payment_ref": "p-1" })).await;
    let pending = s.cmd.start_purchase(&c, &s.cmd.package(50).await).await;
    let mut placed = Vec::new();
    for p in [&mug, &cup, &mug] {
        let res =
            s.cmd.post("/v1/redemptions", Some(&c.token), json!({ "product_id": p, "quantity": 1 })).await;
        placed.push(res.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned());
    }
    s.cmd.post(&format!("/v1/redemptions/{}/fulfil", placed[1]), Some(&s.cmd.admin), json!({})).await;
    let at = s.head().await;
    let admin = s.cmd.admin.clone();

    let one = s.read(&format!("/v1/categories/{cat}"), "", &at).await;
    assert_eq!((one["name"].as_str(), one["product_count"].as_i64()), (Some("Mugs"), Some(2)), "{one}");
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(s.get(&format!("/v1/categories/{unknown}"), None, &[]).await.status(), 404);

    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(names(&s.read("/v1/products?", "", &at).await), ["Cup", "Mug"]);
    assert_eq!(
        names(&s.read("/v1/products?include_inactive=true", &admin, &at).await),
        ["Cup", "Mug", "Old mug"]
    );
    assert_eq!(s.get("/v1/products?include_inactive=true", None, &[]).await.status(), 401);
    assert_eq!(s.get("/v1/products?include_inactive=true", Some(&c.token), &[]).await.status(), 403);

    let purchases = s.read(&format!("/v1/accounts/{}/purchases", c.id), &c.token, &at).await;
    let items = purchases["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["id"].as_str(), items[0]["status"].as_str()),
        (Some(pending.as_str()), Some("pending"))
    );
    assert!(items[0]["settled_at"].is_null() && items[1]["settled_at"].is_string(), "{purchases}");
    assert_eq!((items[1]["id"].as_str(), items[1]["points"].as_i64()), (Some(paid.as_str()), Some(100)));
    let other = s.cmd.register("bob").await;
    assert_eq!(
        s.get(&format!("/v1/accounts/{}/purchases", c.id), Some(&other.token), &[]).await.status(),
        403
    );

    // The queue: placed ones, oldest first, by product, paged one at a time.
    let queue = s.read("/v1/redemptions?status=placed", &admin, &at).await;
    let ids: Vec<&str> =
        queue["items"].as_array().expect("items").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [placed[0].as_str(), placed[2].as_str()]);
    let first = s.read(&format!("/v1/redemptions?status=placed&product_id={mug}&limit=1"), &admin, &at).await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = s
        .read(&format!("/v1/redemptions?status=placed&product_id={mug}&limit=1&cursor={cursor}"), &admin, &at)
        .await;
    assert_eq!(
        (first["items"][0]["id"].as_str(), second["items"][0]["id"].as_str()),
        (Some(placed[0].as_str()), Some(placed[2].as_str()))
    );
    assert!(second["next_cursor"].is_null());
    let by_user = s.read(&format!("/v1/redemptions?user_id={}", other.id), &admin, &at).await;
    assert_eq!(by_user["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(s.get("/v1/redemptions?status=placed", Some(&c.token), &[]).await.status(), 403);
    for bad in ["status=lost", "product_id=mug", "user_id=1", "limit=0", "cursor=x"] {
        assert_eq!(s.get(&format!("/v1/redemptions?{bad}"), Some(&admin), &[]).await.status(), 422, "{bad}");
    }

    // 100 points in a lot expiring in 30 days, 30 of them spent.
    let balance = s.read("/v1/me/balance", &c.token, &at).await;
    let soon = &balance["expiring"];
    assert_eq!((soon.as_array().map(Vec::len), soon[0]["points"].as_i64()), (Some(1), Some(70)), "{balance}");
    assert!(soon[0]["expires_at"].is_string());
}
