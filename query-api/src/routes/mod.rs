//! The query API's HTTP surface (the README's "Query API" table), one module per area.

pub mod accounts;
pub mod audit;
pub mod catalog;
pub mod experiments;
pub mod export;
pub mod health;
pub mod offers;
pub mod orders;
pub mod recommendations;
pub mod users;
pub mod webhooks;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::Role;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope("/v1")
                .route("/me", web::get().to(users::me))
                .route("/me/export", web::get().to(export::export))
                .route("/users", web::get().to(users::find))
                .route("/users/{id}", web::get().to(users::user))
                .route("/me/balance", web::get().to(accounts::my_balance))
                .route("/accounts/{id}/balance", web::get().to(accounts::balance))
                .route("/accounts/{id}/ledger", web::get().to(accounts::ledger))
                .route("/accounts/{id}/redemptions", web::get().to(orders::account_redemptions))
                .route("/accounts/{id}/purchases", web::get().to(orders::account_purchases))
                .route("/redemptions", web::get().to(orders::queue))
                .route("/categories", web::get().to(catalog::categories))
                .route("/categories/{id}", web::get().to(catalog::category))
                .route("/products", web::get().to(catalog::products))
                .route("/products/{id}", web::get().to(catalog::product))
                .route("/offers", web::get().to(offers::offers))
                .route("/credit-packages", web::get().to(catalog::packages))
                .route("/credit-purchases/{id}", web::get().to(orders::purchase))
                .route("/redemptions/{id}", web::get().to(orders::redemption))
                .route("/recommendations", web::post().to(recommendations::recommend))
                .route("/experiments/{id}/assignment", web::get().to(experiments::assignment))
                .route("/experiments/{id}/results", web::get().to(experiments::results))
                .route("/webhook-endpoints", web::get().to(webhooks::endpoints))
                .route("/webhook-endpoints/{id}/deliveries", web::get().to(webhooks::deliveries))
                .route("/audit/events", web::get().to(audit::events))
                .route("/audit/streams/{stream_id}", web::get().to(audit::stream))
                .route("/audit/accounts/{id}/balance", web::get().to(audit::balance_as_of)),
        );
}

/// `limit` and `cursor` of a paged list.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::Validation(format!("limit must be between 1 and {MAX_LIMIT}"))),
        }
    }

    /// The cursor, decoded by `parse`; a cursor it refuses is `422`.
    pub fn cursor<C>(&self, parse: impl Fn(&str) -> Option<C>) -> Result<Option<C>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| parse(c).ok_or_else(|| ApiError::Validation("cursor is not valid".into())))
            .transpose()
    }
}

/// The cursor of a list ordered by `(time, id)`: `<µs since the epoch>_<uuid>` of the
/// row's columns `at` and `id`.
pub fn time_cursor(row: &tokio_postgres::Row, at: usize, id: usize) -> String {
    format!(
        "{}_{}",
        row.get::<_, chrono::DateTime<chrono::Utc>>(at).timestamp_micros(),
        row.get::<_, Uuid>(id)
    )
}

/// A [`time_cursor`] read back.
pub fn parse_time_cursor(c: &str) -> Option<(chrono::DateTime<chrono::Utc>, Uuid)> {
    let (at, id) = c.split_once('_')?;
    Some((chrono::DateTime::from_timestamp_micros(at.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched rows: the extra row only says there is a
    /// next page, whose cursor is that of the last row shown.
    pub fn from_rows(
        rows: &[tokio_postgres::Row],
        limit: i64,
        item: impl Fn(&tokio_postgres::Row) -> T,
        cursor: impl Fn(&tokio_postgres::Row) -> String,
    ) -> Self {
        let shown = &rows[..rows.len().min(limit as usize)];
        let next_cursor = if rows.len() > shown.len() { shown.last().map(cursor) } else { None };
        Page { items: shown.iter().map(item).collect(), next_cursor }
    }
}

/// An id from the path; one that is not a uuid names no `what` (404).
pub fn id_in_path(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    path_id(raw, |s| Uuid::parse_str(s).ok(), what)
}

/// A user id from the path; an id that is not a uuid names no account.
pub fn user_in_path(raw: &str) -> Result<Uuid, ApiError> {
    id_in_path(raw, "account")
}

/// `404` unless the account exists in the event store (the source of truth, so a
/// lagging projection cannot make a new account look unknown).
pub async fn account_exists(client: &deadpool_postgres::Client, user: Uuid) -> Result<(), ApiError> {
    if infra::store::stream_exists(&***client, &domain::UserId(user).stream()).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound("no such account".into()))
    }
}

/// Customers see only their own data; admins and auditors see everyone's.
pub fn owner_or_staff(caller: &Caller, owner: Uuid) -> Result<(), ApiError> {
    if caller.0.sub == owner || caller.is(Role::Admin) || caller.is(Role::Auditor) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("owner, admin or auditor"))
    }
}

pub fn staff(caller: &Caller) -> Result<(), ApiError> {
    if caller.is(Role::Admin) || caller.is(Role::Auditor) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("auditor or admin"))
    }
}

/// A JSON response with a strong `ETag`; `304 Not Modified` when the client has it.
pub fn with_etag(req: &HttpRequest, body: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Unexpected(e.into()))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::ETAG, etag)).insert_header((header::CACHE_CONTROL, "no-cache"));
    Ok(if matches { res.finish() } else { res.content_type("application/json").body(bytes) })
}
