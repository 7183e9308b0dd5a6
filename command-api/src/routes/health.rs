//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let postgres = match state.pool.get().await {
        Ok(c) => c.query_one("SELECT 1", &[]).await.is_ok(),
        Err(_) => false,
    };
    let body = json!({ "status": if postgres { "ready" } else { "unavailable" }, "postgres": postgres });
    if postgres {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(registry: web::Data<prometheus::Registry>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(infra::http::metrics::render(&registry))
}
