//! Outbound webhook endpoints (design §13), admin only: subscribe, unsubscribe, rotate
//! the signing secret, replay deliveries. Endpoints are configuration, not ledger
//! events (their secrets must never enter the append-only store); each change is one
//! transaction, idempotent with `Idempotency-Key` like every command.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use domain::Role;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};
use infra::uow::UnitOfWork;
use infra::webhooks::{self, PUBLIC_TYPES, ROTATION_OVERLAP};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::catalog::{admin_execute, admin_run};
use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    description: String,
}

/// A fresh signing secret: 32 random bytes, hex, with a recognisable prefix.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// Known, distinct public types, in the contract's order.
fn event_types(requested: &[String]) -> Result<Vec<String>, ApiError> {
    if requested.is_empty() {
        return Err(ApiError::Validation("event_types must name at least one event type".into()));
    }
    if let Some(unknown) = requested.iter().find(|t| !PUBLIC_TYPES.contains(&t.as_str())) {
        return Err(ApiError::Validation(format!(
            "unknown event type {unknown:?}; known types: {}",
            PUBLIC_TYPES.join(", ")
        )));
    }
    Ok(PUBLIC_TYPES.iter().filter(|t| requested.iter().any(|r| r == *t)).map(|t| t.to_string()).collect())
}

struct CreateEndpoint {
    id: Uuid,
    url: String,
    event_types: Vec<String>,
    description: String,
}

impl Command for CreateEndpoint {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let secret = new_secret();
        // It hears of what is committed from now on, not of the history before it.
        let after = infra::store::safe_head(uow.tx()).await?;
        uow.tx()
            .execute(
                "INSERT INTO webhooks.endpoints
                     (id, url, event_types, description, secret, created_by, created_at, after_tx_id, after_position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &self.id,
                    &self.url,
                    &self.event_types,
                    &self.description,
                    &secret,
                    &ctx.actor.user_id,
                    &ctx.now,
                    &(after.tx_id as i64),
                    &after.position,
                ],
            )
            .await?;
        Ok(Reply::new(
            StatusCode::CREATED,
            json!({
                "id": self.id, "url": self.url, "event_types": self.event_types,
                "description": self.description, "created_at": ctx.now, "enabled": true,
            }),
        ))
    }
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewEndpoint>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let e = &input.value;
    let event_types = event_types(&e.event_types)?;
    let description = e.description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::Validation(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let url = webhooks::check_target(&e.url, state.webhook_allow_private)
        .await
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let command = CreateEndpoint { id: Uuid::new_v4(), url: url.to_string(), event_types, description };
    with_secret(&req, &state, &caller, "CreateWebhookEndpoint", &input.raw, &command).await
}

/// Runs an admin command whose answer shows the endpoint's secret. The secret is added
/// after the command, from the endpoint itself, so it is never kept in the idempotency
/// record: a replayed request shows the endpoint's current secret.
async fn with_secret(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    name: &'static str,
    raw: &[u8],
    command: &impl Command,
) -> Result<HttpResponse, ApiError> {
    let (status, mut body, replayed) = admin_execute(req, state, caller, name, raw, command).await?;
    let id = body.get("id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok());
    let row = match id {
        Some(id) => {
            let client = state.pool.get().await?;
            client.query_opt("SELECT secret FROM webhooks.endpoints WHERE id = $1", &[&id]).await?
        }
        None => None,
    };
    // Deleted since (a replay): there is no secret to show.
    let secret: String = row.ok_or_else(not_found)?.get(0);
    body.insert("secret".into(), secret.into());
    Ok(pipeline::render(&status, body, replayed))
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    path_id(raw, |s| Uuid::parse_str(s).ok(), "webhook endpoint")
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such webhook endpoint".into())
}

struct DeleteEndpoint(Uuid);

impl Command for DeleteEndpoint {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let deleted = uow.tx().execute("DELETE FROM webhooks.endpoints WHERE id = $1", &[&self.0]).await?;
        if deleted == 0 {
            return Err(not_found());
        }
        Ok(Reply::new(StatusCode::NO_CONTENT, json!({})))
    }
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let command = DeleteEndpoint(endpoint_id(&path)?);
    admin_run(&req, &state, &caller, "DeleteWebhookEndpoint", b"", &command).await
}

struct RotateSecret(Uuid);

impl Command for RotateSecret {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let secret = new_secret();
        let until: DateTime<Utc> = ctx.now + ROTATION_OVERLAP;
        let rotated = uow
            .tx()
            .execute(
                "UPDATE webhooks.endpoints SET previous_secret = secret, previous_until = $2, secret = $3
                 WHERE id = $1",
                &[&self.0, &until, &secret],
            )
            .await?;
        if rotated == 0 {
            return Err(not_found());
        }
        Ok(Reply::new(StatusCode::OK, json!({ "id": self.0, "previous_secret_expires_at": until })))
    }
}

pub async fn rotate_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let command = RotateSecret(endpoint_id(&path)?);
    with_secret(&req, &state, &caller, "RotateWebhookSecret", b"", &command).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    from_position: i64,
}

struct Replay {
    id: Uuid,
    from_position: i64,
}

impl Command for Replay {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let tx = uow.tx();
        let found =
            tx.query_opt("SELECT 1 FROM webhooks.endpoints WHERE id = $1 FOR UPDATE", &[&self.id]).await?;
        if found.is_none() {
            return Err(not_found());
        }
        // Each event the endpoint was sent (or dead-lettered) from that position on, once,
        // queued again in its original order (same `id`, so receivers can tell a replay
        // from news); one still waiting in the queue is not queued twice.
        let queued = tx
            .execute(
                "INSERT INTO webhooks.deliveries
                     (endpoint_id, event_id, event_type, position, body, next_attempt_at, created_at)
                 SELECT endpoint_id, event_id, event_type, position, body, $3, $3 FROM (
                     SELECT DISTINCT ON (event_id, event_type) * FROM webhooks.deliveries s
                     WHERE endpoint_id = $1 AND position >= $2
                       AND NOT EXISTS (SELECT 1 FROM webhooks.deliveries p
                                       WHERE p.endpoint_id = $1 AND p.status = 'pending'
                                         AND p.event_id = s.event_id AND p.event_type = s.event_type)
                     ORDER BY event_id, event_type, id) d
                 ORDER BY d.id",
                &[&self.id, &self.from_position, &ctx.now],
            )
            .await?;
        Ok(Reply::new(
            StatusCode::ACCEPTED,
            json!({ "id": self.id, "from_position": self.from_position, "queued": queued }),
        ))
    }
}

pub async fn replay(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<ReplayRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = endpoint_id(&path)?;
    if input.value.from_position < 0 {
        return Err(ApiError::Validation("from_position must be zero or more".into()));
    }
    let command = Replay { id, from_position: input.value.from_position };
    admin_run(&req, &state, &caller, "ReplayWebhookDeliveries", &input.raw, &command).await
}
