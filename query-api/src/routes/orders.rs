//! Credit purchases and redemptions (projection `orders`): one at a time, an account's
//! (newest first), and the fulfilment queue (oldest first).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::read_model::Projection;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    account_exists, id_in_path, owner_or_staff, parse_time_cursor, staff, time_cursor, user_in_path, Page,
    PageParams,
};
use crate::fresh;
use crate::state::AppState;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Purchase {
    id: Uuid,
    user_id: Uuid,
    package_id: Uuid,
    price: String,
    currency: String,
    points: i64,
    status: String,
    payment_ref: Option<String>,
    failure_reason: Option<String>,
    /// For a refunded purchase: `{clawed_back, unrecovered}` points.
    refund: Option<serde_json::Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Redemption {
    id: Uuid,
    user_id: Uuid,
    product_id: Uuid,
    quantity: i64,
    points: i64,
    /// The golden-hour offer that priced it, if any.
    offer_id: Option<Uuid>,
    status: String,
    cancel_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const REDEMPTION_COLUMNS: &str =
    "id, user_id, product_id, quantity, points, status, cancel_reason, created_at, updated_at, offer_id";

fn redemption_from(r: &Row) -> Redemption {
    Redemption {
        id: r.get(0),
        user_id: r.get(1),
        product_id: r.get(2),
        quantity: r.get(3),
        points: r.get(4),
        status: r.get(5),
        cancel_reason: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
        offer_id: r.get(9),
    }
}

pub async fn purchase(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_in_path(&path, "purchase")?;
    fresh::wait_for(&state, &req, &[Projection::Orders]).await?;
    let client = state.reads.get().await?;
    let row = client
        .query_opt(
            "SELECT id, user_id, package_id, price::text, currency, points, status, payment_ref, failure_reason, \
                    created_at, updated_at, clawed_back, unrecovered FROM read.purchases WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("no such purchase".into()))?;
    owner_or_staff(&caller, row.get(1))?;
    Ok(HttpResponse::Ok().json(Purchase {
        id: row.get(0),
        user_id: row.get(1),
        package_id: row.get(2),
        price: row.get(3),
        currency: row.get(4),
        points: row.get(5),
        status: row.get(6),
        payment_ref: row.get(7),
        failure_reason: row.get(8),
        refund: row.get::<_, Option<i64>>(11).map(|clawed_back| {
            serde_json::json!({ "clawed_back": clawed_back, "unrecovered": row.get::<_, Option<i64>>(12) })
        }),
        created_at: row.get(9),
        updated_at: row.get(10),
    }))
}

pub async fn redemption(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_in_path(&path, "redemption")?;
    fresh::wait_for(&state, &req, &[Projection::Orders]).await?;
    let client = state.reads.get().await?;
    let sql = format!("SELECT {REDEMPTION_COLUMNS} FROM read.redemptions WHERE id = $1");
    let row = client
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound("no such redemption".into()))?;
    owner_or_staff(&caller, row.get(1))?;
    Ok(HttpResponse::Ok().json(redemption_from(&row)))
}

/// Newest first; the cursor is `<created_at µs>_<id>` of the last item returned.
pub async fn account_redemptions(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let user = user_in_path(&path)?;
    owner_or_staff(&caller, user)?;
    let limit = params.limit()?;
    let (before_at, before_id) = params.cursor(parse_time_cursor)?.unzip();
    fresh::wait_for(&state, &req, &[Projection::Orders]).await?;
    let client = state.reads.get().await?;
    let sql = format!(
        "SELECT {REDEMPTION_COLUMNS} FROM read.redemptions WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = client.query(&sql, &[&user, &before_at, &before_id, &(limit + 1)]).await?;
    if rows.is_empty() {
        account_exists(&client, user).await?;
    }
    let cursor = |r: &Row| time_cursor(r, 7, 0);
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, redemption_from, cursor)))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PurchaseLine {
    id: Uuid,
    package_id: Uuid,
    status: String,
    price: String,
    currency: String,
    points: i64,
    created_at: DateTime<Utc>,
    /// When it was paid or failed (`null` while pending).
    settled_at: Option<DateTime<Utc>>,
}

/// `GET /v1/accounts/{id}/purchases`: newest first; the cursor is `<created_at µs>_<id>`.
pub async fn account_purchases(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let user = user_in_path(&path)?;
    owner_or_staff(&caller, user)?;
    let limit = params.limit()?;
    let (before_at, before_id) = params.cursor(parse_time_cursor)?.unzip();
    fresh::wait_for(&state, &req, &[Projection::Orders]).await?;
    let client = state.reads.get().await?;
    let rows = client
        .query(
            "SELECT id, package_id, status, price::text, currency, points, created_at, \
                    CASE WHEN status = 'pending' THEN NULL ELSE updated_at END \
             FROM read.purchases WHERE user_id = $1 \
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
            &[&user, &before_at, &before_id, &(limit + 1)],
        )
        .await?;
    if rows.is_empty() {
        account_exists(&client, user).await?;
    }
    let line = |r: &Row| PurchaseLine {
        id: r.get(0),
        package_id: r.get(1),
        status: r.get(2),
        price: r.get(3),
        currency: r.get(4),
        points: r.get(5),
        created_at: r.get(6),
        settled_at: r.get(7),
    };
    let cursor = |r: &Row| time_cursor(r, 6, 0);
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, line, cursor)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QueueQuery {
    status: Option<String>,
    product_id: Option<String>,
    user_id: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn uuid_param(value: Option<&str>, name: &str) -> Result<Option<Uuid>, ApiError> {
    value
        .map(|v| Uuid::parse_str(v).map_err(|_| ApiError::Validation(format!("{name} must be a uuid"))))
        .transpose()
}

/// `GET /v1/redemptions` (admins, auditors): the fulfilment queue, oldest first,
/// filtered by status, product and user; the cursor is `<created_at µs>_<id>`.
pub async fn queue(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    params: web::Query<QueueQuery>,
) -> Result<HttpResponse, ApiError> {
    staff(&caller)?;
    let status = params.status.as_deref();
    if status.is_some_and(|s| !["placed", "fulfilled", "cancelled"].contains(&s)) {
        return Err(ApiError::Validation("status must be placed, fulfilled or cancelled".into()));
    }
    let product = uuid_param(params.product_id.as_deref(), "product_id")?;
    let user = uuid_param(params.user_id.as_deref(), "user_id")?;
    let page = PageParams { limit: params.limit, cursor: params.cursor.clone() };
    let limit = page.limit()?;
    let (after_at, after_id) = page.cursor(parse_time_cursor)?.unzip();
    fresh::wait_for(&state, &req, &[Projection::Orders]).await?;
    let client = state.reads.get().await?;
    let sql = format!(
        "SELECT {REDEMPTION_COLUMNS} FROM read.redemptions \
         WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR product_id = $2) \
           AND ($3::uuid IS NULL OR user_id = $3) \
           AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid)) \
         ORDER BY created_at, id LIMIT $6"
    );
    let rows = client.query(&sql, &[&status, &product, &user, &after_at, &after_id, &(limit + 1)]).await?;
    let cursor = |r: &Row| time_cursor(r, 7, 0);
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, redemption_from, cursor)))
}
