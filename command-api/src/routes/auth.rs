//! Registration, login and role grants. Personal data (email, name, password hash)
//! goes to the `users` table only; the account stream gets `AccountOpened` and
//! `RoleGranted` with ids alone.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::Utc;
use domain::account::{Account, AccountCommand};
use domain::{Decide, Role, UserId};
use infra::uow::UnitOfWork;
use serde::Deserialize;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::pipeline::{self, Command, Context, Reply};
use crate::state::AppState;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller, Json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    email: String,
    password: String,
    name: String,
}

fn validate(r: &Registration) -> Result<(), ApiError> {
    let email = r.email.trim();
    let at = email.find('@');
    if email.len() > 254
        || !at.is_some_and(|i| i > 0 && i < email.len() - 1)
        || email.contains(char::is_whitespace)
    {
        return Err(ApiError::Validation("email must be a valid address".into()));
    }
    if !(8..=256).contains(&r.password.chars().count()) {
        return Err(ApiError::Validation("password must be 8 to 256 characters".into()));
    }
    if r.name.trim().is_empty() || r.name.len() > 200 {
        return Err(ApiError::Validation("name must be 1 to 200 characters".into()));
    }
    Ok(())
}

/// Hashes with argon2id on a blocking thread: it is deliberately slow.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    web::block(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("hashing thread failed: {e}")))?
    .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("hashing failed: {e}")))
}

async fn verify_password(password: String, hash: String) -> bool {
    web::block(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
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

struct Register<'a> {
    user: CreateUser,
    state: &'a AppState,
}

impl Command for Register<'_> {
    async fn execute(&self, uow: &mut UnitOfWork<'_>, ctx: &Context) -> Result<Reply, ApiError> {
        let mut reply = self.user.execute(uow, ctx).await?;
        let (token, _) = self.state.keys.issue(self.user.user_id.0, self.user.roles.clone(), ctx.now);
        reply.body.insert("token".into(), token.into());
        Ok(reply)
    }
}

pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    input: Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    validate(&input.value)?;
    let idempotency = pipeline::idempotency_key(&req, "anonymous".into(), &input.raw)?;
    let r = input.value;
    let user_id = UserId(Uuid::new_v4());
    let user = CreateUser {
        user_id,
        email: r.email,
        name: r.name,
        password_hash: hash_password(r.password).await?,
        roles: vec![Role::Customer],
    };
    let ctx = Context::new(&req, "Register", Some(user_id.0), Role::Customer.as_str());
    pipeline::run(&state, ctx, idempotency, &Register { user, state: &state }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

pub async fn login(state: web::Data<AppState>, input: Json<Login>) -> Result<HttpResponse, ApiError> {
    let Login { email, password } = input.value;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, password_hash, roles FROM users WHERE lower(email) = lower($1)",
            &[&email.trim()],
        )
        .await?;
    let denied = ApiError::Unauthenticated("the email or password is wrong");
    let Some(row) = row else {
        // Spend the same effort as a real check so timing does not reveal the account.
        let _ = hash_password(password).await;
        return Err(denied);
    };
    if !verify_password(password, row.get(1)).await {
        return Err(denied);
    }
    let roles: Vec<String> = row.get(2);
    let roles = roles.iter().filter_map(|r| Role::parse(r)).collect();
    let (token, expires_at) = state.keys.issue(row.get(0), roles, Utc::now());
    Ok(HttpResponse::Ok().json(serde_json::json!({ "token": token, "expires_at": expires_at })))
}

#[derive(Debug, Deserialize)]
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
