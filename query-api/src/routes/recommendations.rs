//! `POST /v1/recommendations` (customers).
//!
//! The strategy is the user's variant of the experiment running for the key
//! `recommendations`, else the `RECO_AI_PERCENT` split (reported under the key
//! `default`). Every answer gets a `recommendation_id` and is recorded as an exposure
//! (behaviour data), which conversions are later attributed to.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use domain::Role;
use infra::behaviour::{self, Exposure};
use infra::http::error::ApiError;
use infra::http::extract::{Caller, Json};
use infra::read_model::Projection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::balance_doc;
use crate::experiments::{self, DEFAULT_KEY, RECOMMENDATIONS};
use crate::fresh;
use crate::reco::rules::Pick;
use crate::reco::{popular, rules, Source, Strategy};
use crate::state::AppState;

const MAX_LIMIT: usize = 20;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    limit: Option<i64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ExperimentRef {
    id: Uuid,
    key: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Answer {
    recommendation_id: Uuid,
    #[serde(flatten)]
    pick: Pick,
    source: Source,
    /// The variant the user is in: a strategy's name.
    variant: &'static str,
    /// The experiment that chose the variant (`null`: the default split).
    experiment: Option<ExperimentRef>,
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
    let projections = [Projection::Accounts, Projection::Catalog, Projection::Insights, Projection::Orders];
    let fresh = fresh::wait_for(&state, &req, &projections).await?;
    let user = caller.0.sub;
    let balance = balance_doc(&state, fresh, user).await?;
    let now = Utc::now();
    let spendable = balance.spendable(now);
    let client = state.reads.get().await?;
    let experiment = experiments::running(&**client, RECOMMENDATIONS).await?;
    let strategy = match &experiment {
        Some(e) => experiments::assign(e.id, user, &e.variants)
            .and_then(|v| Strategy::parse(&v.name))
            .unwrap_or(Strategy::Rules),
        None => state.reco.default_strategy(user),
    };
    let candidates = match strategy {
        Strategy::Popular => popular::candidates(&**client, spendable, now).await?,
        Strategy::Rules | Strategy::Ai => rules::candidates(&**client, user, spendable, now).await?,
    };
    drop(client);
    let (mut pick, source) = state
        .reco
        .recommend(&state.redis, &state.metrics, &balance, spendable, strategy, &candidates, limit)
        .await;
    // A cached answer may name an offer that has ended since.
    pick.products = pick.products.into_iter().map(|doc| doc.at(now)).collect();

    let exposure = Exposure {
        id: Uuid::new_v4(),
        user_id: user,
        experiment_key: experiment.as_ref().map_or(DEFAULT_KEY, |e| e.key.as_str()).to_owned(),
        experiment_id: experiment.as_ref().map(|e| e.id),
        variant: strategy.name().to_owned(),
        products: pick.products.iter().map(|p| p.id).collect(),
        at: now,
    };
    behaviour::record_exposure(&**state.pool.get().await?, &exposure).await?;
    let label = exposure.experiment_id.map_or_else(|| DEFAULT_KEY.to_owned(), |id| id.to_string());
    state.metrics.exposures.with_label_values(&[&label, strategy.name()]).inc();
    Ok(HttpResponse::Ok().json(Answer {
        recommendation_id: exposure.id,
        pick,
        source,
        variant: strategy.name(),
        experiment: experiment.map(|e| ExperimentRef { id: e.id, key: e.key }),
    }))
}
