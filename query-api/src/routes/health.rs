//! `/healthz` (alive), `/readyz` (Postgres, Redis, provider) and `/metrics`.

use actix_web::{web, HttpResponse};
use fred::prelude::ClientLike;
use infra::cache;
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when Postgres answers; Redis down is `degraded` (reads fall back to Postgres).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let postgres = match state.pool.get().await {
        Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let redis = cache::fail_fast(&state.redis).ping::<String>(None).await.is_ok();
    let provider = match (state.reco.has_provider(), state.reco.breaker.is_open()) {
        (false, _) => "not_configured",
        (true, false) => "up",
        (true, true) => "circuit_open",
    };
    let status = match (postgres, redis) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let body = json!({
        "status": status,
        "postgres": if postgres { "up" } else { "down" },
        "redis": if redis { "up" } else { "down" },
        "provider": provider,
    });
    if postgres {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
