//! The projector's small HTTP port: `/healthz`, `/readyz` and `/metrics`.

use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use deadpool_postgres::Pool;
use fred::prelude::{Client as Redis, ClientLike};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::projections::Projection;
use crate::status;

#[derive(Clone)]
struct State {
    pool: Pool,
    redis: Redis,
    metrics: Metrics,
}

pub fn serve(
    listener: std::net::TcpListener,
    pool: Pool,
    redis: Redis,
    metrics: Metrics,
) -> std::io::Result<Server> {
    let state = State { pool, redis, metrics };
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(render_metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// Alive, and which projections this instance is applying.
async fn healthz(state: web::Data<State>) -> HttpResponse {
    let roles: serde_json::Map<String, serde_json::Value> = Projection::ALL
        .iter()
        .map(|p| {
            let active = state.metrics.active.with_label_values(&[p.name()]).get() == 1;
            (p.name().to_owned(), json!(if active { "active" } else { "standby" }))
        })
        .collect();
    HttpResponse::Ok().json(json!({ "status": "ok", "projections": roles }))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let postgres = match state.pool.get().await {
        Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let redis = infra::cache::fail_fast(&state.redis).ping::<String>(None).await.is_ok();
    let body = json!({
        "status": if postgres { if redis { "ready" } else { "degraded" } } else { "unavailable" },
        "postgres": if postgres { "up" } else { "down" },
        "redis": if redis { "up" } else { "down" },
    });
    if postgres {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn render_metrics(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

/// Refreshes the lag gauges every second.
pub fn track_lag(tasks: &TaskTracker, pool: Pool, metrics: Metrics, shutdown: CancellationToken) {
    tasks.spawn(async move {
        while !shutdown.is_cancelled() {
            if let Ok(client) = pool.get().await {
                if let Ok(statuses) = status::status(&**client).await {
                    for s in statuses {
                        metrics.lag_events.with_label_values(&[&s.projection]).set(s.lag_events);
                        metrics.lag_seconds.with_label_values(&[&s.projection]).set(s.lag_seconds);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    });
}
