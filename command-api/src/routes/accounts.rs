//! Admin points adjustments and customer interaction logging.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::account::{Account, AccountCommand};
use domain::interactions::{InteractionKind, Interactions, RecordInteraction};
use domain::{Aggregate, Decide, LotId, ProductId, Role, UserId};
use serde::Deserialize;
use serde_json::json;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::catalog::admin_run;
use crate::error::ApiError;
use crate::extract::{path_id, Caller, Json};
use crate::pipeline::{self, body, Command, Context, IdempotencyKey, Reply};
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
    async fn execute(&self, tx: &Transaction<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let stream = self.user.stream();
        let locked = pipeline::lock(tx, &[&stream]).await?;
        let account = pipeline::load_snapshotted::<Account>(tx, &stream, &locked).await?;
        let events = account.state.decide(AccountCommand::Adjust {
            delta: self.input.delta,
            reason: self.input.reason.trim().to_owned(),
            reference: self.input.reference.clone(),
            by: self.by,
            new_lot: LotId(Uuid::new_v4()),
            now: ctx.now,
        })?;
        let mut after = account.state.clone();
        events.iter().for_each(|e| after.apply(e));
        let position =
            pipeline::append(tx, ctx, vec![pipeline::stream_append(stream.clone(), &account, &events)])
                .await?;
        pipeline::snapshot_if_due(tx, &stream, &account, &events, position).await?;
        Ok(Reply {
            status: StatusCode::CREATED,
            body: body(
                json!({ "user_id": self.user, "delta": self.input.delta, "balance_after": after.balance() }),
            ),
            position,
        })
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
    async fn execute(&self, tx: &Transaction<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        if !pipeline::stream_exists(tx, &self.0.product_id.stream()).await? {
            return Err(ApiError::NotFound("no such product".into()));
        }
        let stream = self.0.user_id.interactions_stream();
        // The stream only ever grows and its state is empty: read its version, not its events.
        let versions = infra::store::lock_streams(tx, &[&stream]).await?;
        let version = versions.get(&stream).copied().unwrap_or(0);
        let loaded = pipeline::Loaded { state: Interactions, version, last: None, snapshot_version: 0 };
        let Ok(events) = loaded.state.decide(self.0.clone());
        let position =
            pipeline::append(tx, ctx, vec![pipeline::stream_append(stream, &loaded, &events)]).await?;
        Ok(Reply { status: StatusCode::ACCEPTED, body: body(json!({ "accepted": true })), position })
    }
}

pub async fn record_interaction(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewInteraction>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let idempotency = IdempotencyKey::from_request(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "RecordInteraction", &caller, Role::Customer);
    let command = Record(RecordInteraction {
        user_id: caller.user_id(),
        product_id: input.value.product_id,
        kind: input.value.kind,
    });
    pipeline::run(&state, ctx, idempotency, &command).await
}
