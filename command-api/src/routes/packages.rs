//! Admin commands on credit packages.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::package::{Package, PackageChanges, PackageCommand, PackageTerms};
use domain::{Decide, PackageId, Role};
use infra::uow::UnitOfWork;
use serde_json::json;
use uuid::Uuid;

use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json, RawBody};

use super::catalog::admin_run;
use crate::pipeline::{Command, Context, Reply};
use crate::state::AppState;

struct OnPackage {
    id: PackageId,
    command: PackageCommand,
    status: StatusCode,
}

impl Command for OnPackage {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let package = uow.load::<Package>(&self.id.stream()).await?;
        let events = package.state.decide(self.command.clone())?;
        uow.push(package, &events)?;
        Ok(Reply::new(self.status, json!({ "id": self.id })))
    }
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPackage {
    name: String,
    #[serde(default)]
    description: String,
    /// A decimal string such as "9.99": no exponent, no sign.
    price: String,
    currency: String,
    points: i64,
    #[serde(default)]
    points_valid_days: Option<u32>,
}

pub async fn create_package(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewPackage>,
) -> Result<HttpResponse, ApiError> {
    let p = input.value;
    let terms = PackageTerms {
        name: p.name.trim().to_owned(),
        description: p.description,
        price: parse_price(&p.price)?,
        currency: p.currency,
        points: p.points,
        points_valid_days: p.points_valid_days,
    };
    let id = PackageId(Uuid::new_v4());
    let command = OnPackage {
        id,
        command: PackageCommand::Create { package_id: id, terms },
        status: StatusCode::CREATED,
    };
    admin_run(&req, &state, &caller, "CreatePackage", &input.raw, &command).await
}

/// A price as a plain decimal string: digits, optionally a point and more digits.
/// Exponents, signs and blanks are refused, whatever `Decimal` itself would accept.
fn parse_price(raw: &str) -> Result<rust_decimal::Decimal, ApiError> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    let plain = match raw.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(raw),
    };
    let invalid = || ApiError::Validation("price must be a decimal string such as \"9.99\"".into());
    if !plain {
        return Err(invalid());
    }
    raw.parse().map_err(|_| invalid())
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageRevision {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    points: Option<i64>,
    #[serde(default)]
    points_valid_days: Option<u32>,
}

/// `PATCH /v1/credit-packages/{id}`: the new terms apply to purchases started from now
/// on; a pending purchase is settled on the terms it started with.
pub async fn revise_package(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<PackageRevision>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, PackageId::parse, "credit package")?;
    let r = input.value;
    let changes = PackageChanges {
        name: r.name.map(|n| n.trim().to_owned()),
        description: r.description,
        price: r.price.as_deref().map(parse_price).transpose()?,
        currency: r.currency,
        points: r.points,
        points_valid_days: r.points_valid_days,
    };
    let command = OnPackage { id, command: PackageCommand::Revise(changes), status: StatusCode::OK };
    admin_run(&req, &state, &caller, "RevisePackage", &input.raw, &command).await
}

pub async fn retire_package(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    RawBody(raw): RawBody,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&path, PackageId::parse, "credit package")?;
    let command = OnPackage { id, command: PackageCommand::Retire, status: StatusCode::OK };
    admin_run(&req, &state, &caller, "RetirePackage", &raw, &command).await
}
