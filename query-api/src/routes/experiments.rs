//! `GET /v1/experiments/{id}/assignment` (customers) and
//! `GET /v1/experiments/{id}/results` (admins, auditors).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use domain::Role;
use infra::behaviour;
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::read_model::Projection;
use serde_json::json;

use super::{id_in_path, staff};
use crate::experiments::{self, results};
use crate::fresh;
use crate::state::AppState;

async fn experiment(state: &AppState, id: uuid::Uuid) -> Result<experiments::Experiment, ApiError> {
    let client = state.reads.get().await?;
    experiments::load(&**client, id).await?.ok_or_else(|| ApiError::NotFound("no such experiment".into()))
}

/// The caller's variant: sticky, the same on every call and every instance. The first
/// assignment of a running experiment is recorded (it counts as `users_assigned`).
pub async fn assignment(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let id = id_in_path(&path, "experiment")?;
    fresh::wait_for(&state, &req, &[Projection::Insights]).await?;
    let e = experiment(&state, id).await?;
    let variant = experiments::assign(e.id, caller.0.sub, &e.variants)
        .ok_or_else(|| ApiError::InvalidState("the experiment has no variant with weight".into()))?;
    let running = e.stopped_at.is_none();
    if running {
        behaviour::record_assignment(
            &**state.pool.get().await?,
            e.id,
            caller.0.sub,
            &variant.name,
            Utc::now(),
        )
        .await?;
    }
    Ok(HttpResponse::Ok().json(json!({
        "experiment_id": e.id,
        "key": e.key,
        "variant": variant.name,
        "running": running,
    })))
}

pub async fn results(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    staff(&caller)?;
    let id = id_in_path(&path, "experiment")?;
    fresh::wait_for(&state, &req, &[Projection::Insights, Projection::Orders]).await?;
    let e = experiment(&state, id).await?;
    let names: Vec<String> = e.variants.iter().map(|v| v.name.clone()).collect();
    let client = state.reads.get().await?;
    let variants = results::results(&**client, Some(e.id), e.attribution_hours, &names).await?;
    Ok(HttpResponse::Ok().json(json!({
        "experiment": {
            "id": e.id,
            "key": e.key,
            "variants": e.variants,
            "attribution_hours": e.attribution_hours,
            "started_at": e.started_at,
            "stopped_at": e.stopped_at,
            "running": e.stopped_at.is_none(),
        },
        "baseline": names.first(),
        "variants": variants,
    })))
}
