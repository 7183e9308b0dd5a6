//! Outbound webhooks end to end: the command API subscribes, the projector's dispatcher
//! delivers to real local receivers, the query API shows the deliveries.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::Utc;
use command_api::testkit::{feed_order, Mode, Received, Receiver};
use infra::webhooks::{verify, PUBLIC_TYPES};
use serde_json::{json, Value};

use crate::support::*;

async fn subscribe(s: &Stack, url: &str, types: &[&str]) -> (String, String) {
    let res = s
        .cmd
        .post(
            "/v1/webhook-endpoints",
            Some(&s.cmd.admin),
            json!({ "url": url, "event_types": types, "description": "test" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    (body["id"].as_str().expect("id").to_owned(), body["secret"].as_str().expect("secret").to_owned())
}

fn by_id(got: &[Received]) -> HashMap<String, Vec<&Received>> {
    let mut map: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in got {
        map.entry(r.id.clone()).or_default().push(r);
    }
    map
}

async fn paid_customer(s: &Stack, package: &str) -> command_api::testkit::Customer {
    let c = s.cmd.register("hooked").await;
    let purchase = s.cmd.start_purchase(&c, package).await;
    let paid = json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "pay" });
    assert_eq!(s.cmd.webhook(&paid).await.status(), 200);
    c
}

/// Every public type, from the commands (and the expiry sweep and the offer clock)
/// that cause them.
async fn every_kind_of_event(s: &Stack) {
    let package = s
        .cmd
        .create(
            "/v1/credit-packages",
            json!({ "name": "Month", "description": "", "price": "5.00", "currency": "EUR", "points": 500, "points_valid_days": 30 }),
        )
        .await;
    let c1 = paid_customer(s, &package).await; // purchase.paid, points.credited
    let c2 = s.cmd.register("declined").await;
    let failed = s.cmd.start_purchase(&c2, &package).await;
    let fail = json!({ "purchase_id": failed, "status": "failed", "payment_ref": "f", "reason": "declined" });
    assert_eq!(s.cmd.webhook(&fail).await.status(), 200); // purchase.failed
    let c3 = paid_customer(s, &package).await;
    let refunded =
        s.cmd.post("/v1/credit-purchases", Some(&c3.token), json!({ "package_id": package })).await;
    let refunded = refunded.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let paid = json!({ "purchase_id": refunded, "status": "succeeded", "payment_ref": "p3" });
    assert_eq!(s.cmd.webhook(&paid).await.status(), 200);
    let refund = json!({ "purchase_id": refunded, "status": "refunded", "payment_ref": "r3" });
    assert_eq!(s.cmd.webhook(&refund).await.status(), 200); // purchase.refunded, points.clawed_back

    // Stock 12: fulfil one, cancel one, then two more take it from 10 to 9 available.
    let product = s.cmd.product(100, 12).await;
    let first = s.cmd.redeem(&c1.token, &product).await.expect("placed"); // redemption.placed, points.debited
    let res = s.cmd.post(&format!("/v1/redemptions/{first}/fulfil"), Some(&s.cmd.admin), json!({})).await;
    assert_eq!(res.status(), 200); // redemption.fulfilled
    let second = s.cmd.redeem(&c1.token, &product).await.expect("placed");
    let res = s.cmd.post(&format!("/v1/redemptions/{second}/cancel"), Some(&c1.token), json!({})).await;
    assert_eq!(res.status(), 200); // redemption.cancelled, points.refunded
    s.cmd.redeem(&c1.token, &product).await.expect("placed");
    s.cmd.redeem(&c1.token, &product).await.expect("placed"); // product.low_stock
    let adjust = json!({ "delta": 5, "reason": "goodwill" });
    let res = s.cmd.post(&format!("/v1/accounts/{}/adjustments", c1.id), Some(&s.cmd.admin), adjust).await;
    assert_eq!(res.status(), 201, "adjustment"); // points.adjusted

    // An offer on for two seconds: offer.started now, offer.ended when it is over.
    let other = s.cmd.product(100, 50).await;
    let offer = json!({ "product_id": other, "point_cost": 50, "starts_at": Utc::now() - chrono::Duration::seconds(1),
                        "ends_at": Utc::now() + chrono::Duration::seconds(2) });
    s.cmd.create("/v1/offers", offer).await;

    // The expiry sweep, its clock moved: notice at 24 days, expiry at 31.
    s.head().await;
    let pool = infra::db::pool(&s.cmd.db.url, 2).expect("pool");
    wait_balances_projected(s, &[&c1.id]).await;
    let week = chrono::Duration::days(7);
    let noticed =
        projector::expiry::sweep(&pool, Utc::now() + chrono::Duration::days(24), week).await.expect("sweep");
    assert!(noticed.noticed >= 1); // points.expiring
    let expired =
        projector::expiry::sweep(&pool, Utc::now() + chrono::Duration::days(31), week).await.expect("sweep");
    assert!(expired.expired >= 1); // points.expired
}

/// Waits until the accounts projection has a due time for each account.
async fn wait_balances_projected(s: &Stack, users: &[&str]) {
    let client = s.cmd.db.client().await.expect("client");
    for _ in 0..400 {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM read.balances WHERE user_id::text = ANY($1) AND next_expiry IS NOT NULL",
                &[&users.to_vec()],
            )
            .await
            .expect("count")
            .get(0);
        if n == users.len() as i64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("balances never projected");
}

#[tokio::test]
async fn every_public_type_arrives_once_per_endpoint_signed_and_a_retry_keeps_its_id() {
    let s = stack().await;
    let all = Receiver::start(Mode::FailFirst).await;
    let few = Receiver::start(Mode::Accept).await;
    let (all_id, all_secret) = subscribe(&s, &all.url, &PUBLIC_TYPES).await;
    let (_, few_secret) = subscribe(&s, &few.url, &["redemption.placed", "points.debited"]).await;

    every_kind_of_event(&s).await;

    let every_type: BTreeSet<&str> = PUBLIC_TYPES.into_iter().collect();
    let got = all
        .wait_for(Duration::from_secs(60), |got| {
            got.iter().map(|r| r.event_type.as_str()).collect::<BTreeSet<_>>() == every_type
        })
        .await;
    // Accepted once each; each first refused, then re-sent with the same id and body.
    let received = all.received();
    for (id, accepted) in by_id(&got) {
        assert_eq!(accepted.len(), 1, "{id} accepted once");
        let attempts: Vec<&Received> = received.iter().filter(|r| r.id == id).collect();
        assert_eq!(attempts.len(), 2, "{id}: refused once, then accepted");
        assert_eq!(attempts[0].body, attempts[1].body, "a retry sends the same body");
    }
    for r in &received {
        assert_eq!(
            verify(Some(&r.signature), &all_secret, r.body.as_bytes(), Utc::now().timestamp(), 300),
            Ok(())
        );
        let keys: BTreeSet<&str> =
            r.payload.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["created_at", "data", "id", "position", "type"].into_iter().collect());
        assert!(!r.body.contains('@'), "no e-mail addresses: {}", r.body);
    }

    // The narrow endpoint got its two types only, once each.
    let narrow = few.wait_for(Duration::from_secs(30), |got| got.len() >= 8).await;
    assert!(narrow.iter().all(|r| r.event_type == "redemption.placed" || r.event_type == "points.debited"));
    assert!(by_id(&narrow).values().all(|v| v.len() == 1));
    assert_eq!(narrow.len(), 8, "four redemptions, each placed and debited");
    for r in &narrow {
        assert_eq!(
            verify(Some(&r.signature), &few_secret, r.body.as_bytes(), Utc::now().timestamp(), 300),
            Ok(())
        );
    }

    // The deliveries log says the same.
    let log: Value = s
        .get(&format!("/v1/webhook-endpoints/{all_id}/deliveries?limit=200"), Some(&s.cmd.admin), &[])
        .await
        .json()
        .await
        .expect("json");
    let items = log["items"].as_array().expect("items");
    assert_eq!(items.len(), got.len());
    assert!(
        items
            .iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 2 && d["last_status_code"] == 200),
        "{log}"
    );
    let listed: Value =
        s.get("/v1/webhook-endpoints", Some(&s.cmd.admin), &[]).await.json().await.expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(&all_secret), "the list never shows a secret");
}

/// Redemptions of one unit by `n` fresh customers: purchase.paid, points.credited,
/// redemption.placed and points.debited each.
async fn orders(s: &Stack, package: &str, product: &str, n: usize) {
    for _ in 0..n {
        let c = paid_customer(s, package).await;
        s.cmd.redeem(&c.token, product).await.expect("placed");
    }
}

#[tokio::test]
async fn an_outage_of_30_seconds_loses_nothing_keeps_order_and_delays_no_one_else() {
    let s = stack().await;
    let down = Receiver::start(Mode::Fail).await;
    let up = Receiver::start(Mode::Accept).await;
    let types = ["purchase.paid", "points.credited", "redemption.placed", "points.debited"];
    subscribe(&s, &down.url, &types).await;
    subscribe(&s, &up.url, &types).await;
    let package = s.cmd.package(1000).await;
    let product = s.cmd.product(10, 1000).await;

    let outage = tokio::time::Instant::now();
    orders(&s, &package, &product, 10).await;
    // The healthy endpoint gets everything while the other is down.
    up.wait_for(Duration::from_secs(20), |got| got.len() == 40).await;
    assert!(down.accepted().is_empty() && !down.received().is_empty(), "the dead receiver was tried");
    orders(&s, &package, &product, 5).await;
    tokio::time::sleep_until(outage + Duration::from_secs(30)).await;
    down.set_mode(Mode::Accept);

    let got = down.wait_for(Duration::from_secs(30), |got| got.len() >= 60).await;
    assert_eq!(got.len(), 60, "every event once after the outage");
    let order = feed_order(&s.cmd.db.client().await.expect("db"), &got).await;
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "in the global feed's order: {order:?}");
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 60);
    let healthy: BTreeSet<String> = up.accepted().into_iter().map(|r| r.id).collect();
    assert_eq!(
        ids.into_iter().map(str::to_owned).collect::<BTreeSet<_>>(),
        healthy,
        "both got the same events"
    );
}

#[tokio::test]
async fn replay_resends_from_a_position_and_a_rotated_secret_signs_beside_the_old_one() {
    let s = stack().await;
    let receiver = Receiver::start(Mode::Accept).await;
    // Paid before the endpoint exists: it never hears of this one.
    let package = s.cmd.package(100).await;
    paid_customer(&s, &package).await;
    let (id, old_secret) = subscribe(&s, &receiver.url, &["purchase.paid"]).await;
    for _ in 0..5 {
        paid_customer(&s, &package).await;
    }
    let first = receiver.wait_for(Duration::from_secs(20), |got| got.len() == 5).await;

    let from = first[2].position;
    let res = s
        .cmd
        .post(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            Some(&s.cmd.admin),
            json!({ "from_position": from }),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.expect("json")["queued"], 3);
    let all = receiver.wait_for(Duration::from_secs(20), |got| got.len() == 8).await;
    let replayed: Vec<&str> = all[5..].iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<&str> = first[2..].iter().map(|r| r.id.as_str()).collect();
    assert_eq!(replayed, expected, "the same events, with the same ids, in order");

    let res =
        s.cmd.post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), Some(&s.cmd.admin), json!({})).await;
    assert_eq!(res.status(), 200);
    let new_secret = res.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_secret, old_secret);
    paid_customer(&s, &package).await;
    let after = receiver.wait_for(Duration::from_secs(20), |got| got.len() == 9).await;
    let last = &after[8];
    let now = Utc::now().timestamp();
    assert_eq!(last.signature.matches("v1=").count(), 2, "{}", last.signature);
    assert_eq!(verify(Some(&last.signature), &new_secret, last.body.as_bytes(), now, 300), Ok(()));
    assert_eq!(verify(Some(&last.signature), &old_secret, last.body.as_bytes(), now, 300), Ok(()));
    let listed: Value =
        s.get("/v1/webhook-endpoints", Some(&s.cmd.admin), &[]).await.json().await.expect("json");
    assert!(listed["items"][0]["previous_secret_expires_at"].is_string(), "{listed}");

    // A replay while one delivery waits in the queue (its receiver is down) queues the
    // six events sent before, and not the waiting one a second time.
    receiver.set_mode(Mode::Fail);
    paid_customer(&s, &package).await;
    for _ in 0..200 {
        if receiver.received().len() > 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let res = s
        .cmd
        .post(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            Some(&s.cmd.admin),
            json!({ "from_position": 0 }),
        )
        .await;
    assert_eq!(res.json::<Value>().await.expect("json")["queued"], 6);
    receiver.set_mode(Mode::Accept);
    let all = receiver.wait_for(Duration::from_secs(20), |got| got.len() == 16).await;
    let waiting = &receiver.received()[9].id;
    assert_eq!(all.iter().filter(|r| &r.id == waiting).count(), 1, "the waiting event went out once");

    // Deleted: nothing more is queued for it.
    let res = s
        .cmd
        .send(reqwest::Method::DELETE, &format!("/v1/webhook-endpoints/{id}"), Some(&s.cmd.admin), None, &[])
        .await;
    assert_eq!(res.status(), 204);
    paid_customer(&s, &package).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.accepted().len(), 16);
    let gone = s.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), Some(&s.cmd.admin), &[]).await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn after_24_hours_of_failure_a_delivery_is_dead_lettered_and_the_endpoint_disabled() {
    let s = stack().await;
    let dead = Receiver::start(Mode::Fail).await;
    let (id, _) = subscribe(&s, &dead.url, &["purchase.paid"]).await;
    let package = s.cmd.package(100).await;
    paid_customer(&s, &package).await;
    paid_customer(&s, &package).await;
    for _ in 0..200 {
        if !dead.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A day passes (moved in the database, not slept).
    let client = s.cmd.db.client().await.expect("client");
    client
        .execute("UPDATE webhooks.deliveries SET created_at = created_at - interval '25 hours'", &[])
        .await
        .expect("age deliveries");
    client
        .execute("UPDATE webhooks.endpoints SET failing_since = now() - interval '25 hours'", &[])
        .await
        .expect("age failure");
    let path = format!("/v1/webhook-endpoints/{id}/deliveries?status=dead");
    let mut dead_letters = Value::Null;
    for _ in 0..200 {
        dead_letters = s.get(&path, Some(&s.cmd.admin), &[]).await.json().await.expect("json");
        if dead_letters["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = &dead_letters["items"][0];
    assert_eq!(
        (first["status"].as_str(), first["last_status_code"].as_i64()),
        (Some("dead"), Some(503)),
        "{dead_letters}"
    );
    let listed: Value =
        s.get("/v1/webhook-endpoints", Some(&s.cmd.admin), &[]).await.json().await.expect("json");
    assert_eq!(listed["items"][0]["enabled"], false, "{listed}");
    assert!(listed["items"][0]["disabled_at"].is_string());
    // Disabled: nothing more is tried.
    let tried = dead.received().len();
    paid_customer(&s, &package).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(dead.received().len(), tried);
}
