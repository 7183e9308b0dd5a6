//! Profiles (design §10), read from the `users` table, where personal data lives (never
//! in events): `GET /v1/me`, `GET /v1/users/{id}` and `GET /v1/users?email=`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use domain::Role;
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{id_in_path, staff};
use crate::state::AppState;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Profile {
    user_id: Uuid,
    email: String,
    name: String,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, email, name, roles, created_at, erased_at";

/// A profile, or the erasure that took its place.
enum Found {
    Profile(Profile),
    Erased { user_id: Uuid, erased_at: DateTime<Utc> },
}

fn found(r: &Row) -> Found {
    match r.get::<_, Option<DateTime<Utc>>>(5) {
        Some(erased_at) => Found::Erased { user_id: r.get(0), erased_at },
        None => Found::Profile(Profile {
            user_id: r.get(0),
            email: r.get::<_, Option<String>>(1).unwrap_or_default(),
            name: r.get::<_, Option<String>>(2).unwrap_or_default(),
            roles: r.get(3),
            created_at: r.get(4),
        }),
    }
}

async fn by_id(state: &AppState, id: Uuid) -> Result<Found, ApiError> {
    let client = state.reads.get().await?;
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row = client.query_opt(&sql, &[&id]).await?;
    row.map(|r| found(&r)).ok_or_else(|| ApiError::NotFound("no such user".into()))
}

/// The caller's profile: `404` once erased.
pub async fn my_profile(state: &AppState, user: Uuid) -> Result<Profile, ApiError> {
    match by_id(state, user).await? {
        Found::Profile(p) => Ok(p),
        Found::Erased { .. } => Err(ApiError::NotFound("this user was erased".into())),
    }
}

pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(my_profile(&state, caller.0.sub).await?))
}

pub async fn user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    staff(&caller)?;
    let id = id_in_path(&path, "user")?;
    Ok(match by_id(&state, id).await? {
        Found::Profile(p) => HttpResponse::Ok().json(p),
        Found::Erased { user_id, erased_at } => HttpResponse::Ok()
            .json(serde_json::json!({ "user_id": user_id, "erased": true, "erased_at": erased_at })),
    })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Lookup {
    email: Option<String>,
}

/// Admins find a user by email: exact, case-insensitive.
pub async fn find(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Lookup>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let email = query.email.as_deref().map(str::trim).filter(|e| !e.is_empty() && e.len() <= 254);
    let email =
        email.ok_or_else(|| ApiError::Validation("email must be given (at most 254 bytes)".into()))?;
    let client = state.reads.get().await?;
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)");
    let items: Vec<Profile> = client
        .query(&sql, &[&email])
        .await?
        .iter()
        .filter_map(|r| match found(r) {
            Found::Profile(p) => Some(p),
            Found::Erased { .. } => None,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}
