//! Webhook endpoint commands are idempotent like every command, and a secret is shown
//! only in the answers to the request that created (or rotated) it, never stored with
//! those answers.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn creating_and_rotating_with_an_idempotency_key_happens_once() {
    let app = spawn_app().await;
    let body =
        json!({ "url": "https://93.184.216.34/hook", "event_types": ["points.credited", "purchase.paid"] });
    let mut answers = Vec::new();
    for _ in 0..2 {
        let res = app
            .send(
                reqwest::Method::POST,
                "/v1/webhook-endpoints",
                Some(&app.admin),
                Some(body.to_string()),
                &[("Idempotency-Key", "hook-1")],
            )
            .await;
        assert_eq!(res.status(), 201);
        answers.push(res.json::<Value>().await.expect("json"));
    }
    assert_eq!(answers[0]["id"], answers[1]["id"]);
    assert_eq!(answers[0]["event_types"], json!(["points.credited", "purchase.paid"]));
    let secret = answers[0]["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64, "{secret}");
    let id = answers[0]["id"].as_str().expect("id");

    let path = format!("/v1/webhook-endpoints/{id}/rotate-secret");
    let mut rotated = Vec::new();
    for _ in 0..2 {
        let res = app
            .send(reqwest::Method::POST, &path, Some(&app.admin), None, &[("Idempotency-Key", "rotate-1")])
            .await;
        assert_eq!(res.status(), 200);
        rotated.push(res.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_owned());
    }
    assert_eq!(rotated[0], rotated[1], "a repeated rotation answers the same");
    let client = app.db.client().await.expect("db");
    let row = client
        .query_one("SELECT count(*), min(secret), min(previous_secret) FROM webhooks.endpoints", &[])
        .await
        .expect("endpoints");
    assert_eq!(row.get::<_, i64>(0), 1, "created once");
    assert_eq!(
        (row.get::<_, String>(1), row.get::<_, String>(2)),
        (rotated[0].clone(), secret.to_owned()),
        "rotated once"
    );
}
