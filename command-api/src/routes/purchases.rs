//! Credit purchases: a customer starts one (pending); the payment provider's signed
//! webhook settles it. Success appends `PurchasePaid` and `PointsCredited` in one
//! transaction, exactly once however many times the webhook is delivered.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Duration;
use domain::account::{Account, AccountCommand, AccountEvent, CreditSource};
use domain::package::Package;
use domain::purchase::{Purchase, PurchaseCommand, PurchaseStatus};
use domain::{Decide, LotId, PackageId, PurchaseId, Role};
use infra::http::error::ApiError;
use infra::http::extract::{parse_json, Caller, Json, RawBody};
use infra::uow::UnitOfWork;
use infra::webhooks::SignatureError;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

/// Signatures older or newer than this are rejected (replay protection).
const SIGNATURE_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPurchase {
    package_id: PackageId,
}

struct StartPurchase {
    id: PurchaseId,
    caller: Caller,
    package_id: PackageId,
}

impl Command for StartPurchase {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        // Locked so a concurrent retirement cannot slip between the check and the start.
        let package = uow.load::<Package>(&self.package_id.stream()).await?;
        let terms = package.state.buyable()?.clone();
        let purchase = uow.fresh::<Purchase>(self.id.stream());
        let events = purchase.state.decide(PurchaseCommand::Start {
            purchase_id: self.id,
            user_id: self.caller.user_id(),
            package_id: self.package_id,
            price: terms.price,
            currency: terms.currency.clone(),
            points: terms.points,
            points_valid_days: terms.points_valid_days,
        })?;
        uow.push(purchase, &events)?;
        Ok(Reply::new(
            StatusCode::CREATED,
            json!({
                "id": self.id,
                "status": "pending",
                "package_id": self.package_id,
                "price": terms.price,
                "currency": terms.currency,
                "points": terms.points,
            }),
        ))
    }
}

pub async fn start_purchase(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<NewPurchase>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Customer)?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "StartPurchase", &caller, Role::Customer);
    let command =
        StartPurchase { id: PurchaseId(Uuid::new_v4()), caller, package_id: input.value.package_id };
    pipeline::run(&state, ctx, idempotency, &command).await
}

#[derive(Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
    /// A refund or a chargeback of a paid purchase.
    Refunded,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PaymentEvent {
    purchase_id: String,
    status: PaymentStatus,
    payment_ref: String,
    #[serde(default)]
    reason: Option<String>,
}

struct SettlePurchase {
    id: PurchaseId,
    event: PaymentEvent,
}

impl Command for SettlePurchase {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let purchase = uow.load::<Purchase>(&self.id.stream()).await?;
        let payment_ref = self.event.payment_ref.clone();
        let command = match self.event.status {
            PaymentStatus::Succeeded => PurchaseCommand::MarkPaid { payment_ref },
            PaymentStatus::Failed => PurchaseCommand::MarkFailed {
                reason: self.event.reason.clone().unwrap_or_else(|| "payment failed".into()),
            },
            PaymentStatus::Refunded if purchase.state.status == Some(PurchaseStatus::Paid) => {
                let (clawed_back, unrecovered) = claw_back(uow, &purchase.state, self.id).await?;
                PurchaseCommand::MarkRefunded { payment_ref, clawed_back, unrecovered }
            }
            // Pending or failed (refused), or refunded already (a no-op).
            PaymentStatus::Refunded => {
                PurchaseCommand::MarkRefunded { payment_ref, clawed_back: 0, unrecovered: 0 }
            }
        };
        // A repeated delivery decides nothing; the reply then points at what the
        // first one wrote (the unit of work answers with the newest event it read).
        let events = purchase.state.decide(command)?;
        if !events.is_empty() && self.event.status == PaymentStatus::Succeeded {
            let user = purchase.state.user_id.ok_or_else(|| ApiError::NotFound("no such purchase".into()))?;
            let account = uow.load::<Account>(&user.stream()).await?;
            let credit = account.state.decide(AccountCommand::Credit {
                // The lot is named after the purchase: one purchase, one lot.
                lot_id: LotId(self.id.0),
                points: purchase.state.points,
                source: CreditSource::Purchase { purchase_id: self.id },
                expires_at: purchase.state.points_valid_days.map(|d| ctx.now + Duration::days(d.into())),
            })?;
            uow.push(account, &credit)?;
        }
        let after = uow.push(purchase, &events)?;
        Ok(Reply::new(StatusCode::OK, json!({ "id": self.id, "status": after.status })))
    }
}

/// Takes back what is left of the purchase's lot (named after the purchase), in the
/// same transaction; returns what came back and what had been spent.
async fn claw_back(
    uow: &mut UnitOfWork<'_>,
    purchase: &Purchase,
    id: PurchaseId,
) -> Result<(i64, i64), ApiError> {
    let user = purchase.user_id.ok_or_else(|| ApiError::NotFound("no such purchase".into()))?;
    let account = uow.load::<Account>(&user.stream()).await?;
    let events = account.state.decide(AccountCommand::ClawBack {
        lot_id: LotId(id.0),
        purchase_id: id,
        credited: purchase.points,
    })?;
    let outcome = events.iter().find_map(|e| match e {
        AccountEvent::PointsClawedBack { points, unrecovered, .. } => Some((*points, *unrecovered)),
        _ => None,
    });
    uow.push(account, &events)?;
    outcome.ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("a claw-back decided nothing")))
}

/// Checks `Tally-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<body>")>`.
pub fn verify_signature(header: Option<&str>, secret: &str, body: &[u8], now: i64) -> Result<(), ApiError> {
    infra::webhooks::verify(header, secret, body, now, SIGNATURE_TOLERANCE_SECS).map_err(|e| {
        ApiError::InvalidSignature(match e {
            SignatureError::Missing => "the Tally-Signature header is missing",
            SignatureError::Malformed => "the Tally-Signature header is malformed",
            SignatureError::Stale => "the signature timestamp is outside the tolerance",
            SignatureError::Mismatch => "the signature does not match",
        })
    })
}

pub async fn payment_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    RawBody(raw): RawBody,
) -> Result<HttpResponse, ApiError> {
    let header = req.headers().get("tally-signature").and_then(|v| v.to_str().ok());
    verify_signature(header, state.webhook_secret.expose(), &raw, chrono::Utc::now().timestamp())?;
    let event: PaymentEvent = parse_json(&raw)?;
    if event.payment_ref.trim().is_empty() || event.payment_ref.chars().count() > 200 {
        return Err(ApiError::Validation("payment_ref must be 1 to 200 characters".into()));
    }
    if event.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::Validation("reason must be at most 500 characters".into()));
    }
    let id =
        PurchaseId::parse(&event.purchase_id).ok_or_else(|| ApiError::NotFound("no such purchase".into()))?;
    let idempotency = pipeline::idempotency_key(&req, "payment-provider".into(), &raw)?;
    let ctx = Context::new(&req, "SettlePurchase", None, "payment_provider");
    pipeline::run(&state, ctx, idempotency, &SettlePurchase { id, event }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        infra::webhooks::sign(&[secret], t, body)
    }

    #[test]
    fn a_correct_recent_signature_is_accepted_and_anything_else_is_not() {
        let body = br#"{"purchase_id":"x"}"#;
        let now = 1_700_000_000;
        assert!(verify_signature(Some(&sign("s", now, body)), "s", body, now).is_ok());
        assert!(verify_signature(Some(&sign("s", now - 301, body)), "s", body, now).is_err());
        assert!(verify_signature(Some(&sign("other", now, body)), "s", body, now).is_err());
        assert!(verify_signature(Some(&sign("s", now, body)), "s", b"{}", now).is_err());
        assert!(verify_signature(Some("t=abc,v1=zz"), "s", body, now).is_err());
        assert!(verify_signature(None, "s", body, now).is_err());
    }
}
