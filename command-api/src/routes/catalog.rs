//! Admin catalog commands: categories, products (list, revise, delist, relist) and stock.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::category::{Category, CategoryCommand};
use domain::product::{Product, ProductChanges, ProductCommand, ProductDetails};
use domain::{CategoryId, Decide, ProductId, Role};
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json, RawBody};
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

/// Runs an admin command with the usual context and idempotency handling.
pub async fn admin_run(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    name: &'static str,
    raw: &[u8],
    command: &impl Command,
) -> Result<HttpResponse, ApiError> {
    let (status, body, replayed) = admin_execute(req, state, caller, name, raw, command).await?;
    Ok(pipeline::render(&status, body, replayed))
}

/// [`admin_run`], with the answer still to render (for a handler that adds to it what
/// the idempotency record must not keep).
pub async fn admin_execute(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    name: &'static str,
    raw: &[u8],
    command: &impl Command,
) -> Result<(StatusCode, serde_json::Map<String, serde_json::Value>, bool), ApiError> {
    caller.require(Role::Admin)?;
    let idempotency = pipeline::idempotency_key(req, caller.0.sub.to_string(), raw)?;
    let ctx = Context::for_caller(req, name, caller, Role::Admin);
    pipeline::execute(state, ctx, idempotency, command).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    name: String,
    #[serde(default)]
    description: String,
}

struct CreateCategory(CategoryId, NewCategory);

impl Command for CreateCategory {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let category = uow.fresh::<Category>(self.0.stream());
        let events = category.state.decide(CategoryCommand::Create {
            category_id: self.0,
            name: self.1.name.trim().to_owned(),
            description: self.1.description.clone(),
        })?;
        uow.push(category, &events)?;
        Ok(Reply::new(StatusCode::CREATED, json!({ "id": self.0 })))
    }
}

pub async fn create_category(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewCategory>,
) -> Result<HttpResponse, ApiError> {
    let command = CreateCategory(CategoryId(Uuid::new_v4()), input.value);
    admin_run(&req, &state, &caller, "CreateCategory", &input.raw, &command).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRevision {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

struct ReviseCategory(CategoryId, CategoryRevision);

impl Command for ReviseCategory {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let category = uow.load::<Category>(&self.0.stream()).await?;
        let events = category.state.decide(CategoryCommand::Revise {
            name: self.1.name.as_deref().map(|n| n.trim().to_owned()),
            description: self.1.description.clone(),
        })?;
        uow.push(category, &events)?;
        Ok(Reply::new(StatusCode::OK, json!({ "id": self.0 })))
    }
}

/// `PATCH /v1/categories/{id}`: a new name, description, or both.
pub async fn revise_category(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<CategoryRevision>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, CategoryId::parse, "category")?;
    if input.value.name.is_none() && input.value.description.is_none() {
        return Err(ApiError::Validation("a revision must change the name, the description or both".into()));
    }
    let command = ReviseCategory(id, input.value);
    admin_run(&req, &state, &caller, "ReviseCategory", &input.raw, &command).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    name: String,
    #[serde(default)]
    description: String,
    category_id: CategoryId,
    point_cost: i64,
    #[serde(default)]
    initial_stock: Option<i64>,
    #[serde(default)]
    in_offer_pool: Option<bool>,
    #[serde(default)]
    image_url: Option<String>,
}

async fn require_category(uow: &UnitOfWork<'_>, id: CategoryId) -> Result<(), ApiError> {
    if uow.exists(&id.stream()).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound("no such category".into()))
    }
}

fn validate_image_url(url: &Option<String>) -> Result<(), ApiError> {
    match url {
        Some(u) if u.len() > 2048 || !(u.starts_with("https://") || u.starts_with("http://")) => {
            Err(ApiError::Validation("image_url must be an http(s) URL".into()))
        }
        _ => Ok(()),
    }
}

struct ListProduct {
    id: ProductId,
    details: ProductDetails,
    initial_stock: i64,
}

impl Command for ListProduct {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        require_category(uow, self.details.category_id).await?;
        let product = uow.fresh::<Product>(self.id.stream());
        let events = product.state.decide(ProductCommand::List {
            product_id: self.id,
            details: self.details.clone(),
            initial_stock: self.initial_stock,
        })?;
        uow.push(product, &events)?;
        Ok(Reply::new(StatusCode::CREATED, json!({ "id": self.id })))
    }
}

pub async fn create_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let p = input.value;
    validate_image_url(&p.image_url)?;
    let details = ProductDetails {
        name: p.name.trim().to_owned(),
        description: p.description,
        category_id: p.category_id,
        point_cost: p.point_cost,
        image_url: p.image_url,
        in_offer_pool: p.in_offer_pool.unwrap_or(false),
    };
    // Shape and range first, so a bad body is a 422 whether or not its ids exist.
    domain::product::validate_details(&details)?;
    let command =
        ListProduct { id: ProductId(Uuid::new_v4()), details, initial_stock: p.initial_stock.unwrap_or(0) };
    admin_run(&req, &state, &caller, "ListProduct", &input.raw, &command).await
}

/// Any product command on an existing product: lock, load, decide, append.
struct OnProduct {
    id: ProductId,
    command: ProductCommand,
}

impl Command for OnProduct {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        if let ProductCommand::Revise { changes: ProductChanges { category_id: Some(c), .. } } = &self.command
        {
            require_category(uow, *c).await?;
        }
        let product = uow.load::<Product>(&self.id.stream()).await?;
        let events = product.state.decide(self.command.clone())?;
        let after = uow.push(product, &events)?;
        Ok(Reply::new(
            StatusCode::OK,
            json!({
                "id": self.id,
                "active": after.active,
                "on_hand": after.on_hand,
                "available": after.available(),
            }),
        ))
    }
}

pub async fn revise_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<ProductChanges>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, ProductId::parse, "product")?;
    validate_image_url(&input.value.image_url)?;
    let command = OnProduct { id, command: ProductCommand::Revise { changes: input.value } };
    admin_run(&req, &state, &caller, "ReviseProduct", &input.raw, &command).await
}

pub async fn delist_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    RawBody(raw): RawBody,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, ProductId::parse, "product")?;
    admin_run(
        &req,
        &state,
        &caller,
        "DelistProduct",
        &raw,
        &OnProduct { id, command: ProductCommand::Delist },
    )
    .await
}

pub async fn relist_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    RawBody(raw): RawBody,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, ProductId::parse, "product")?;
    admin_run(
        &req,
        &state,
        &caller,
        "RelistProduct",
        &raw,
        &OnProduct { id, command: ProductCommand::Relist },
    )
    .await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StockKind {
    Receive,
    Adjust,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockChange {
    kind: StockKind,
    quantity: i64,
    reason: String,
}

pub async fn change_stock(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<StockChange>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, ProductId::parse, "product")?;
    let StockChange { kind, quantity, reason } = input.value;
    if reason.trim().is_empty() || reason.len() > 500 {
        return Err(ApiError::Validation("reason must be 1 to 500 characters".into()));
    }
    let command = match kind {
        StockKind::Receive => ProductCommand::ReceiveStock { quantity, reason },
        StockKind::Adjust => ProductCommand::AdjustStock { delta: quantity, reason },
    };
    admin_run(&req, &state, &caller, "ChangeStock", &input.raw, &OnProduct { id, command }).await
}
