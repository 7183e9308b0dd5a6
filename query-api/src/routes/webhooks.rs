//! `GET /v1/webhook-endpoints` and `GET /v1/webhook-endpoints/{id}/deliveries` (admin):
//! the subscriptions (never their secrets) and each delivery's attempts, newest first.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use domain::Role;
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{id_in_path, Page, PageParams};
use crate::state::AppState;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Endpoint {
    id: Uuid,
    url: String,
    event_types: Vec<String>,
    description: String,
    created_at: DateTime<Utc>,
    enabled: bool,
    disabled_at: Option<DateTime<Utc>>,
    failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs, if it does.
    previous_secret_expires_at: Option<DateTime<Utc>>,
    pending_deliveries: i64,
}

pub async fn endpoints(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let client = state.reads.get().await?;
    let rows = client
        .query(
            "SELECT e.id, e.url, e.event_types, e.description, e.created_at, e.disabled_at, e.failing_since,
                    CASE WHEN e.previous_until > now() THEN e.previous_until END,
                    (SELECT count(*) FROM webhooks.deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending')
             FROM webhooks.endpoints e ORDER BY e.created_at, e.id",
            &[],
        )
        .await?;
    let items: Vec<Endpoint> = rows
        .iter()
        .map(|r| Endpoint {
            id: r.get(0),
            url: r.get(1),
            event_types: r.get(2),
            description: r.get(3),
            created_at: r.get(4),
            enabled: r.get::<_, Option<DateTime<Utc>>>(5).is_none(),
            disabled_at: r.get(5),
            failing_since: r.get(6),
            previous_secret_expires_at: r.get(7),
            pending_deliveries: r.get(8),
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Delivery {
    id: i64,
    event_id: Uuid,
    event_type: String,
    position: i64,
    status: String,
    attempts: i32,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending deliveries only).
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    payload: Value,
}

pub async fn deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let endpoint = id_in_path(&path, "webhook endpoint")?;
    let status = match params.status.as_deref() {
        None => None,
        Some(s @ ("pending" | "delivered" | "dead")) => Some(s),
        Some(_) => return Err(ApiError::Validation("status must be pending, delivered or dead".into())),
    };
    let page = PageParams { limit: params.limit, cursor: params.cursor.clone() };
    let limit = page.limit()?;
    let before = page.cursor(|c| c.parse::<i64>().ok().filter(|n| *n > 0))?;
    let client = state.reads.get().await?;
    if client.query_opt("SELECT 1 FROM webhooks.endpoints WHERE id = $1", &[&endpoint]).await?.is_none() {
        return Err(ApiError::NotFound("no such webhook endpoint".into()));
    }
    let rows = client
        .query(
            "SELECT id, event_id, event_type, position, status, attempts, last_status_code, last_error,
                    last_attempt_at, CASE WHEN status = 'pending' THEN next_attempt_at END, created_at,
                    delivered_at, body
             FROM webhooks.deliveries
             WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::int8 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            &[&endpoint, &status, &before, &(limit + 1)],
        )
        .await?;
    let item = |r: &Row| Delivery {
        id: r.get(0),
        event_id: r.get(1),
        event_type: r.get(2),
        position: r.get(3),
        status: r.get(4),
        attempts: r.get(5),
        last_status_code: r.get(6),
        last_error: r.get(7),
        last_attempt_at: r.get(8),
        next_attempt_at: r.get(9),
        created_at: r.get(10),
        delivered_at: r.get(11),
        payload: serde_json::from_str(r.get::<_, &str>(12)).unwrap_or(Value::Null),
    };
    let cursor = |r: &Row| r.get::<_, i64>(0).to_string();
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, item, cursor)))
}
