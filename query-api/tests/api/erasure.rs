//! Erasure (GDPR art. 17): the email is nowhere in the database afterwards, nor in the
//! logs the services wrote during the test; history, balances and audit reads stay; the
//! chain verifies.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn an_erased_customer_leaves_no_email_behind_and_history_stays() {
    let log = captured_logs();
    let s = stack().await;
    let base = s.cmd.base.clone();
    let http = reqwest::Client::new();
    let email = format!("erase-me-{}@Example.com", uuid::Uuid::new_v4().simple());
    let post = |path: &str, token: Option<&str>, body: Value, key: Option<&str>| {
        let mut req = http.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send()
    };
    let registration = json!({ "email": email, "password": "password123", "name": "Erin Erased" });
    let reg: Value = post("/v1/auth/register", None, registration, Some("reg-1"))
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let (user, token) =
        (reg["user_id"].as_str().expect("id").to_owned(), reg["token"].as_str().expect("t").to_owned());
    let package = s.cmd.package(100).await;
    let purchase: Value =
        post("/v1/credit-purchases", Some(&token), json!({ "package_id": package }), Some("buy-1"))
            .await
            .expect("buy")
            .json()
            .await
            .expect("json");
    let paid = json!({ "purchase_id": purchase["id"], "status": "succeeded", "payment_ref": "p" });
    assert_eq!(s.cmd.webhook(&paid).await.status(), 200);
    let product = s.cmd.product(10, 5).await;
    let res =
        post("/v1/redemptions", Some(&token), json!({ "product_id": product, "quantity": 1 }), Some("r-1"))
            .await
            .expect("redeem");
    assert_eq!(res.status(), 201);
    let res =
        post("/v1/interactions", Some(&token), json!({ "product_id": product, "kind": "wishlist" }), None)
            .await
            .expect("like");
    assert_eq!(res.status(), 202);
    let wrong = json!({ "email": email, "password": "wrong-password" });
    assert_eq!(post("/v1/auth/login", None, wrong, None).await.expect("login").status(), 401);
    let at = s.head().await;
    let export = s.read("/v1/me/export", &token, &at).await;
    assert_eq!(export["profile"]["email"], email.as_str());
    assert_eq!(
        (export["purchases"].as_array().map(Vec::len), export["redemptions"].as_array().map(Vec::len)),
        (Some(1), Some(1))
    );
    assert_eq!(
        (export["ledger"].as_array().map(Vec::len), export["interactions"][0]["kind"].as_str()),
        (Some(2), Some("wishlist"))
    );
    assert_eq!(export["balance"]["balance"], 90);

    let res = http.delete(format!("{base}/v1/me")).bearer_auth(&token).send().await.expect("erase");
    assert_eq!(res.status(), 204);
    let again = http.delete(format!("{base}/v1/me")).bearer_auth(&token).send().await.expect("erase");
    assert_eq!(again.status(), 204, "erasing twice changes nothing");
    let login = json!({ "email": email, "password": "password123" });
    assert_eq!(post("/v1/auth/login", None, login, None).await.expect("login").status(), 401);
    // The access token still verifies until it expires, but there is no one to change:
    // no password to check (once a 500), no profile to write personal data back into.
    let change = json!({ "current_password": "password123", "new_password": "another-password" });
    let res = http
        .post(format!("{base}/v1/me/password"))
        .bearer_auth(&token)
        .json(&change)
        .send()
        .await
        .expect("pw");
    assert_eq!(res.status(), 404);
    let rename = json!({ "name": "Back Again", "email": email });
    let res =
        http.patch(format!("{base}/v1/me")).bearer_auth(&token).json(&rename).send().await.expect("patch");
    assert_eq!(res.status(), 404);
    let at = s.head().await;
    assert_eq!(s.get("/v1/me", Some(&token), &[]).await.status(), 404);
    let staff = s.read(&format!("/v1/users/{user}"), &s.cmd.admin, &at).await;
    assert_eq!((staff["erased"].as_bool(), staff["erased_at"].is_string()), (Some(true), true), "{staff}");
    assert_eq!(s.read(&format!("/v1/accounts/{user}/balance"), &s.cmd.admin, &at).await["balance"], 90);
    let history = s.read(&format!("/v1/audit/streams/account-{user}"), &s.cmd.admin, &at).await;
    assert!(history.to_string().contains("UserErased"), "{history}");

    let db = s.cmd.db.client().await.expect("db");
    assert!(infra::store::verify(&db).await.expect("verify").is_empty(), "history untouched");
    let tables = db
        .query(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .expect("tables");
    assert!(tables.len() > 20, "every schema: es, read, behaviour, public");
    for t in tables {
        let table: String = t.get(0);
        let sql = format!("SELECT count(*) FROM {table} x WHERE x::text ILIKE $1");
        let found: i64 =
            db.query_one(&sql, &[&format!("%{}%", email.to_lowercase())]).await.expect("scan").get(0);
        assert_eq!(found, 0, "the erased email is still in {table}");
    }
    let logs = std::fs::read_to_string(log).expect("logs");
    assert!(logs.contains(&user), "the services logged this user's requests");
    assert!(!logs.to_lowercase().contains(&email.to_lowercase()), "the email is in the logs");
}
