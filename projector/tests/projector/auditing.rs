//! Auditor commands over a real workload: time travel and reconciliation.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use command_api::testkit::spawn_app;
use infra::history::balance_as_of;
use serde_json::{json, Value};

use crate::support::*;

async fn instant() -> DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t
}

#[tokio::test]
async fn as_of_balances_equal_a_hand_computation() {
    let app = spawn_app().await;
    let before = instant().await;
    let c = app.register("ada").await;
    let product = app.product(30, 10).await;
    let opened = instant().await;
    let package = app.package(100).await;
    let purchase = app.start_purchase(&c, &package).await;
    app.webhook(&json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "p" })).await;
    let bought = instant().await;
    let res =
        app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    let redemption = res.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let redeemed = instant().await;
    app.post(&format!("/v1/redemptions/{redemption}/cancel"), Some(&c.token), json!({})).await;
    let cancelled = instant().await;
    let adjust = format!("/v1/accounts/{}/adjustments", c.id);
    app.post(&adjust, Some(&app.admin), json!({ "delta": -25, "reason": "chargeback" })).await;
    let docked = instant().await;
    app.post(&adjust, Some(&app.admin), json!({ "delta": 10, "reason": "goodwill" })).await;
    let topped = instant().await;
    app.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    let spent = instant().await;

    let client = connect(&app.db.url).await;
    let user = uuid::Uuid::parse_str(&c.id).expect("uuid");
    assert_eq!(balance_as_of(&client, user, before).await.expect("as of"), None, "no account yet");
    // (instant, balance, earned, spent) by hand.
    let expected = [
        (opened, 0, 0, 0),
        (bought, 100, 100, 0),
        (redeemed, 70, 100, 30),
        (cancelled, 100, 100, 0),
        (docked, 75, 100, 0),
        (topped, 85, 110, 0),
        (spent, 55, 110, 30),
    ];
    for (at, balance, earned, spent) in expected {
        let b = balance_as_of(&client, user, at).await.expect("as of").expect("account");
        assert_eq!((b.balance, b.lifetime_earned, b.lifetime_spent), (balance, earned, spent), "as of {at}");
    }

    // The same through the CLI.
    let out = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(["--json", "audit", "balance", "--user", &c.id, "--as-of", &docked.to_rfc3339()])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("run the CLI");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(b["balance"], 75);

    let out = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(["--json", "audit", "history", "--user", &c.id, "--type", "PointsAdjusted"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("run the CLI");
    assert!(out.status.success());
    let h: Value = serde_json::from_slice(&out.stdout).expect("json");
    let events = h["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e["metadata"]["actor"]["role"] == "admin" && e["data"]["reason"].is_string()));
}

fn reconcile_cli(url: &str) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(["--json", "audit", "reconcile"])
        .env("DATABASE_URL", url)
        .output()
        .expect("run the CLI");
    (out.status.success(), serde_json::from_slice(&out.stdout).expect("json"))
}

#[tokio::test]
async fn reconcile_is_clean_after_a_workload_and_names_exactly_the_corrupted_rows() {
    // The workload redeems under offers and cancels some, so offers are checked too.
    let app = spawn_app().await;
    let w = app.random_workload(42, 150).await;
    catch_up(&app.db.url).await;
    let (clean, report) = reconcile_cli(&app.db.url);
    assert!(clean, "{report}");
    assert_eq!(report["drifts"], json!([]));

    let client = connect(&app.db.url).await;
    let victim = uuid::Uuid::parse_str(&w.customers[1].id).expect("uuid");
    client
        .execute("UPDATE read.balances SET balance = balance + 7 WHERE user_id = $1", &[&victim])
        .await
        .expect("corrupt");
    let redemption: uuid::Uuid = client
        .query_one("SELECT id FROM read.redemptions ORDER BY id LIMIT 1", &[])
        .await
        .expect("a redemption")
        .get(0);
    client
        .execute("UPDATE read.redemptions SET status = 'lost' WHERE id = $1", &[&redemption])
        .await
        .expect("corrupt");
    let offer = uuid::Uuid::parse_str(&w.offers[0]).expect("uuid");
    client
        .execute("UPDATE read.offers SET units_sold = units_sold + 1 WHERE id = $1", &[&offer])
        .await
        .expect("corrupt");

    let (clean, report) = reconcile_cli(&app.db.url);
    assert!(!clean, "exit status 1 on drift");
    let drifts: Vec<(String, String, String)> = report["drifts"]
        .as_array()
        .expect("drifts")
        .iter()
        .map(|d| {
            (
                d["model"].as_str().unwrap_or("").into(),
                d["key"].as_str().unwrap_or("").into(),
                d["field"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        drifts,
        vec![
            ("balances".into(), victim.to_string(), "balance".into()),
            ("offers".into(), offer.to_string(), "units_sold".into()),
            ("redemptions".into(), redemption.to_string(), "status".into()),
        ]
    );
}
