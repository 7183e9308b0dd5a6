//! Registration, login and role grants. Personal data (email, name, password hash)
//! goes to the `users` table only; the account stream gets `AccountOpened` and
//! `RoleGranted` with ids alone.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use domain::account::{Account, AccountCommand};
use domain::{Decide, Role, UserId};
use infra::config::is_acceptable_password;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};
use infra::uow::UnitOfWork;
use serde::Deserialize;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;
use crate::tokens::{self, Presented};

/// The longest email address (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    email: String,
    password: String,
    name: String,
}

fn validate(r: &Registration) -> Result<(), ApiError> {
    validate_email(r.email.trim())?;
    if !is_acceptable_password(&r.password) {
        return Err(ApiError::Validation("password must be 8 to 256 characters".into()));
    }
    validate_name(&r.name)
}

pub fn validate_email(email: &str) -> Result<(), ApiError> {
    if email.len() > MAX_EMAIL_BYTES || !email_address::EmailAddress::is_valid(email) {
        return Err(ApiError::Validation("email must be a valid address".into()));
    }
    Ok(())
}

pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Validation("name must be 1 to 200 characters".into()));
    }
    Ok(())
}

/// Creates a user row and opens their account, in one transaction.
pub struct CreateUser {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub roles: Vec<Role>,
}

impl Command for CreateUser {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let roles: Vec<&str> = self.roles.iter().map(Role::as_str).collect();
        uow.tx()
            .execute(
                "INSERT INTO users (id, email, name, password_hash, roles) VALUES ($1, $2, $3, $4, $5)",
                &[&self.user_id.0, &self.email.trim(), &self.name.trim(), &self.password_hash, &roles],
            )
            .await
            .map_err(|e| match e.code() {
                Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                    ApiError::AlreadyExists("this email is already registered".into())
                }
                _ => e.into(),
            })?;
        let account = uow.fresh::<Account>(self.user_id.stream());
        let events = account.state.decide(AccountCommand::Open { user_id: self.user_id })?;
        uow.push(account, &events)?;
        Ok(Reply::new(StatusCode::CREATED, serde_json::json!({ "user_id": self.user_id })))
    }
}

/// Registers a customer. An `Idempotency-Key` without a caller is scoped to the
/// client's address, so no other client can squat it or replay its response; and the
/// stored response holds no token: each answer, first or replayed, gets a fresh one.
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    input: Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    validate(&input.value)?;
    let scope = format!("anonymous:{}", req.peer_addr().map_or_else(String::new, |a| a.ip().to_string()));
    let idempotency = pipeline::idempotency_key(&req, scope, &input.raw)?;
    let r = input.value;
    let user_id = UserId(Uuid::new_v4());
    let user = CreateUser {
        user_id,
        email: r.email,
        name: r.name,
        password_hash: state.passwords.hash(r.password).await?,
        roles: vec![Role::Customer],
    };
    let ctx = Context::new(&req, "Register", Some(user_id.0), Role::Customer.as_str());
    let (status, mut body, replayed) = pipeline::execute(&state, ctx, idempotency, &user).await?;
    let registered = body.get("user_id").and_then(|v| v.as_str()).and_then(|id| Uuid::parse_str(id).ok());
    let registered =
        registered.ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("no user_id in the reply")))?;
    let now = Utc::now();
    let (token, expires_at) = state.keys.issue(registered, vec![Role::Customer], now);
    let refresh = tokens::issue(&**state.pool.get().await?, registered, None, now).await?;
    body.insert("token".into(), token.into());
    body.insert("expires_at".into(), serde_json::json!(expires_at));
    body.insert("refresh_token".into(), refresh.into());
    Ok(pipeline::render(&status, body, replayed))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

/// Checks a password. Throttled per account and per address before any hashing (see
/// [`crate::throttle`]); an unknown email costs the same hash as a wrong password, so
/// timing does not reveal which accounts exist.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    input: Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let Login { email, password } = input.value;
    let addr = req.peer_addr().map(|a| a.ip());
    state.throttle.check(&email, addr)?;
    let denied = ApiError::Unauthenticated("the email or password is wrong");
    if email.len() > MAX_EMAIL_BYTES || !is_acceptable_password(&password) {
        state.throttle.failed(&email, addr);
        return Err(denied);
    }
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, password_hash, roles FROM users WHERE lower(email) = lower($1)",
            &[&email.trim()],
        )
        .await?;
    drop(client);
    let matches = match &row {
        Some(row) => state.passwords.verify(password, row.get(1)).await?,
        None => {
            state.passwords.hash(password).await?;
            false
        }
    };
    let Some(row) = row.filter(|_| matches) else {
        state.throttle.failed(&email, addr);
        return Err(denied);
    };
    state.throttle.succeeded(&email);
    let roles: Vec<String> = row.get(2);
    let roles = roles.iter().filter_map(|r| Role::parse(r)).collect();
    let now = Utc::now();
    let (token, expires_at) = state.keys.issue(row.get(0), roles, now);
    let refresh = tokens::issue(&**state.pool.get().await?, row.get(0), None, now).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "token": token, "expires_at": expires_at, "refresh_token": refresh })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    role: String,
}

struct GrantRole {
    user_id: UserId,
    role: Role,
    by: UserId,
}

impl Command for GrantRole {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let account = uow.load::<Account>(&self.user_id.stream()).await?;
        let events = account.state.decide(AccountCommand::GrantRole { role: self.role, by: self.by })?;
        // Granting a role the user already holds changes no row but is still recorded.
        uow.tx()
            .execute(
                "UPDATE users SET roles = array_append(roles, $2) WHERE id = $1 AND NOT ($2 = ANY(roles))",
                &[&self.user_id.0, &self.role.as_str()],
            )
            .await?;
        // New roles come with a new login.
        tokens::revoke_all(uow.tx(), self.user_id.0).await?;
        uow.push(account, &events)?;
        Ok(Reply::new(StatusCode::OK, serde_json::json!({ "user_id": self.user_id, "role": self.role })))
    }
}

pub async fn grant_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    input: Json<RoleGrant>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let user_id = path_id(&path, UserId::parse, "user")?;
    let role = Role::parse(&input.value.role)
        .ok_or_else(|| ApiError::Validation("role must be customer, admin or auditor".into()))?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), &input.raw)?;
    let ctx = Context::for_caller(&req, "GrantRole", &caller, Role::Admin);
    pipeline::run(&state, ctx, idempotency, &GrantRole { user_id, role, by: caller.user_id() }).await
}

struct RevokeRole {
    user_id: UserId,
    role: Role,
    by: UserId,
}

impl Command for RevokeRole {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, _ctx: &Context) -> Result<Reply, ApiError> {
        let account = uow.load::<Account>(&self.user_id.stream()).await?;
        let events = account.state.decide(AccountCommand::RevokeRole { role: self.role, by: self.by })?;
        let removed = uow
            .tx()
            .execute(
                "UPDATE users SET roles = array_remove(roles, $2) WHERE id = $1 AND $2 = ANY(roles)",
                &[&self.user_id.0, &self.role.as_str()],
            )
            .await?;
        // Revoking a role the user does not hold changes nothing and records nothing.
        if removed == 1 {
            tokens::revoke_all(uow.tx(), self.user_id.0).await?;
            uow.push(account, &events)?;
        }
        let body = serde_json::json!({ "user_id": self.user_id, "role": self.role, "revoked": removed == 1 });
        Ok(Reply::new(StatusCode::OK, body))
    }
}

/// `DELETE /v1/users/{id}/roles/{role}` (admins): an admin cannot revoke their own
/// admin role, so the programme always keeps one.
pub async fn revoke_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let (user, role) = path.into_inner();
    let user_id = path_id(&user, UserId::parse, "user")?;
    let role = Role::parse(&role).ok_or_else(|| ApiError::NotFound("no such role".into()))?;
    let idempotency = pipeline::idempotency_key(&req, caller.0.sub.to_string(), b"")?;
    let ctx = Context::for_caller(&req, "RevokeRole", &caller, Role::Admin);
    pipeline::run(&state, ctx, idempotency, &RevokeRole { user_id, role, by: caller.user_id() }).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /v1/auth/refresh`: spends the refresh token for a new access token and the next
/// refresh token. A token used before revokes its whole chain (it was copied).
pub async fn refresh(
    state: web::Data<AppState>,
    input: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = input.value.refresh_token;
    let refused = ApiError::Unauthenticated("the refresh token is not valid");
    if token.len() != 64 {
        return Err(refused);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let now = Utc::now();
    let (user, chain) = match tokens::spend(&*tx, &token, now).await? {
        Presented::Refused => return Err(refused),
        Presented::Reused => {
            tx.commit().await?;
            return Err(ApiError::Unauthenticated(
                "the refresh token was used before: its sessions are revoked",
            ));
        }
        Presented::Fresh { user, chain } => (user, chain),
    };
    let row = tx.query_opt("SELECT roles FROM users WHERE id = $1 AND erased_at IS NULL", &[&user]).await?;
    let Some(row) = row else { return Err(refused) };
    let roles: Vec<String> = row.get(0);
    let next = tokens::issue(&*tx, user, Some(chain), now).await?;
    tx.commit().await?;
    let (access, expires_at) =
        state.keys.issue(user, roles.iter().filter_map(|r| Role::parse(r)).collect(), now);
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "token": access, "expires_at": expires_at, "refresh_token": next })))
}

/// `POST /v1/auth/logout`: ends the session (the refresh token's chain) of the caller.
pub async fn logout(
    state: web::Data<AppState>,
    caller: Caller,
    input: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    tokens::revoke_chain_of(&**state.pool.get().await?, &input.value.refresh_token, caller.0.sub).await?;
    Ok(HttpResponse::NoContent().finish())
}
