//! Admin points adjustments and customer interaction logging.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::account::{Account, AccountCommand};
use domain::interactions::{InteractionKind, Interactions, RecordInteraction};
use domain::{Decide, LotId, ProductId, Role, UserId};
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};

use super::catalog::admin_run;
use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAdjustment {
    delta: i64,
    reason: String,
    #[serde(default)]
    reference: Option<String>,
}

struct Adjust {
    user: UserId,
    by: UserId,
    input: NewAdjustment,
}

impl Command for Adjust {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let account = uow.load::<Account>(&self.user.stream()).await?;
        let events = account.state.decide(AccountCommand::Adjust {
            delta: self.input.delta,
            reason: self.input.reason.trim().to_owned(),
            reference: self.input.reference.clone(),
            by: self.by,
            new_lot: LotId(Uuid::new_v4()),
            now: ctx.now,
        })?;
        let after = uow.push(account, &events)?;
        Ok(Reply::new(
            StatusCode::CREATED,
            json!({ "user_id": self.user, "delta": self.input.delta, "balance_after": after.balance() }),
        ))
    }
}

pub async fn adjust(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<NewAdjustment>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let user = path_id(&path, UserId::parse, "account")?;
    if input.value.reason.len() > 500 || input.value.reference.as_ref().is_some_and(|r| r.len() > 200) {
        return Err(ApiError::Validation("reason (500) or reference (200) is too long".into()));
    }
    let raw = input.raw.clone();
    let command = Adjust { user, by: caller.user_id(), input: input.value };
    admin_run(&req, &state, &caller, "AdjustPoints", &raw, &command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInteraction {
    product_id: ProductId,
    kind: InteractionKind,
}

struct Record(RecordInteraction);

impl Command for Record {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        if !uow.exists(&self.0.product_id.stream()).await? {
            return Err(ApiError::NotFound("no such product".into()));
        }
        // Interactions are stateless: this loads the stream's version, not its events.
        let interactions = uow.load::<Interactions>(&self.0.user_id.interactions_stream()).await?;
        let Ok(events) = interactions.state.decide(self.0.clone());
        uow.push(interactions, &events)?;
        Ok(Reply::new(StatusCode::ACCEPTED, json!({ "accepted": true })))
    }
}

pub async fn record_interaction(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewInteraction>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "RecordInteraction", &caller, Role::Customer);
    let command = Record(RecordInteraction {
        user_id: caller.user_id(),
        product_id: input.value.product_id,
        kind: input.value.kind,
    });
    pipeline::run(&state, ctx, idempotency, &command).await
}
