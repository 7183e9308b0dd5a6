//! Experiments (design §12), admin only: start one, stop one. At most one runs per
//! key: starting takes the key's lock, then asks the store whether one is running.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::experiment::{
    Experiment, ExperimentCommand, ExperimentTerms, Variant, DEFAULT_ATTRIBUTION_HOURS,
};
use domain::{Decide, ExperimentId};
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json, RawBody};
use infra::store;
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::catalog::admin_run;
use crate::pipeline::{Command, Context, Reply};
use crate::state::AppState;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExperiment {
    key: String,
    variants: Vec<NewVariant>,
    #[serde(default)]
    attribution_hours: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    name: String,
    weight: f64,
}

struct StartExperiment {
    id: ExperimentId,
    terms: ExperimentTerms,
}

impl Command for StartExperiment {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        // A lock on the key's name (no stream of its own) serializes starts per key.
        uow.lock(&[&format!("experiment-key-{}", self.terms.key)]).await?;
        let another_running = store::running_experiment(uow.tx(), &self.terms.key).await?.is_some();
        let experiment = uow.fresh::<Experiment>(self.id.stream());
        let events = experiment.state.decide(ExperimentCommand::Start {
            experiment_id: self.id,
            terms: self.terms.clone(),
            another_running,
            now: ctx.now,
        })?;
        uow.push(experiment, &events)?;
        Ok(Reply::new(StatusCode::CREATED, json!({ "id": self.id, "key": self.terms.key })))
    }
}

pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewExperiment>,
) -> Result<HttpResponse, ApiError> {
    caller.require(domain::Role::Admin)?;
    let e = input.value;
    let terms = ExperimentTerms {
        key: e.key,
        variants: e.variants.into_iter().map(|v| Variant { name: v.name, weight: v.weight }).collect(),
        attribution_hours: e.attribution_hours.unwrap_or(DEFAULT_ATTRIBUTION_HOURS),
    };
    domain::experiment::validate_terms(&terms)?;
    let command = StartExperiment { id: ExperimentId(Uuid::new_v4()), terms };
    admin_run(&req, &state, &caller, "StartExperiment", &input.raw, &command).await
}

struct StopExperiment(ExperimentId);

impl Command for StopExperiment {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let experiment = uow.load::<Experiment>(&self.0.stream()).await?;
        let events = experiment.state.decide(ExperimentCommand::Stop { now: ctx.now })?;
        uow.push(experiment, &events)?;
        Ok(Reply::new(StatusCode::OK, json!({ "id": self.0, "status": "stopped" })))
    }
}

pub async fn stop(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    RawBody(raw): RawBody,
) -> Result<HttpResponse, ApiError> {
    caller.require(domain::Role::Admin)?;
    let id = path_id(&path, ExperimentId::parse, "experiment")?;
    admin_run(&req, &state, &caller, "StopExperiment", &raw, &StopExperiment(id)).await
}
