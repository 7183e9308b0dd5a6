//! Admin points adjustments and customer interaction logging (one or a batch).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::account::{Account, AccountCommand};
use domain::interactions::InteractionKind;
use domain::{Decide, LotId, ProductId, RecommendationId, Role, UserId};
use infra::behaviour::{self, Interaction};
use infra::store;
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};

use super::catalog::admin_run;
use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInteraction {
    product_id: ProductId,
    kind: InteractionKind,
    #[serde(default)]
    recommendation_id: Option<RecommendationId>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionBatch {
    items: Vec<NewInteraction>,
}

/// The most interactions one batch may carry.
pub const MAX_BATCH: usize = 500;
/// The body limit of a batch: 500 items of about 140 bytes each (with a
/// `recommendation_id`), with room for whitespace.
pub const MAX_BATCH_BODY_BYTES: usize = 256 * 1024;

/// Interactions are behaviour data (see `infra::behaviour`): checked against the
/// store (the product) and the exposures (the recommendation), then written beside
/// the ledger, not appended to it.
struct Record {
    user: UserId,
    items: Vec<NewInteraction>,
}

impl Command for Record {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let mut streams: Vec<String> = self.items.iter().map(|i| i.product_id.stream()).collect();
        streams.sort_unstable();
        streams.dedup();
        if let Some(missing) = store::missing_streams(uow.tx(), &streams).await?.first() {
            return Err(ApiError::NotFound(format!("no such product: {missing}")));
        }
        let mut named: Vec<Uuid> =
            self.items.iter().filter_map(|i| i.recommendation_id.map(|r| r.0)).collect();
        named.sort_unstable();
        named.dedup();
        if !named.is_empty() {
            let unknown = behaviour::unknown_recommendations(uow.tx(), self.user.0, &named).await?;
            if let Some(unknown) = unknown.first() {
                return Err(ApiError::NotFound(format!("no recommendation {unknown} was shown to you")));
            }
        }
        let items: Vec<Interaction> = self
            .items
            .iter()
            .map(|i| Interaction {
                user_id: self.user.0,
                product_id: i.product_id.0,
                kind: i.kind.as_str(),
                recommendation_id: i.recommendation_id.map(|r| r.0),
            })
            .collect();
        // Behaviour data, not money: acknowledged without waiting for the WAL flush, so a
        // burst of it does not queue redemptions behind its fsyncs. A crash may lose the
        // last fraction of a second of interactions (README, "Experiments").
        uow.tx().batch_execute("SET LOCAL synchronous_commit TO off").await?;
        behaviour::record_interactions(uow.tx(), &items, ctx.now).await?;
        Ok(Reply::new(StatusCode::ACCEPTED, json!({ "accepted": items.len() })))
    }
}

async fn record(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    raw: &[u8],
    items: Vec<NewInteraction>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let idempotency = pipeline::idempotency_key(req, caller.0.sub.to_string(), raw)?;
    let ctx = Context::for_caller(req, "RecordInteraction", caller, Role::Customer);
    pipeline::run(state, ctx, idempotency, &Record { user: caller.user_id(), items }).await
}

pub async fn record_interaction(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewInteraction>,
) -> Result<HttpResponse, ApiError> {
    record(&req, &state, &caller, &input.raw, vec![input.value]).await
}

pub async fn record_interactions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<InteractionBatch>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let items = input.value.items;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::Validation(format!("a batch has 1 to {MAX_BATCH} items")));
    }
    record(&req, &state, &caller, &input.raw, items).await
}
