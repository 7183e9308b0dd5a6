//! Balances and the points ledger (projection `accounts`).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::read_model::{self, Projection};
use infra::views::{self, BalanceDoc};
use serde::Serialize;
use uuid::Uuid;

use super::{account_exists, owner_or_staff, user_in_path, Page, PageParams};
use crate::fresh::{self, Fresh};
use crate::state::AppState;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Balance {
    pub user_id: Uuid,
    /// Points the customer can spend now (lots past their expiry left out).
    pub balance: i64,
    pub lifetime_earned: i64,
    pub lifetime_spent: i64,
    /// The lots that will expire, soonest first (at most 5).
    pub expiring: Vec<views::Expiring>,
}

/// How many expiring lots a balance document lists.
const EXPIRING_SHOWN: usize = 5;

pub async fn my_balance(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let fresh = fresh::wait_for(&state, &req, &[Projection::Accounts]).await?;
    Ok(HttpResponse::Ok().json(balance_of(&state, fresh, caller.0.sub).await?))
}

pub async fn balance(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = user_in_path(&path)?;
    owner_or_staff(&caller, user)?;
    let fresh = fresh::wait_for(&state, &req, &[Projection::Accounts]).await?;
    Ok(HttpResponse::Ok().json(balance_of(&state, fresh, user).await?))
}

/// The balance document: Redis first, Postgres when Redis misses or is behind.
pub async fn balance_doc(state: &AppState, fresh: Fresh, user: Uuid) -> Result<BalanceDoc, ApiError> {
    if let Some(doc) =
        fresh::cached::<BalanceDoc>(state, fresh, Projection::Accounts, &read_model::balance_key(user)).await
    {
        return Ok(doc);
    }
    let client = state.reads.get().await?;
    let statement = client.prepare_cached(views::BALANCE_SQL).await?;
    let row = client.query_opt(&statement, &[&user]).await?;
    row.map(|r| views::balance_from_row(&r)).ok_or_else(|| ApiError::NotFound("no such account".into()))
}

async fn balance_of(state: &AppState, fresh: Fresh, user: Uuid) -> Result<Balance, ApiError> {
    let doc = balance_doc(state, fresh, user).await?;
    let now = Utc::now();
    Ok(Balance {
        user_id: doc.user_id,
        balance: doc.spendable(now),
        lifetime_earned: doc.lifetime_earned,
        lifetime_spent: doc.lifetime_spent,
        expiring: doc.expiring(now, EXPIRING_SHOWN),
    })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LedgerLine {
    at: DateTime<Utc>,
    kind: String,
    delta: i64,
    balance_after: i64,
    reference: Option<String>,
}

/// Newest first; the cursor is the account version of the last line returned.
pub async fn ledger(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let user = user_in_path(&path)?;
    owner_or_staff(&caller, user)?;
    let limit = params.limit()?;
    let before = params.cursor(|c| c.parse::<i64>().ok())?.unwrap_or(i64::MAX);
    fresh::wait_for(&state, &req, &[Projection::Accounts]).await?;
    let client = state.reads.get().await?;
    let rows = client
        .query(
            "SELECT version, at, kind, delta, balance_after, reference FROM read.ledger \
             WHERE user_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
            &[&user, &before, &(limit + 1)],
        )
        .await?;
    if rows.is_empty() {
        account_exists(&client, user).await?;
    }
    let line = |r: &tokio_postgres::Row| LedgerLine {
        at: r.get(1),
        kind: r.get(2),
        delta: r.get(3),
        balance_after: r.get(4),
        reference: r.get(5),
    };
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, line, |r| r.get::<_, i64>(0).to_string())))
}
