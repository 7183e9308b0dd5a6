//! Audit reads straight from the event store (auditor and admin roles): the global
//! feed in the safe order, one stream, and an account's balance as of an instant.
//! Events show who, when and why through their metadata.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use infra::history;
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::store::{self, Checkpoint, RecordedEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{staff, user_in_path};
use crate::state::AppState;

const MAX_EVENTS: i64 = 1000;

fn event_json(e: &RecordedEvent) -> Value {
    json!({
        "position": e.position,
        "token": Checkpoint::of(e).token(),
        "stream_id": e.stream_id,
        "version": e.version,
        "event_id": e.event_id,
        "type": e.event_type,
        "schema_version": e.schema_version,
        "data": e.data,
        "metadata": e.metadata,
        "recorded_at": e.recorded_at,
        "hash": hex::encode(&e.hash),
    })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FeedParams {
    /// A `next` token from the previous page, or a global position.
    after: Option<String>,
    limit: Option<i64>,
}

/// The global feed in the safe order. `after` takes the previous page's `next` (or a
/// bare global position, to start after that event).
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<FeedParams>,
) -> Result<HttpResponse, ApiError> {
    staff(&caller)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return Err(ApiError::Validation(format!("limit must be between 1 and {MAX_EVENTS}")));
    }
    let client = state.reads.get().await?;
    let after = match params.after.as_deref().map(str::trim) {
        None | Some("") | Some("0") => Checkpoint::default(),
        Some(raw) => match (Checkpoint::parse_token(raw), raw.parse::<i64>()) {
            (Some(c), _) => c,
            (None, Ok(position)) => store::checkpoint_at(&**client, position)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no event at position {position}")))?,
            _ => return Err(ApiError::Validation("after must be a position or a `next` token".into())),
        },
    };
    let events = store::read_all(&**client, after, limit).await?;
    let next = events.last().map_or(after, Checkpoint::of).token();
    let items: Vec<Value> = events.iter().map(event_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next": next })))
}

pub async fn stream(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    staff(&caller)?;
    let client = state.reads.get().await?;
    let events = store::read_stream(&**client, &path, 0).await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(format!("no stream {}", path.as_str())));
    }
    let items: Vec<Value> = events.iter().map(event_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "stream_id": path.as_str(), "items": items })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AsOfParams {
    as_of: Option<String>,
}

pub async fn balance_as_of(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<AsOfParams>,
) -> Result<HttpResponse, ApiError> {
    staff(&caller)?;
    let user = user_in_path(&path)?;
    let as_of = match params.as_of.as_deref() {
        None => Utc::now(),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map_err(|_| ApiError::Validation("as_of must be an RFC 3339 instant".into()))?
            .with_timezone(&Utc),
    };
    let client = state.reads.get().await?;
    let balance = history::balance_as_of(&**client, user, as_of)
        .await?
        .ok_or_else(|| ApiError::NotFound("the account did not exist at that instant".into()))?;
    Ok(HttpResponse::Ok().json(balance))
}
