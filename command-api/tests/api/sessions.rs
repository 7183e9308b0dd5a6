//! Sessions: short access tokens, rotating refresh tokens (a reused one revokes its
//! chain), logout, and revocation by a password or role change.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{body, spawn_app, spawn_app_with, TestApp};

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let res = app.post("/v1/auth/refresh", None, json!({ "refresh_token": token })).await;
    (res.status(), body(res).await)
}

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": password })).await;
    assert_eq!(res.status(), StatusCode::OK);
    body(res).await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_chain() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/auth/register",
            None,
            json!({ "email": "rita@example.com", "password": "password123", "name": "Rita" }),
        )
        .await;
    let registered = body(res).await;
    let first = registered["refresh_token"].as_str().expect("a refresh token").to_owned();
    let (status, rotated) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::OK);
    let second = rotated["refresh_token"].as_str().expect("the next token").to_owned();
    assert_ne!(first, second);
    assert!(rotated["token"].is_string() && rotated["expires_at"].is_string());
    // The access token works for a command.
    let token = rotated["token"].as_str().expect("token");
    assert_eq!(
        app.post("/v1/interactions/batch", Some(token), json!({ "items": [] })).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The first one again: stolen. Its chain dies, the second token too.
    let (status, problem) = refresh(&app, &first).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
    assert_eq!(refresh(&app, &second).await.0, StatusCode::UNAUTHORIZED);
    // Another login is another chain, untouched.
    let session = login(&app, "rita@example.com", "password123").await;
    let other = session["refresh_token"].as_str().expect("token").to_owned();
    let (status, next) = refresh(&app, &other).await;
    assert_eq!(status, StatusCode::OK);

    // Logout ends that session.
    let access = next["token"].as_str().expect("token").to_owned();
    let next = next["refresh_token"].as_str().expect("token").to_owned();
    let res = app.post("/v1/auth/logout", Some(&access), json!({ "refresh_token": next })).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(refresh(&app, &next).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post("/v1/auth/logout", None, json!({ "refresh_token": next })).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        json!({}),
        json!({ "refresh_token": 5 }),
        json!({ "refresh_token": "short" }),
        json!({ "refresh_token": "0".repeat(64) }),
    ] {
        let res = app.post("/v1/auth/refresh", None, bad.clone()).await;
        assert!(
            res.status() == StatusCode::UNAUTHORIZED || res.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }

    // A password change and a role change revoke every session.
    let a = login(&app, "rita@example.com", "password123").await;
    let b = login(&app, "rita@example.com", "password123").await;
    let change = json!({ "current_password": "password123", "new_password": "another-password" });
    assert_eq!(
        app.post("/v1/me/password", Some(a["token"].as_str().expect("t")), change).await.status(),
        StatusCode::OK
    );
    for s in [&a, &b] {
        assert_eq!(refresh(&app, s["refresh_token"].as_str().expect("t")).await.0, StatusCode::UNAUTHORIZED);
    }
    let c = login(&app, "rita@example.com", "another-password").await;
    let user = registered["user_id"].as_str().expect("id");
    let grant =
        app.post(&format!("/v1/users/{user}/roles"), Some(&app.admin), json!({ "role": "auditor" })).await;
    assert_eq!(grant.status(), StatusCode::OK);
    assert_eq!(refresh(&app, c["refresh_token"].as_str().expect("t")).await.0, StatusCode::UNAUTHORIZED);
}

/// Access tokens are not looked up per request: one issued before a revocation works
/// until it expires, `TALLY_ACCESS_TOKEN_TTL` later (15 minutes by default; 2 s here).
#[tokio::test]
async fn an_access_token_stops_working_when_its_short_life_ends() {
    let app = spawn_app_with(&[("TALLY_ACCESS_TOKEN_TTL", "2")]).await;
    let admin = login(&app, command_api::testkit::ADMIN_EMAIL, command_api::testkit::ADMIN_PASSWORD).await;
    let admin = admin["token"].as_str().expect("token").to_owned();
    let res = app
        .post(
            "/v1/auth/register",
            None,
            json!({ "email": "ida@example.com", "password": "password123", "name": "Ida" }),
        )
        .await;
    let user = body(res).await["user_id"].as_str().expect("id").to_owned();
    app.post(&format!("/v1/users/{user}/roles"), Some(&admin), json!({ "role": "admin" })).await;
    let theirs = login(&app, "ida@example.com", "password123").await;
    let token = theirs["token"].as_str().expect("token").to_owned();
    let revoke = app
        .send(reqwest::Method::DELETE, &format!("/v1/users/{user}/roles/admin"), Some(&admin), None, &[])
        .await;
    assert_eq!(revoke.status(), StatusCode::OK);
    let category = || json!({ "name": "Still an admin?" });
    assert_eq!(
        app.post("/v1/categories", Some(&token), category()).await.status(),
        StatusCode::CREATED,
        "within its life"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(app.post("/v1/categories", Some(&token), category()).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&app, theirs["refresh_token"].as_str().expect("t")).await.0, StatusCode::UNAUTHORIZED);
}
