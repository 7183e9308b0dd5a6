//! Offers on the read side: evaluated at the moment of the read, from Redis or Postgres,
//! listed by state, filtered on, and favoured by recommendations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::KeysInterface;
use serde_json::{json, Value};

use crate::support::*;

fn window(product: &str, point_cost: i64, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Value {
    json!({ "product_id": product, "point_cost": point_cost, "starts_at": starts_at, "ends_at": ends_at,
            "units": 5, "per_customer_limit": 2, "title": "Golden hour" })
}

async fn json_of(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"].as_array().expect("items").iter().filter_map(|i| i["id"].as_str()).collect()
}

/// The product document Redis holds, once it mentions `needle`.
async fn cached_doc(redis_url: &str, product: &str, needle: &str) -> String {
    let redis = infra::cache::connect(redis_url).await.expect("redis");
    for _ in 0..200 {
        let doc: Option<String> =
            redis.get(infra::read_model::product_key(product.parse().expect("uuid"))).await.expect("get");
        if let Some(doc) = doc.filter(|d| d.contains(needle)) {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the cache never got the offer");
}

#[tokio::test]
async fn a_product_shows_its_offer_only_inside_the_window_cached_or_not() {
    let s = stack().await;
    let product = s.cmd.product(100, 10).await;
    let other = s.cmd.product(80, 10).await;
    let ends_at = Utc::now() + chrono::Duration::seconds(3);
    let offer = s
        .cmd
        .create("/v1/offers", window(&product, 40, Utc::now() - chrono::Duration::minutes(1), ends_at))
        .await;
    let later = Utc::now() + chrono::Duration::hours(1);
    let upcoming =
        s.cmd.create("/v1/offers", window(&other, 50, later, later + chrono::Duration::hours(1))).await;
    let at = s.head().await;
    let path = format!("/v1/products/{product}");

    let fresh = s.read(&path, "", &at).await;
    assert_eq!(fresh["offer"]["id"], offer.as_str(), "{fresh}");
    assert_eq!(
        (fresh["offer"]["point_cost"].as_i64(), fresh["offer"]["units_left"].as_i64()),
        (Some(40), Some(5))
    );
    assert_eq!(fresh["offer"]["per_customer_limit"], 2);
    assert!(fresh.get("schedule").is_none(), "the schedule stays internal: {fresh}");
    cached_doc(&s.redis.url, &product, &offer).await;
    let cached = json_of(s.get(&path, None, &[]).await).await;
    assert_eq!(cached["offer"]["id"], offer.as_str(), "{cached}");
    assert_eq!(json_of(s.get(&format!("/v1/products/{other}"), None, &[]).await).await["offer"], Value::Null);

    let live = s.read("/v1/offers?state=live", "", &at).await;
    assert_eq!(ids(&live), vec![offer.as_str()]);
    let item = &live["items"][0];
    assert_eq!(
        (item["product"]["id"].as_str(), item["product"]["point_cost"].as_i64()),
        (Some(product.as_str()), Some(100))
    );
    assert!((0..=3).contains(&item["ends_in_seconds"].as_i64().expect("ends_in_seconds")), "{item}");
    assert_eq!(ids(&s.read("/v1/offers?state=upcoming", "", &at).await), vec![upcoming.as_str()]);
    let on_offer = s.read("/v1/products?on_offer=true", "", &at).await;
    assert_eq!(ids(&on_offer), vec![product.as_str()]);
    assert_eq!(on_offer["items"][0]["offer"]["id"], offer.as_str());
    assert!(!ids(&s.read("/v1/products?on_offer=false", "", &at).await).contains(&product.as_str()));

    // One second after the end, no read shows it, though Redis still holds the schedule.
    let wait = (ends_at + chrono::Duration::seconds(1) - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    assert!(cached_doc(&s.redis.url, &product, &offer).await.contains("schedule"));
    assert_eq!(json_of(s.get(&path, None, &[]).await).await["offer"], Value::Null, "cached");
    assert_eq!(s.read(&path, "", &at).await["offer"], Value::Null, "from Postgres");
    let listed = json_of(s.get("/v1/products?limit=200", None, &[]).await).await;
    assert!(listed["items"].as_array().expect("items").iter().all(|p| p["offer"].is_null()), "{listed}");
    assert!(ids(&s.read("/v1/products?on_offer=true", "", &at).await).is_empty());
    assert!(ids(&s.read("/v1/offers?state=live", "", &at).await).is_empty());
    let ended = s.read("/v1/offers?state=ended", "", &at).await;
    assert_eq!((ids(&ended), ended["items"][0]["ends_in_seconds"].as_i64()), (vec![offer.as_str()], Some(0)));

    for bad in ["state=soon", "limit=0", "cursor=nope"] {
        let res = s.get(&format!("/v1/offers?{bad}"), None, &[]).await;
        assert_eq!(res.status(), 422, "{bad}");
        assert_eq!(res.json::<Value>().await.expect("json")["code"], "validation_failed", "{bad}");
    }
}

#[tokio::test]
async fn offers_page_by_state_without_duplicates_or_gaps() {
    let s = stack().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let product = s.cmd.product(100, 10).await;
        let starts = Utc::now() + chrono::Duration::minutes(10 + i);
        created.push(
            s.cmd
                .create("/v1/offers", window(&product, 10, starts, starts + chrono::Duration::hours(1)))
                .await,
        );
    }
    let at = s.head().await;
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/offers?state=upcoming&limit=3&cursor={c}"),
            None => "/v1/offers?state=upcoming&limit=3".to_owned(),
        };
        let page = s.read(&path, "", &at).await;
        seen.extend(ids(&page).into_iter().map(str::to_owned));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, created, "soonest first, each once");
}

#[tokio::test]
async fn recommendations_favour_a_live_offer_the_customer_can_afford_and_say_so() {
    let s = stack().await;
    let c = s.cmd.customer_with_points(50).await;
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Lamps", "description": "" })).await;
    let product = |name: &str, cost: i64| json!({ "name": name, "description": "A lamp", "category_id": cat, "point_cost": cost, "initial_stock": 5 });
    s.cmd.create("/v1/products", product("Desk lamp", 30)).await;
    let deal = s.cmd.create("/v1/products", product("Floor lamp", 120)).await;
    s.cmd
        .create(
            "/v1/offers",
            window(
                &deal,
                45,
                Utc::now() - chrono::Duration::minutes(1),
                Utc::now() + chrono::Duration::hours(1),
            ),
        )
        .await;
    let reco = s.recommend(&c.token, 5).await;
    let first = &reco["products"][0];
    assert_eq!(
        (first["id"].as_str(), first["offer"]["point_cost"].as_i64()),
        (Some(deal.as_str()), Some(45)),
        "{reco}"
    );
    assert!(reco["reason"].as_str().is_some_and(|r| r.contains("on offer at 45 points")), "{reco}");
    assert_eq!(reco["products"].as_array().map(Vec::len), Some(2), "the desk lamp too: {reco}");

    // The redemption records the offer that priced it, and its read shows it.
    let res = s
        .cmd
        .post(
            "/v1/redemptions",
            Some(&c.token),
            json!({ "product_id": deal, "quantity": 1, "max_points": 45 }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let at = position(&res);
    let placed: Value = res.json().await.expect("json");
    let read =
        s.read(&format!("/v1/redemptions/{}", placed["id"].as_str().expect("id")), &c.token, &at).await;
    assert_eq!((read["points"].as_i64(), &read["offer_id"]), (Some(45), &placed["offer_id"]), "{read}");
    assert!(read["offer_id"].is_string(), "{read}");
}
