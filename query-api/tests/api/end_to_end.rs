//! Register → buy → webhook → balance → redeem → ledger, stock and status, each read
//! with the command's position and right on the first try.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_customer_reads_each_of_its_writes_on_the_first_try() {
    let s = stack().await;
    let c = s.cmd.register("ann").await;
    let category = s.cmd.create("/v1/categories", json!({ "name": "Kitchen", "description": "Cook" })).await;
    let product = s
        .cmd
        .create(
            "/v1/products",
            json!({ "name": "Teapot", "description": "Blue ceramic teapot", "category_id": category,
                    "point_cost": 40, "initial_stock": 3 }),
        )
        .await;
    let package = s.cmd.package(100).await;
    let purchase = s.cmd.start_purchase(&c, &package).await;
    let paid = s
        .cmd
        .webhook(&json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "pay-9" }))
        .await;
    assert_eq!(paid.status(), 200);
    let at = position(&paid);

    let balance = s.read("/v1/me/balance", &c.token, &at).await;
    assert_eq!(
        balance,
        json!({ "user_id": c.id, "balance": 100, "lifetime_earned": 100, "lifetime_spent": 0, "expiring": [] })
    );
    let bought = s.read(&format!("/v1/credit-purchases/{purchase}"), &c.token, &at).await;
    assert_eq!((bought["status"].as_str(), bought["payment_ref"].as_str()), (Some("paid"), Some("pay-9")));

    let redeemed =
        s.cmd.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 2 })).await;
    assert_eq!(redeemed.status(), 201);
    let at = position(&redeemed);
    let redemption =
        redeemed.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_owned();

    let ledger = s.read(&format!("/v1/accounts/{}/ledger", c.id), &c.token, &at).await;
    let lines: Vec<(String, i64, i64)> = ledger["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().expect("kind").to_owned(),
                l["delta"].as_i64().expect("d"),
                l["balance_after"].as_i64().expect("b"),
            )
        })
        .collect();
    assert_eq!(lines, vec![("debit".into(), -80, 20), ("credit".into(), 100, 100)]);
    assert_eq!(s.read(&format!("/v1/products/{product}"), &c.token, &at).await["available"], 1);
    let placed = s.read(&format!("/v1/redemptions/{redemption}"), &c.token, &at).await;
    assert_eq!((placed["status"].as_str(), placed["points"].as_i64()), (Some("placed"), Some(80)));
    assert_eq!(s.read("/v1/me/balance", &c.token, &at).await["balance"], 20);

    let cancelled = s
        .cmd
        .post(
            &format!("/v1/redemptions/{redemption}/cancel"),
            Some(&c.token),
            json!({ "reason": "changed my mind" }),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let at = position(&cancelled);
    assert_eq!(s.read(&format!("/v1/redemptions/{redemption}"), &c.token, &at).await["status"], "cancelled");
    assert_eq!(s.read("/v1/me/balance", &c.token, &at).await["balance"], 100);
    assert_eq!(s.read(&format!("/v1/products/{product}"), &c.token, &at).await["available"], 3);
    let mine = s.read(&format!("/v1/accounts/{}/redemptions", c.id), &c.token, &at).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_position_the_projections_never_reach_is_503_and_a_bad_one_400() {
    let s = stack_with(&[("TALLY_MIN_POSITION_WAIT_MS", "200".into())]).await;
    let c = s.cmd.register("bo").await;
    s.stop_projector();
    // Let a batch in hand finish, then append what the projector will never apply.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let product = s.cmd.product(5, 5).await;
    let unapplied = s.head().await;
    assert!(!product.is_empty());
    let res = s.get("/v1/me/balance", Some(&c.token), &[("X-Tally-Min-Position", &unapplied)]).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["code"], "projection_lagging");
    let res = s.get("/v1/me/balance", Some(&c.token), &[("X-Tally-Min-Position", "yesterday")]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<serde_json::Value>().await.expect("json")["code"], "malformed_request");
}

#[tokio::test]
async fn catalog_reads_carry_an_etag_and_honour_if_none_match() {
    let s = stack().await;
    let c = s.cmd.register("cy").await;
    let product = s.cmd.product(10, 2).await;
    let at = s.head().await;
    let first = s.get(&format!("/v1/products/{product}"), None, &[("X-Tally-Min-Position", &at)]).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers().get("etag").expect("etag").to_str().expect("ascii").to_owned();
    let again = s.get(&format!("/v1/products/{product}"), None, &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status(), 304);
    let res =
        s.cmd.post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 })).await;
    assert_eq!(res.status(), 422, "no points yet");
    s.cmd
        .post(
            &format!("/v1/products/{product}/stock"),
            Some(&s.cmd.admin),
            json!({ "kind": "receive", "quantity": 1, "reason": "count" }),
        )
        .await;
    let at = s.head().await;
    let changed = s
        .get(
            &format!("/v1/products/{product}"),
            None,
            &[("If-None-Match", &etag), ("X-Tally-Min-Position", &at)],
        )
        .await;
    assert_eq!(changed.status(), 200, "the stock changed, so the document did");
}

/// Every item of a paged list, following `next_cursor` with `limit`.
async fn walk(s: &Stack, path: &str, token: &str, at: &str, limit: usize) -> Vec<serde_json::Value> {
    let (mut items, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = match &cursor {
            Some(c) => s.read(&format!("{path}?limit={limit}&cursor={c}"), token, at).await,
            None => s.read(&format!("{path}?limit={limit}"), token, at).await,
        };
        let got = page["items"].as_array().expect("items").clone();
        assert!(got.len() <= limit);
        items.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn the_ledger_and_redemptions_page_newest_first_without_gaps() {
    let s = stack().await;
    let c = s.cmd.customer_with_points(100).await;
    let product = s.cmd.product(3, 50).await;
    let mut placed = Vec::new();
    for _ in 0..7 {
        let res = s
            .cmd
            .post("/v1/redemptions", Some(&c.token), json!({ "product_id": product, "quantity": 1 }))
            .await;
        placed.push(
            res.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_owned(),
        );
    }
    let at = s.head().await;

    let ledger = walk(&s, &format!("/v1/accounts/{}/ledger", c.id), &c.token, &at, 3).await;
    let after: Vec<i64> = ledger.iter().map(|l| l["balance_after"].as_i64().expect("n")).collect();
    assert_eq!(after, vec![79, 82, 85, 88, 91, 94, 97, 100], "newest first, each line once");

    let redemptions = walk(&s, &format!("/v1/accounts/{}/redemptions", c.id), &c.token, &at, 2).await;
    let ids: Vec<String> = redemptions.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect();
    placed.reverse();
    assert_eq!(ids, placed, "newest first, each redemption once");

    for path in [
        format!("/v1/accounts/{}/ledger?cursor=x", c.id),
        format!("/v1/accounts/{}/redemptions?cursor=1_x", c.id),
    ] {
        let res = s.get(&path, Some(&c.token), &[]).await;
        assert_eq!(res.status(), 422, "{path}");
    }
    let unknown = uuid::Uuid::new_v4();
    for list in ["ledger", "redemptions"] {
        let res = s.get(&format!("/v1/accounts/{unknown}/{list}"), Some(&s.cmd.admin), &[]).await;
        assert_eq!(res.status(), 404, "{list} of an unknown account is not found");
    }
}
