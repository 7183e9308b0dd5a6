//! `/healthz` (alive), `/readyz` (Postgres, Redis, provider) and `/metrics`.

use actix_web::{web, HttpResponse};
use fred::prelude::ClientLike;
use infra::cache;
use serde_json::json;

use crate::experiments::{self, results};
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when Postgres answers; Redis down is `degraded` (reads fall back to Postgres),
/// and so is a read replica down (reads fail over to the primary).
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
    let replica = state.reads.status();
    let replica_up = replica.as_ref().is_none_or(|r| r.state == "up");
    let status = match (postgres, redis && replica_up) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let mut body = json!({
        "status": status,
        "postgres": if postgres { "up" } else { "down" },
        "redis": if redis { "up" } else { "down" },
        "provider": provider,
    });
    if let Some(r) = replica {
        body["replica"] = json!(r);
    }
    if postgres {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = refresh_conversions(&state).await {
        tracing::warn!(error = %e, "cannot compute experiment conversions for /metrics");
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

/// Sets the conversions gauge of every running experiment: the same exact figures as
/// its results endpoint, so every instance reports the same.
async fn refresh_conversions(state: &AppState) -> anyhow::Result<()> {
    let client = state.reads.get().await?;
    let running = experiments::all_running(&**client).await?;
    state.metrics.conversions.reset();
    for e in running {
        let names: Vec<String> = e.variants.iter().map(|v| v.name.clone()).collect();
        for v in results::results(&**client, Some(e.id), e.attribution_hours, &names).await? {
            state.metrics.conversions.with_label_values(&[&e.id.to_string(), &v.name]).set(v.conversions);
        }
    }
    Ok(())
}
