//! Credit purchases and redemptions (projection `orders`).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::read_model::Projection;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{account_exists, id_in_path, owner_or_staff, user_in_path, Page, PageParams};
use crate::fresh;
use crate::state::AppState;

#[derive(Debug, Serialize)]
struct Purchase {
    id: Uuid,
    user_id: Uuid,
    package_id: Uuid,
    price: String,
    currency: String,
    points: i64,
    status: String,
    payment_ref: Option<String>,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Redemption {
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
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, user_id, package_id, price::text, currency, points, status, payment_ref, failure_reason, \
                    created_at, updated_at FROM read.purchases WHERE id = $1",
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
    let client = state.pool.get().await?;
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
    let (before_at, before_id) = params.cursor(parse_cursor)?.unzip();
    fresh::wait_for(&state, &req, &[Projection::Orders]).await?;
    let client = state.pool.get().await?;
    let sql = format!(
        "SELECT {REDEMPTION_COLUMNS} FROM read.redemptions WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = client.query(&sql, &[&user, &before_at, &before_id, &(limit + 1)]).await?;
    if rows.is_empty() {
        account_exists(&client, user).await?;
    }
    let cursor =
        |r: &Row| format!("{}_{}", r.get::<_, DateTime<Utc>>(7).timestamp_micros(), r.get::<_, Uuid>(0));
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, redemption_from, cursor)))
}

/// A `<µs since the epoch>_<uuid>` cursor.
pub(super) fn parse_cursor(c: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (at, id) = c.split_once('_')?;
    Some((DateTime::from_timestamp_micros(at.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}
