//! How every command runs: one unit of work (see `infra::uow`) that claims the
//! `Idempotency-Key` (if any) without writing, lets the command lock, load and decide,
//! then appends, writes due snapshots and the idempotency record, and commits; retried
//! from the start on a version conflict or deadlock, with jittered backoff.
//!
//! Commands implement [`Command`]; handlers call [`run`].

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use domain::Role;
use infra::http::error::ApiError;
use infra::http::request_id::RequestId;
pub use infra::store::idempotency::Key as IdempotencyKey;
use infra::store::{self, Actor, Metadata};
use infra::uow::UnitOfWork;
use rand::Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::state::AppState;

const MAX_ATTEMPTS: u32 = 8;
pub const POSITION_HEADER: &str = "X-Tally-Position";

/// Who is running a command, and when.
#[derive(Debug, Clone)]
pub struct Context {
    pub request_id: String,
    pub actor: Actor,
    pub command: &'static str,
    pub now: DateTime<Utc>,
}

impl Context {
    pub fn new(req: &HttpRequest, command: &'static str, user: Option<Uuid>, role: &str) -> Self {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        Context {
            request_id,
            actor: Actor { user_id: user, role: role.to_owned() },
            command,
            // Postgres keeps microseconds: an instant in an event then reads back equal.
            now: Utc::now().trunc_subsecs(6),
        }
    }

    pub fn for_caller(
        req: &HttpRequest,
        command: &'static str,
        caller: &infra::http::extract::Caller,
        role: Role,
    ) -> Self {
        Self::new(req, command, Some(caller.0.sub), caller.acting_role(role).as_str())
    }

    pub fn metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.request_id.clone(),
            causation_id: self.request_id.clone(),
            actor: self.actor.clone(),
            command: self.command.to_owned(),
        }
    }
}

/// A command's outcome: its status, its body (with `position`) and whether it was
/// replayed from an earlier request with the same `Idempotency-Key`.
pub type Outcome = Result<(StatusCode, Map<String, Value>, bool), ApiError>;

/// A successful command's answer; the pipeline adds `position`.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Map<String, Value>,
}

impl Reply {
    pub fn new(status: StatusCode, body: Value) -> Self {
        let body = match body {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Reply { status, body }
    }
}

/// A command: which streams it needs and what it decides, in a [`UnitOfWork`] that
/// the pipeline saves and commits. Used only inside this crate, so the returned future
/// needs no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Command {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError>;
}

/// Reads the `Idempotency-Key` header; a key is bound to the caller, method, path and
/// exact body.
pub fn idempotency_key(
    req: &HttpRequest,
    caller: String,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key =
        value.to_str().ok().filter(|k| (1..=255).contains(&k.len())).ok_or_else(|| {
            ApiError::Validation("Idempotency-Key must be 1 to 255 visible characters".into())
        })?;
    let mut h = Sha256::new();
    h.update(req.method().as_str());
    h.update([0]);
    h.update(req.path());
    h.update([0]);
    h.update(body);
    Ok(Some(IdempotencyKey { caller, key: key.to_owned(), fingerprint: h.finalize().to_vec() }))
}

/// Runs `command` to completion and renders its response.
pub async fn run(
    state: &AppState,
    ctx: Context,
    idempotency: Option<IdempotencyKey>,
    command: &impl Command,
) -> Result<HttpResponse, ApiError> {
    let (status, body, replayed) = execute(state, ctx, idempotency, command).await?;
    Ok(render(&status, body, replayed))
}

/// Runs `command` to completion: its status, its body (with `position`) and whether
/// it was replayed from an earlier request with the same `Idempotency-Key`.
pub async fn execute(
    state: &AppState,
    ctx: Context,
    idempotency: Option<IdempotencyKey>,
    command: &impl Command,
) -> Outcome {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_once(state, &ctx, idempotency.as_ref(), command).await {
            Err(e) if is_retryable(&e) && attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "retrying command after a conflict");
                let cap = 2u64.pow(attempt.min(6));
                let ms = rand::thread_rng().gen_range(1..=cap);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Version conflicts and deadlocks (mapped to `Conflict`) are worth a fresh attempt.
fn is_retryable(e: &ApiError) -> bool {
    matches!(e, ApiError::Conflict(_))
}

/// One attempt: claim the key, let the command lock, load and decide, then write
/// everything and commit. Returns the status, the body and whether it was replayed.
async fn attempt_once(
    state: &AppState,
    ctx: &Context,
    idempotency: Option<&IdempotencyKey>,
    command: &impl Command,
) -> Outcome {
    let mut client = state.pool.get().await?;
    let mut uow = UnitOfWork::begin(&mut client).await?.with_states(&state.states);
    if let Some(key) = idempotency {
        // Waits while another request holds the same key, then finds its response.
        if let Some(stored) = store::idempotency::claim(uow.tx(), key).await? {
            return replay(key, stored);
        }
    }
    let Reply { status, mut body } = command.execute(&mut uow, ctx).await?;
    let position = uow.save(&ctx.metadata(), ctx.now).await?;
    body.insert("position".into(), Value::String(position.token()));
    if let Some(key) = idempotency {
        store::idempotency::record(uow.tx(), key, status.as_u16(), &Value::Object(body.clone())).await?;
    }
    uow.commit().await?;
    Ok((status, body, false))
}

pub(crate) fn replay(key: &IdempotencyKey, stored: store::idempotency::Stored) -> Outcome {
    if stored.fingerprint != key.fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let body = match stored.body {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok((status, body, true))
}

pub fn render(status: &StatusCode, body: Map<String, Value>, replayed: bool) -> HttpResponse {
    let mut res = HttpResponse::build(*status);
    if let Some(Value::String(p)) = body.get("position") {
        res.insert_header((POSITION_HEADER, p.as_str()));
    }
    if replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    if *status == StatusCode::NO_CONTENT {
        // No body; the position still travels in its header.
        return res.finish();
    }
    res.json(Value::Object(body))
}
