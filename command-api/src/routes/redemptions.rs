//! Redemptions: placing one reserves stock and debits points in one transaction across
//! the product, account and redemption streams; cancelling releases and refunds;
//! fulfilling ships. Streams are locked before they are loaded, so a hot product
//! serializes its redemptions instead of failing them with conflicts.
//!
//! The price is quoted from the product's state under that lock, at the command's own
//! clock: inside a golden-hour offer's window the offer's price, its units and the
//! customer's limit are decided there, never against a read model (design §11).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::account::{Account, AccountCommand, AccountEvent, Allocation};
use domain::product::{Order, Product, ProductCommand};
use domain::redemption::{Redemption, RedemptionCommand};
use domain::{is_valid_amount, Decide, DomainEvent, ProductId, RecommendationId, RedemptionId, Role};
use infra::behaviour;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json, RawBody};
use infra::store;
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::hot::Batchable;
use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRedemption {
    product_id: ProductId,
    quantity: i64,
    /// The most the customer agrees to pay for the whole order.
    #[serde(default)]
    max_points: Option<i64>,
    /// `false`: pay the list price when the live offer cannot be had.
    #[serde(default)]
    offer_only: Option<bool>,
    /// The recommendation that led here (design §12), for direct attribution.
    #[serde(default)]
    recommendation_id: Option<RecommendationId>,
}

/// Placing a redemption: batched per product (see [`crate::hot`]).
pub struct PlaceRedemption {
    id: RedemptionId,
    product_id: ProductId,
    order: Order,
    recommendation_id: Option<RecommendationId>,
}

impl Command for PlaceRedemption {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let Order { user_id, quantity, .. } = self.order;
        if let Some(r) = self.recommendation_id {
            if !behaviour::unknown_recommendations(uow.tx(), user_id.0, &[r.0]).await?.is_empty() {
                return Err(ApiError::NotFound(format!("no recommendation {r} was shown to you")));
            }
        }
        let (account_stream, product_stream) = (user_id.stream(), self.product_id.stream());
        uow.lock(&[&account_stream, &product_stream]).await?;
        let product = uow.load::<Product>(&product_stream).await?;
        let quote = product.state.quote(&self.order, ctx.now)?;
        let reserved = product.state.decide(ProductCommand::Reserve {
            redemption_id: self.id,
            quantity,
            buyer: user_id,
            offer_id: quote.offer_id,
        })?;
        let account = uow.load::<Account>(&account_stream).await?;
        let points = quote.points;
        let debited =
            account.state.decide(AccountCommand::Debit { redemption_id: self.id, points, now: ctx.now })?;
        let redemption = uow.fresh::<Redemption>(self.id.stream());
        let placed = redemption.state.decide(RedemptionCommand::Place {
            redemption_id: self.id,
            user_id,
            product_id: self.product_id,
            quantity,
            points,
            offer_id: quote.offer_id,
            recommendation_id: self.recommendation_id,
        })?;
        let after = uow.push(account, &debited)?;
        uow.push(product, &reserved)?;
        uow.push(redemption, &placed)?;
        Ok(Reply::new(
            StatusCode::CREATED,
            json!({
                "id": self.id,
                "status": "placed",
                "product_id": self.product_id,
                "quantity": quantity,
                "points": points,
                "point_cost": quote.point_cost,
                "offer_id": quote.offer_id,
                "balance_after": after.balance(),
            }),
        ))
    }
}

pub async fn place(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewRedemption>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let NewRedemption { product_id, quantity, max_points, offer_only, recommendation_id } = input.value;
    if !is_valid_amount(quantity) || quantity > 10_000 {
        return Err(ApiError::Validation("quantity must be 1 to 10000".into()));
    }
    if max_points.is_some_and(|m| !is_valid_amount(m)) {
        return Err(ApiError::Validation("max_points must be a positive whole number".into()));
    }
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "PlaceRedemption", &caller, Role::Customer);
    let order =
        Order { user_id: caller.user_id(), quantity, offer_only: offer_only.unwrap_or(true), max_points };
    let command = PlaceRedemption { id: RedemptionId(Uuid::new_v4()), product_id, order, recommendation_id };
    let (status, body, replayed) = state.redemptions.execute(&state, ctx, idempotency, command).await?;
    Ok(pipeline::render(&status, body, replayed))
}

impl Batchable for PlaceRedemption {
    fn hot_stream(&self) -> String {
        self.product_id.stream()
    }

    fn streams(&self) -> Vec<String> {
        vec![self.order.user_id.stream(), self.product_id.stream()]
    }

    /// The customers' accounts, in two reads for the whole batch.
    async fn prefetch(uow: &mut UnitOfWork<'_>, batch: &[&Self]) -> Result<(), ApiError> {
        let accounts: Vec<String> = batch.iter().map(|c| c.order.user_id.stream()).collect();
        uow.prefetch::<Account>(&accounts.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        Ok(())
    }
}

/// Cancel or fulfil: settle the redemption, then the stock (and, for a cancel, the points).
struct Settle {
    id: RedemptionId,
    command: RedemptionCommand,
}

impl Command for Settle {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let stream = self.id.stream();
        let redemption = uow.load::<Redemption>(&stream).await?;
        let settled = redemption.state.decide(self.command.clone())?;
        let (Some(user), Some(product_id)) = (redemption.state.user_id, redemption.state.product_id) else {
            return Err(ApiError::NotFound("no such redemption".into()));
        };
        let (account_stream, product_stream) = (user.stream(), product_id.stream());
        let cancelling = matches!(self.command, RedemptionCommand::Cancel { .. });
        if cancelling {
            uow.lock(&[&account_stream, &product_stream]).await?;
            let account = uow.load::<Account>(&account_stream).await?;
            let debited = debited(uow, &stream, &account_stream, self.id).await?;
            let refunded =
                account.state.decide(AccountCommand::Refund { redemption_id: self.id, debited })?;
            uow.push(account, &refunded)?;
        }
        let product = uow.load::<Product>(&product_stream).await?;
        let stock = product.state.decide(if cancelling {
            ProductCommand::Release { redemption_id: self.id, now: ctx.now }
        } else {
            ProductCommand::Ship { redemption_id: self.id }
        })?;
        uow.push(redemption, &settled)?;
        uow.push(product, &stock)?;
        let status = if cancelling { "cancelled" } else { "fulfilled" };
        Ok(Reply::new(StatusCode::OK, json!({ "id": self.id, "status": status })))
    }
}

/// What a redemption's debit took from each lot (empty if it has none). Its
/// `PointsDebited` was appended in the same transaction as its `RedemptionPlaced`, so
/// it is found through that transaction, however long the account's stream.
async fn debited(
    uow: &UnitOfWork<'_>,
    redemption_stream: &str,
    account_stream: &str,
    id: RedemptionId,
) -> Result<Vec<Allocation>, ApiError> {
    let events =
        store::written_with_first_event_of(uow.tx(), redemption_stream, account_stream, "PointsDebited")
            .await?;
    for e in events {
        let event =
            AccountEvent::decode(&e.event_type, &e.data).map_err(|e| ApiError::Unexpected(e.into()))?;
        if let AccountEvent::PointsDebited { redemption_id, allocations, .. } = event {
            if redemption_id == id {
                return Ok(allocations);
            }
        }
    }
    Ok(Vec::new())
}

/// The body of a cancel (of a redemption or an offer): an optional reason.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    #[serde(default)]
    reason: Option<String>,
}

impl Cancellation {
    /// The reason, trimmed (none if blank), at most 500 characters.
    pub fn reason(self) -> Result<Option<String>, ApiError> {
        let reason = self.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
            return Err(ApiError::Validation("reason must be at most 500 characters".into()));
        }
        Ok(reason)
    }
}

pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<Cancellation>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path, RedemptionId::parse, "redemption")?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "CancelRedemption", &caller, Role::Admin);
    let command = RedemptionCommand::Cancel {
        by: caller.user_id(),
        by_admin: caller.is(Role::Admin),
        reason: input.value.reason()?,
    };
    pipeline::run(&state, ctx, idempotency, &Settle { id, command }).await
}

pub async fn fulfil(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    RawBody(raw): RawBody,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, RedemptionId::parse, "redemption")?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &raw)?;
    let ctx = Context::for_caller(&req, "FulfilRedemption", &caller, Role::Admin);
    let command = RedemptionCommand::Fulfil { by: caller.user_id() };
    pipeline::run(&state, ctx, idempotency, &Settle { id, command }).await
}
