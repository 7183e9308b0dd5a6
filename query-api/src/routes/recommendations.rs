//! `POST /v1/recommendations` (customers).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use domain::Role;
use infra::http::error::ApiError;
use infra::http::extract::{Caller, Json};
use infra::read_model::Projection;
use serde::Deserialize;

use super::accounts::balance_doc;
use crate::fresh;
use crate::reco::rules;
use crate::state::AppState;

const MAX_LIMIT: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    limit: Option<i64>,
}

pub async fn recommend(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: Json<Request>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let limit = match body.value.limit {
        None => 5,
        Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::Validation(format!("limit must be between 1 and {MAX_LIMIT}"))),
    };
    let fresh =
        fresh::wait_for(&state, &req, &[Projection::Accounts, Projection::Catalog, Projection::Insights])
            .await?;
    let balance = balance_doc(&state, fresh, caller.0.sub).await?;
    let spendable = balance.spendable(Utc::now());
    let client = state.pool.get().await?;
    let candidates = rules::candidates(&**client, caller.0.sub, spendable, Utc::now()).await?;
    drop(client);
    let mut reco =
        state.reco.recommend(&state.redis, &state.metrics, &balance, spendable, &candidates, limit).await;
    // A cached answer may name an offer that has ended since.
    let now = Utc::now();
    reco.pick.products = reco.pick.products.into_iter().map(|doc| doc.at(now)).collect();
    Ok(HttpResponse::Ok().json(reco))
}
