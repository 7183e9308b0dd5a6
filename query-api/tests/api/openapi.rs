//! The OpenAPI document: served, complete, and every route it names is really routed.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn the_document_names_every_route_and_every_route_it_names_answers() {
    let s = stack().await;
    let res = s.get("/openapi.json", None, &[]).await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = query_api::routes::operations();
    assert!(ops.len() >= 30, "{} operations", ops.len());
    // Nothing registered outside the table, nothing undocumented, nothing extra.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_eq!(infra::http::openapi::gaps(&doc, &ops, &src), Vec::<String>::new());
    let products = &doc["paths"]["/v1/products"]["get"];
    let params: Vec<&str> = products["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        params.contains(&"q") && params.contains(&"on_offer") && params.contains(&"X-Tally-Min-Position"),
        "{params:?}"
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    for op in &ops {
        let path = op.path.replace("{id}", &unknown).replace("{stream_id}", "account-x");
        let res = if op.method == "post" {
            s.post(&path, None, serde_json::json!({})).await
        } else {
            s.get(&path, None, &[]).await
        };
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        assert!(
            !(status == 404 && body["detail"] == "no such endpoint"),
            "{} {path} is documented but not routed",
            op.method
        );
    }
    let page = s.get("/docs", None, &[]).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("openapi.json"));
}
