//! The customer's own profile and the back office's changes to people and terms.

use serde_json::{json, Value};

use crate::support::*;

async fn status_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn profiles_are_read_changed_and_found_by_email() {
    let s = stack().await;
    let c = s.cmd.register("ann").await;
    let other = s.cmd.register("bob").await;
    let me: Value = s.get("/v1/me", Some(&c.token), &[]).await.json().await.expect("json");
    assert_eq!(
        (me["user_id"].as_str(), me["roles"].clone()),
        (Some(c.id.as_str()), json!(["customer"])),
        "{me}"
    );
    let email = me["email"].as_str().expect("email").to_owned();

    // Name and email change; a taken email is 409; nothing to change is 422.
    let res = s
        .cmd
        .send(
            reqwest::Method::PATCH,
            "/v1/me",
            Some(&c.token),
            Some(json!({ "name": "Ann B", "email": "Ann.B@Example.com" }).to_string()),
            &[],
        )
        .await;
    assert_eq!(res.status(), 200);
    let bob: Value = s.get("/v1/me", Some(&other.token), &[]).await.json().await.expect("json");
    let taken = json!({ "email": bob["email"] }).to_string();
    let (status, problem) =
        status_of(s.cmd.send(reqwest::Method::PATCH, "/v1/me", Some(&c.token), Some(taken), &[]).await).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("conflict")));
    for bad in [json!({}), json!({ "email": "nope" }), json!({ "name": "" }), json!({ "name": 5 })] {
        let res =
            s.cmd.send(reqwest::Method::PATCH, "/v1/me", Some(&c.token), Some(bad.to_string()), &[]).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    let me: Value = s.get("/v1/me", Some(&c.token), &[]).await.json().await.expect("json");
    assert_eq!((me["name"].as_str(), me["email"].as_str()), (Some("Ann B"), Some("Ann.B@Example.com")));

    // Staff find people: by id (admins and auditors), by email (admins, any case).
    let admin = s.cmd.admin.clone();
    let found: Value =
        s.get("/v1/users?email=ann.b@example.COM", Some(&admin), &[]).await.json().await.expect("json");
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["items"][0]["user_id"], c.id.as_str());
    let old: Value =
        s.get(&format!("/v1/users?email={email}"), Some(&admin), &[]).await.json().await.expect("json");
    assert_eq!(old["items"], json!([]), "the old email finds nobody");
    assert_eq!(s.get(&format!("/v1/users/{}", c.id), Some(&admin), &[]).await.status(), 200);
    assert_eq!(s.get(&format!("/v1/users/{}", c.id), Some(&other.token), &[]).await.status(), 403);
    assert_eq!(s.get("/v1/users?email=ann.b@example.com", Some(&other.token), &[]).await.status(), 403);
    assert_eq!(s.get("/v1/users", Some(&admin), &[]).await.status(), 422);
    assert_eq!(s.get(&format!("/v1/users/{}", uuid::Uuid::new_v4()), Some(&admin), &[]).await.status(), 404);
    assert_eq!(s.get("/v1/me", None, &[]).await.status(), 401);

    // The password: the current one is needed; the new one then logs in, the old not.
    let wrong = json!({ "current_password": "not-my-password", "new_password": "a-new-password" });
    let (status, problem) = status_of(s.cmd.post("/v1/me/password", Some(&c.token), wrong).await).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("validation_failed")));
    let short = json!({ "current_password": "password123", "new_password": "short" });
    assert_eq!(s.cmd.post("/v1/me/password", Some(&c.token), short).await.status(), 422);
    let change = json!({ "current_password": "password123", "new_password": "a-new-password" });
    assert_eq!(s.cmd.post("/v1/me/password", Some(&c.token), change).await.status(), 200);
    let login = |password: &str| json!({ "email": "ann.b@example.com", "password": password });
    assert_eq!(s.cmd.post("/v1/auth/login", None, login("a-new-password")).await.status(), 200);
    assert_eq!(s.cmd.post("/v1/auth/login", None, login("password123")).await.status(), 401);
}

#[tokio::test]
async fn admins_revise_categories_and_packages_and_revoke_roles() {
    let s = stack().await;
    let admin = s.cmd.admin.clone();
    let patch = |path: String, body: Value| {
        let (cmd, admin) = (&s.cmd, admin.clone());
        async move { cmd.send(reqwest::Method::PATCH, &path, Some(&admin), Some(body.to_string()), &[]).await }
    };
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Mugs", "description": "" })).await;
    assert_eq!(
        patch(format!("/v1/categories/{cat}"), json!({ "name": "Cups", "description": "All cups" }))
            .await
            .status(),
        200
    );
    assert_eq!(patch(format!("/v1/categories/{cat}"), json!({})).await.status(), 422);
    assert_eq!(patch(format!("/v1/categories/{cat}"), json!({ "name": "" })).await.status(), 422);
    assert_eq!(
        patch(format!("/v1/categories/{}", uuid::Uuid::new_v4()), json!({ "name": "X" })).await.status(),
        404
    );

    // A purchase started before a revision is settled on its own terms.
    let c = s.cmd.register("ann").await;
    let package = s.cmd.package(100).await;
    let before = s.cmd.start_purchase(&c, &package).await;
    let revision = json!({ "points": 250, "price": "19.99", "points_valid_days": 30, "name": "Bigger" });
    assert_eq!(patch(format!("/v1/credit-packages/{package}"), revision).await.status(), 200);
    assert_eq!(
        patch(format!("/v1/credit-packages/{package}"), json!({ "price": "1.999" })).await.status(),
        422
    );
    assert_eq!(patch(format!("/v1/credit-packages/{package}"), json!({ "points": 0 })).await.status(), 422);
    assert_eq!(patch(format!("/v1/credit-packages/{package}"), json!({})).await.status(), 422);
    let after = s.cmd.start_purchase(&c, &package).await;
    for p in [&before, &after] {
        s.cmd.webhook(&json!({ "purchase_id": p, "status": "succeeded", "payment_ref": p })).await;
    }
    let at = s.head().await;
    let category = s.read(&format!("/v1/categories/{cat}"), "", &at).await;
    assert_eq!(
        (category["name"].as_str(), category["description"].as_str()),
        (Some("Cups"), Some("All cups"))
    );
    let purchases = s.read(&format!("/v1/accounts/{}/purchases", c.id), &c.token, &at).await;
    let points: Vec<i64> =
        purchases["items"].as_array().expect("items").iter().filter_map(|p| p["points"].as_i64()).collect();
    assert_eq!(points, [250, 100], "newest first: the revised terms, then the old ones");
    assert_eq!(s.read("/v1/me/balance", &c.token, &at).await["balance"], 350);
    let packages = s.read("/v1/credit-packages", "", &at).await;
    assert_eq!(
        (packages["items"][0]["price"].as_str(), packages["items"][0]["name"].as_str()),
        (Some("19.99"), Some("Bigger"))
    );

    // Roles: granted, revoked (recorded), never one's own admin role.
    let grant =
        s.cmd.post(&format!("/v1/users/{}/roles", c.id), Some(&admin), json!({ "role": "auditor" })).await;
    assert_eq!(grant.status(), 200);
    let revoke = |path: String| {
        let (cmd, admin) = (&s.cmd, admin.clone());
        async move { cmd.send(reqwest::Method::DELETE, &path, Some(&admin), None, &[]).await }
    };
    assert_eq!(revoke(format!("/v1/users/{}/roles/auditor", c.id)).await.status(), 200);
    let me: Value =
        s.get(&format!("/v1/users/{}", c.id), Some(&admin), &[]).await.json().await.expect("json");
    assert_eq!(me["roles"], json!(["customer"]));
    assert_eq!(s.cmd.count_type(&format!("account-{}", c.id), "RoleRevoked").await, 1);
    let me_admin: Value = s.get("/v1/me", Some(&admin), &[]).await.json().await.expect("json");
    let (status, problem) = status_of(
        revoke(format!("/v1/users/{}/roles/admin", me_admin["user_id"].as_str().expect("id"))).await,
    )
    .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_state")), "{problem}");
    assert_eq!(revoke(format!("/v1/users/{}/roles/emperor", c.id)).await.status(), 404);
    assert_eq!(revoke(format!("/v1/users/{}/roles/auditor", uuid::Uuid::new_v4())).await.status(), 404);
    let res = s
        .cmd
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/users/{}/roles/customer", c.id),
            Some(&c.token),
            None,
            &[],
        )
        .await;
    assert_eq!(res.status(), 403);
}
