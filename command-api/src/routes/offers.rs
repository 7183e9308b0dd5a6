//! Golden-hour offers (design §11), admin only: create one on a product, cancel one.
//! An offer lives in its product's stream, so both lock the product and decide against
//! its offers and stock with the command's clock.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use domain::product::{OfferTerms, Product, ProductCommand};
use domain::{Decide, OfferId, ProductId, Role};
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};
use infra::store;
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::catalog::admin_run;
use super::redemptions::Cancellation;
use crate::pipeline::{Command, Context, Reply};
use crate::state::AppState;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOffer {
    product_id: ProductId,
    point_cost: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    #[serde(default)]
    units: Option<i64>,
    #[serde(default)]
    per_customer_limit: Option<i64>,
    #[serde(default)]
    title: Option<String>,
}

struct CreateOffer {
    product_id: ProductId,
    terms: OfferTerms,
}

impl Command for CreateOffer {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let product = uow.load::<Product>(&self.product_id.stream()).await?;
        let events =
            product.state.decide(ProductCommand::CreateOffer { terms: self.terms.clone(), now: ctx.now })?;
        uow.push(product, &events)?;
        Ok(Reply::new(
            StatusCode::CREATED,
            json!({ "id": self.terms.offer_id, "product_id": self.product_id }),
        ))
    }
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewOffer>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let o = input.value;
    let terms = OfferTerms {
        offer_id: OfferId(Uuid::new_v4()),
        point_cost: o.point_cost,
        // Postgres keeps microseconds; so do the events, so both read back alike.
        starts_at: o.starts_at.trunc_subsecs(6),
        ends_at: o.ends_at.trunc_subsecs(6),
        units: o.units,
        per_customer_limit: o.per_customer_limit,
        title: o.title.map(|t| t.trim().to_owned()),
    };
    // The shape of the terms first (a bad body is a 422 whether or not the product
    // exists); the product's price, stock and other offers are checked under its lock.
    domain::product::validate_terms(&terms, i64::MAX, i64::MAX, Utc::now())?;
    let command = CreateOffer { product_id: o.product_id, terms };
    admin_run(&req, &state, &caller, "CreateOffer", &input.raw, &command).await
}

struct CancelOffer {
    id: OfferId,
    reason: Option<String>,
}

impl Command for CancelOffer {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let stream = store::stream_of_offer(uow.tx(), self.id.0)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such offer".into()))?;
        let product = uow.load::<Product>(&stream).await?;
        let events = product.state.decide(ProductCommand::CancelOffer {
            offer_id: self.id,
            reason: self.reason.clone(),
            now: ctx.now,
        })?;
        uow.push(product, &events)?;
        Ok(Reply::new(StatusCode::OK, json!({ "id": self.id, "status": "cancelled", "ended_at": ctx.now })))
    }
}

pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<Cancellation>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, OfferId::parse, "offer")?;
    let command = CancelOffer { id, reason: input.value.reason()? };
    admin_run(&req, &state, &caller, "CancelOffer", &input.raw, &command).await
}
