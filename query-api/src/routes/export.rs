//! `GET /v1/me/export` (GDPR art. 15/20): one JSON document with everything Tally holds
//! about the caller: profile, balance with its lots, ledger, purchases, redemptions,
//! interactions, and the recommendations shown (with the experiment variant).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::read_model::Projection;
use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::accounts::balance_doc;
use super::users::my_profile;
use crate::fresh;
use crate::state::AppState;

/// Every row `sql` (one `$1`: the user) returns, each as its JSON object.
async fn rows(client: &impl GenericClient, sql: &str, user: Uuid) -> Result<Vec<Value>, ApiError> {
    let wrapped = format!("SELECT to_jsonb(t) FROM ({sql}) t");
    Ok(client.query(&wrapped, &[&user]).await?.iter().map(|r| r.get(0)).collect())
}

pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = caller.0.sub;
    let profile = my_profile(&state, user).await?;
    let fresh = fresh::wait_for(&state, &req, &Projection::ALL).await?;
    let balance = balance_doc(&state, fresh, user).await?;
    let client = state.reads.get().await?;
    let ledger = rows(
        &**client,
        "SELECT at, kind, delta, balance_after, reference FROM read.ledger WHERE user_id = $1 ORDER BY version",
        user,
    )
    .await?;
    let purchases = rows(
        &**client,
        "SELECT id, package_id, price::text AS price, currency, points, status, payment_ref, failure_reason, \
                clawed_back, unrecovered, created_at, updated_at \
         FROM read.purchases WHERE user_id = $1 ORDER BY created_at, id",
        user,
    )
    .await?;
    let redemptions = rows(
        &**client,
        "SELECT id, product_id, quantity, points, offer_id, recommendation_id, status, cancel_reason, created_at, \
                updated_at FROM read.redemptions WHERE user_id = $1 ORDER BY created_at, id",
        user,
    )
    .await?;
    let interactions = rows(
        &**client,
        "SELECT product_id, kind, recommendation_id, at FROM behaviour.interactions WHERE user_id = $1 ORDER BY at, id",
        user,
    )
    .await?;
    let recommendations = rows(
        &**client,
        "SELECT id AS recommendation_id, experiment_key, experiment_id, variant, products, at \
         FROM behaviour.exposures WHERE user_id = $1 ORDER BY at, id",
        user,
    )
    .await?;
    let now = Utc::now();
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Disposition", "attachment; filename=\"tally-export.json\""))
        .json(json!({
            "exported_at": now,
            "profile": profile,
            "balance": {
                "balance": balance.spendable(now),
                "lifetime_earned": balance.lifetime_earned,
                "lifetime_spent": balance.lifetime_spent,
                "lots": balance.lots,
            },
            "ledger": ledger,
            "purchases": purchases,
            "redemptions": redemptions,
            "interactions": interactions,
            "recommendations": recommendations,
        })))
}
