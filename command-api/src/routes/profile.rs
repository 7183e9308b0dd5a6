//! The customer's own profile (design §10): `PATCH /v1/me` and `POST /v1/me/password`.
//! Personal data lives in `users` only, never in events, so these change that row.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::account::{Account, AccountCommand};
use domain::{Decide, Role, UserId};
use infra::config::is_acceptable_password;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};
use infra::uow::UnitOfWork;
use serde::Deserialize;
use serde_json::json;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::auth::{validate_email, validate_name};
use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChanges {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

struct ChangeProfile {
    user: Uuid,
    name: Option<String>,
    email: Option<String>,
}

impl Command for ChangeProfile {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let changed = uow
            .tx()
            .execute(
                // Never on an erased user: that would put personal data back.
                "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email)
                 WHERE id = $1 AND erased_at IS NULL",
                &[&self.user, &self.name, &self.email],
            )
            .await
            .map_err(|e| match e.code() {
                Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                    ApiError::AlreadyExists("this email is already registered".into())
                }
                _ => e.into(),
            })?;
        if changed == 0 {
            return Err(ApiError::NotFound("no such user".into()));
        }
        Ok(Reply::new(StatusCode::OK, json!({ "user_id": self.user })))
    }
}

pub async fn change_profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<ProfileChanges>,
) -> Result<HttpResponse, ApiError> {
    let ProfileChanges { name, email } = input.value;
    if name.is_none() && email.is_none() {
        return Err(ApiError::Validation("a change needs a name, an email or both".into()));
    }
    let name = name.map(|n| n.trim().to_owned());
    let email = email.map(|e| e.trim().to_owned());
    if let Some(n) = &name {
        validate_name(n)?;
    }
    if let Some(e) = &email {
        validate_email(e)?;
    }
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "ChangeProfile", &caller, Role::Customer);
    pipeline::run(&state, ctx, idempotency, &ChangeProfile { user: caller.0.sub, name, email }).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

struct SetPassword {
    user: Uuid,
    hash: String,
}

impl Command for SetPassword {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        uow.tx()
            .execute("UPDATE users SET password_hash = $2 WHERE id = $1", &[&self.user, &self.hash])
            .await?;
        crate::tokens::revoke_all(uow.tx(), self.user).await?;
        Ok(Reply::new(StatusCode::OK, json!({ "user_id": self.user })))
    }
}

/// Checks the current password (throttled like a login, so this is no way around the
/// login's limits), then stores the new one's hash.
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChange { current_password, new_password } = input.value;
    if !is_acceptable_password(&new_password) {
        return Err(ApiError::Validation("new_password must be 8 to 256 characters".into()));
    }
    let client = state.pool.get().await?;
    let row = client
        // An erased user's access token still verifies until it expires; they have no
        // password any more (it was NULL here once, and panicked a handler: schemathesis).
        .query_opt(
            "SELECT email, password_hash FROM users WHERE id = $1 AND erased_at IS NULL",
            &[&caller.0.sub],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("no such user".into()))?;
    drop(client);
    let email: String = row.get(0);
    let addr = req.peer_addr().map(|a| a.ip());
    state.throttle.check(&email, addr)?;
    if !is_acceptable_password(&current_password)
        || !state.passwords.verify(current_password, row.get(1)).await?
    {
        state.throttle.failed(&email, addr);
        return Err(ApiError::Validation("current_password is not the current password".into()));
    }
    state.throttle.succeeded(&email);
    let hash = state.passwords.hash(new_password).await?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "ChangePassword", &caller, Role::Customer);
    pipeline::run(&state, ctx, idempotency, &SetPassword { user: caller.0.sub, hash }).await
}

/// Erasure (GDPR art. 17): the user's email, name and password hash leave `users`, their
/// refresh tokens are revoked, and `UserErased` (ids only) is appended. History stays:
/// balances, ledger and audit reads still work under the pseudonymous id. Erasing an
/// erased user changes nothing.
struct Erase {
    user: UserId,
    by: UserId,
}

impl Command for Erase {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let account = uow.load::<Account>(&self.user.stream()).await?;
        let row = uow
            .tx()
            .query_opt("SELECT erased_at IS NOT NULL FROM users WHERE id = $1", &[&self.user.0])
            .await?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => return Err(ApiError::NotFound("no such user".into())),
            Some(true) => return Ok(Reply::new(StatusCode::NO_CONTENT, json!({}))),
            Some(false) => {}
        }
        let events = account.state.decide(AccountCommand::RecordErasure { by: self.by })?;
        uow.tx()
            .execute(
                "UPDATE users SET email = NULL, name = NULL, password_hash = NULL, roles = '{}', erased_at = now() \
                 WHERE id = $1",
                &[&self.user.0],
            )
            .await?;
        crate::tokens::revoke_all(uow.tx(), self.user.0).await?;
        uow.push(account, &events)?;
        Ok(Reply::new(StatusCode::NO_CONTENT, json!({})))
    }
}

async fn erase(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    user: UserId,
    role: Role,
) -> Result<HttpResponse, ApiError> {
    let idempotency = pipeline::idempotency_key(req, caller.0.sub.to_string(), b"")?;
    let ctx = Context::for_caller(req, "EraseUser", caller, role);
    pipeline::run(state, ctx, idempotency, &Erase { user, by: caller.user_id() }).await
}

/// `DELETE /v1/me`.
pub async fn erase_me(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    erase(&req, &state, &caller, caller.user_id(), Role::Customer).await
}

/// `DELETE /v1/users/{id}` (admins).
pub async fn erase_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let user = path_id(&path, UserId::parse, "user")?;
    erase(&req, &state, &caller, user, Role::Admin).await
}
