//! The OpenAPI document: served, complete, and every route it names is really routed.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_document_names_every_route_and_every_route_it_names_answers() {
    let app = spawn_app().await;
    let res = app.send(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = command_api::routes::operations();
    assert!(ops.len() >= 40, "{} operations", ops.len());
    // Nothing registered outside the table, nothing undocumented, nothing extra.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_eq!(infra::http::openapi::gaps(&doc, &ops, &src), Vec::<String>::new());
    // Each operation lists its problem codes.
    for op in &ops {
        let o = &doc["paths"][op.path][op.method];
        assert!(
            o["responses"].as_object().is_some_and(|r| r.keys().any(|s| s.starts_with('4') || s == "429")),
            "{} {}",
            op.method,
            op.path
        );
    }
    assert!(doc["paths"]["/v1/redemptions"]["post"]["responses"]["422"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("insufficient_points") && d.contains("price_changed")));

    // Every documented route is routed: nothing answers the unknown-endpoint 404.
    let unknown = uuid::Uuid::new_v4().to_string();
    for op in &ops {
        let path =
            op.path.replace("{id}", &unknown).replace("{user_id}", &unknown).replace("{role}", "auditor");
        let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).expect("method");
        let res = app.send(method, &path, None, Some("{}".into()), &[]).await;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        assert!(
            !(status == 404 && body["detail"] == "no such endpoint"),
            "{} {path} is documented but not routed",
            op.method
        );
    }

    let page = app.send(Method::GET, "/docs", None, None, &[]).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(
        html.contains("openapi.json") && !html.contains("://cdn") && !html.contains("<script src"),
        "self-contained"
    );
}
