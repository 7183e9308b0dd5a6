//! Refunds and chargebacks: what is left of the purchase's lot comes back, once, and
//! never more than the lot, whatever races it.

use std::sync::Arc;

use domain::account::Account;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{account_stream, body, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_racing_redemptions_of_the_same_lot_never_takes_back_more_than_the_lot() {
    let app = Arc::new(spawn_app().await);
    let product = app.product(10, 1_000).await;
    let package = app.package(100).await;
    for round in 0..5 {
        let c = app.register(&format!("racer{round}")).await;
        let purchase = app.start_purchase(&c, &package).await;
        let paid = json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "p" });
        assert_eq!(app.webhook(&paid).await.status(), StatusCode::OK);
        let refund = json!({ "purchase_id": purchase, "status": "refunded", "payment_ref": "r" });
        // The refund and twelve redemptions of 10 points from a 100-point lot, at once.
        let redemptions = (0..12).map(|_| {
            let (app, token, product) = (app.clone(), c.token.clone(), product.clone());
            async move {
                let res = app
                    .post("/v1/redemptions", Some(&token), json!({ "product_id": product, "quantity": 1 }))
                    .await;
                res.status()
            }
        });
        let refunding = {
            let (app, refund) = (app.clone(), refund.clone());
            async move { app.webhook(&refund).await.status() }
        };
        let (refunded, statuses) = tokio::join!(refunding, join_all(redemptions));
        assert_eq!(refunded, StatusCode::OK);
        let redeemed = statuses.iter().filter(|s| **s == StatusCode::CREATED).count() as i64 * 10;
        assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::UNPROCESSABLE_ENTITY));

        let db = app.db.client().await.expect("db");
        let row = db
            .query_one(
                "SELECT (data->>'points')::int8, (data->>'unrecovered')::int8 FROM es.events \
                 WHERE stream_id = $1 AND event_type = 'PointsClawedBack'",
                &[&account_stream(&c.id)],
            )
            .await
            .expect("one claw-back");
        let (clawed, unrecovered): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(clawed + redeemed, 100, "round {round}: {redeemed} redeemed, {clawed} clawed back");
        assert_eq!(unrecovered, redeemed);
        let account: Account = app.fold(&account_stream(&c.id)).await;
        assert_eq!(account.balance(), 0);

        // Again: a no-op.
        let before = app.event_count().await;
        assert_eq!(app.webhook(&refund).await.status(), StatusCode::OK);
        assert_eq!(app.event_count().await, before);
    }
}

#[tokio::test]
async fn only_a_paid_purchase_can_be_refunded() {
    let app = spawn_app().await;
    let c = app.register("ann").await;
    let package = app.package(100).await;
    let pending = app.start_purchase(&c, &package).await;
    let failed = app.start_purchase(&c, &package).await;
    let fail = json!({ "purchase_id": failed, "status": "failed", "payment_ref": "f", "reason": "declined" });
    assert_eq!(app.webhook(&fail).await.status(), StatusCode::OK);
    let before = app.event_count().await;
    for id in [&pending, &failed] {
        let res = app.webhook(&json!({ "purchase_id": id, "status": "refunded", "payment_ref": "r" })).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: Value = body(res).await;
        assert_eq!(problem["code"], "invalid_state", "{problem}");
    }
    assert_eq!(app.event_count().await, before);

    // Paid, partly spent, refunded: the rest comes back; a late "succeeded" is a no-op.
    let paid = app.start_purchase(&c, &package).await;
    app.webhook(&json!({ "purchase_id": paid, "status": "succeeded", "payment_ref": "p" })).await;
    let product = app.product(30, 5).await;
    let placed =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let redemption = body(placed).await["id"].as_str().expect("id").to_owned();
    let res = app.webhook(&json!({ "purchase_id": paid, "status": "refunded", "payment_ref": "r" })).await;
    assert_eq!((res.status(), body(res).await["status"].clone()), (StatusCode::OK, json!("refunded")));
    let late = app.webhook(&json!({ "purchase_id": paid, "status": "succeeded", "payment_ref": "p" })).await;
    assert_eq!(late.status(), StatusCode::OK);
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 0, "70 clawed back, 30 unrecovered");
    // Cancelling the redemption afterwards gives back no points of the refunded lot.
    let cancel = app.post(&format!("/v1/redemptions/{redemption}/cancel"), Some(&c.token), json!({})).await;
    assert_eq!(cancel.status(), StatusCode::OK);
    let account: Account = app.fold(&account_stream(&c.id)).await;
    assert_eq!(account.balance(), 0, "no double credit");
}
