//! Golden-hour offers under a crowd: limits, units and the window's end are decided in
//! the store, in each redemption's transaction.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::account::Account;
use domain::product::Product;
use domain::OfferId;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{account_stream, body, product_stream, spawn_app, TestApp};

/// Places a redemption; the status and the body (the problem on a refusal).
async fn place(app: &TestApp, token: &str, payload: Value) -> (StatusCode, Value) {
    let res = app.post("/v1/redemptions", Some(token), payload).await;
    (res.status(), body(res).await)
}

fn offer_id(id: &str) -> OfferId {
    OfferId::parse(id).expect("offer id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_requests_by_one_customer_against_a_limit_of_two_get_exactly_two_units() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(100, 50).await;
    let offer = app.offer(&product, 40, None, Some(2)).await;
    let c = app.customer_with_points(10_000).await;
    let payload = json!({ "product_id": product, "quantity": 1 });
    let results = join_all((0..30).map(|_| place(&app, &c.token, payload.clone()))).await;
    let ok: Vec<&Value> = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| b).collect();
    let limited = results.iter().filter(|(_, b)| b["code"] == "offer_limit_reached").count();
    assert_eq!((ok.len(), limited), (2, 28), "{results:?}");
    assert!(ok.iter().all(|b| b["points"] == 40 && b["offer_id"] == offer.as_str()), "{ok:?}");
    let p: Product = app.fold(&product_stream(&product)).await;
    let o = p.offer(offer_id(&offer)).expect("offer");
    assert_eq!((o.sold, p.reserved), (2, 2));
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 10_000 - 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_customers_against_twenty_five_units_buy_exactly_twenty_five() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(100, 100).await;
    let offer = app.offer(&product, 30, Some(25), Some(1)).await;
    let customers = join_all((0..60).map(|_| app.customer_with_points(1_000))).await;
    let payload = json!({ "product_id": product, "quantity": 1 });
    let results = join_all(customers.iter().map(|c| place(&app, &c.token, payload.clone()))).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let sold_out = results.iter().filter(|(_, b)| b["code"] == "offer_sold_out").count();
    assert_eq!((ok, sold_out), (25, 35), "{results:?}");
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!(p.offer(offer_id(&offer)).map(|o| o.sold), Some(25));
    assert_eq!(p.reserved, 25);
    // Past the units, a customer who accepts the list price gets it, whole.
    let late = customers.last().expect("customer");
    let (status, b) =
        place(&app, &late.token, json!({ "product_id": product, "quantity": 2, "offer_only": false })).await;
    assert_eq!(
        (status, b["points"].as_i64(), b["offer_id"].is_null()),
        (StatusCode::CREATED, Some(200), true)
    );
}

/// Redemptions keep arriving across the window's end: each pays one price for all its
/// units, and one that carries `max_points` never pays more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redemption_racing_the_windows_end_pays_one_price_and_max_points_holds() {
    let app = Arc::new(spawn_app().await);
    // Stock and points enough for however many redemptions fit in the 2 s.
    let product = app.product(100, 1_000_000).await;
    let ends_at = Utc::now() + chrono::Duration::milliseconds(1_500);
    let window = json!({ "product_id": product, "point_cost": 60, "starts_at": Utc::now() - chrono::Duration::seconds(5),
                         "ends_at": ends_at });
    app.create("/v1/offers", window).await;
    let customers = join_all((0..12).map(|_| app.customer_with_points(10_000_000))).await;
    let before: i64 = 12 * 10_000_000;
    let runs = customers.iter().enumerate().map(|(i, c)| {
        let (app, product) = (app.clone(), product.clone());
        async move {
            let mut outcomes = Vec::new();
            while Utc::now() < ends_at + chrono::Duration::milliseconds(600) {
                let capped = i % 2 == 0;
                let payload = if capped {
                    json!({ "product_id": product, "quantity": 2, "max_points": 120 })
                } else {
                    json!({ "product_id": product, "quantity": 2 })
                };
                outcomes.push((capped, place(&app, &c.token, payload).await));
            }
            outcomes
        }
    });
    let outcomes: Vec<(bool, (StatusCode, Value))> = join_all(runs).await.into_iter().flatten().collect();
    let mut paid = 0;
    let (mut at_offer, mut at_list, mut refused) = (0, 0, 0);
    for (capped, (status, b)) in &outcomes {
        match status.as_u16() {
            201 => {
                let points = b["points"].as_i64().expect("points");
                assert!(points == 120 || points == 200, "a mixed price: {b}");
                assert_eq!(points == 120, !b["offer_id"].is_null(), "{b}");
                assert!(!capped || points <= 120, "max_points exceeded: {b}");
                paid += points;
                if points == 120 {
                    at_offer += 1
                } else {
                    at_list += 1
                }
            }
            422 => {
                assert!(*capped && b["code"] == "price_changed" && b["points"] == 200, "{b}");
                refused += 1;
            }
            _ => panic!("unexpected answer {status}: {b}"),
        }
    }
    assert!(
        at_offer > 0 && at_list > 0 && refused > 0,
        "the race missed the end: {at_offer}/{at_list}/{refused}"
    );
    let mut balances = 0;
    for c in &customers {
        balances += app.fold::<Account>(&account_stream(&c.id)).await.balance();
    }
    assert_eq!(before - balances, paid, "the debits are exactly the acknowledged prices");
}

#[tokio::test]
async fn a_cancelled_redemption_refunds_what_it_cost_and_gives_the_unit_back_to_the_live_offer() {
    let app = spawn_app().await;
    let product = app.product(100, 10).await;
    let offer = app.offer(&product, 25, Some(1), Some(1)).await;
    let c = app.customer_with_points(500).await;
    let (status, placed) = place(&app, &c.token, json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(
        (status, placed["points"].as_i64(), placed["point_cost"].as_i64()),
        (StatusCode::CREATED, Some(25), Some(25))
    );
    let (_, sold_out) = place(&app, &c.token, json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(sold_out["code"], "offer_sold_out");
    let id = placed["id"].as_str().expect("id");
    let res = app.post(&format!("/v1/redemptions/{id}/cancel"), Some(&c.token), json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 500, "refunded exactly the 25 points it cost");
    let p: Product = app.fold(&product_stream(&product)).await;
    assert_eq!(
        p.offer(offer_id(&offer)).map(|o| (o.sold, o.bought_by(account.user_id.expect("user")))),
        Some((0, 0))
    );
    let (status, again) = place(&app, &c.token, json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!((status, again["points"].as_i64()), (StatusCode::CREATED, Some(25)), "{again}");
}

#[tokio::test]
async fn cancelling_an_offer_ends_it_now_and_is_recorded_with_who_and_why() {
    let app = spawn_app().await;
    let product = app.product(100, 10).await;
    let offer = app.offer(&product, 25, None, None).await;
    let c = app.customer_with_points(500).await;
    let res = app
        .post(&format!("/v1/offers/{offer}/cancel"), Some(&app.admin), json!({ "reason": "pricing error" }))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, b) = place(&app, &c.token, json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(
        (status, b["points"].as_i64(), b["offer_id"].is_null()),
        (StatusCode::CREATED, Some(100), true)
    );
    let client = app.db.client().await.expect("db");
    let row = client
        .query_one(
            "SELECT data->>'reason', metadata->'actor'->>'role' FROM es.events WHERE event_type = 'OfferCancelled'",
            &[],
        )
        .await
        .expect("cancel event");
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("pricing error".into(), "admin".into()));
    // A new offer may follow at once: the cancelled one no longer holds its window.
    let next = app
        .post("/v1/offers", Some(&app.admin), command_api::testkit::offer_body(&product, 30, None, None))
        .await;
    assert_eq!(next.status(), StatusCode::CREATED);
}
