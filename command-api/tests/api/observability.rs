//! `/metrics` exposes the request series and they move with traffic.

use serde_json::json;

use crate::helpers::*;

/// The value of the first series line starting with `prefix`, 0 when absent.
fn series(text: &str, prefix: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_route_status_and_problem_code() {
    let app = spawn_app().await;
    let scrape = || async {
        app.http
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text")
    };
    let ok = "tally_http_outcomes_total{code=\"ok\",route=\"/v1/categories\"} ";
    let bad = "tally_http_outcomes_total{code=\"validation_failed\",route=\"/v1/categories\"} ";
    let latency =
        "tally_http_request_seconds_count{method=\"POST\",route=\"/v1/categories\",status=\"201\"} ";
    let before = scrape().await;
    app.create("/v1/categories", json!({ "name": "Tea", "description": "" })).await;
    app.create("/v1/categories", json!({ "name": "Coffee", "description": "" })).await;
    let res = app.post("/v1/categories", Some(&app.admin), json!({ "name": "", "description": "" })).await;
    assert_eq!(res.status(), 422);
    let after = scrape().await;
    assert_eq!(series(&after, ok) - series(&before, ok), 2.0, "{after}");
    assert_eq!(series(&after, bad) - series(&before, bad), 1.0, "{after}");
    assert_eq!(series(&after, latency) - series(&before, latency), 2.0, "{after}");
}
