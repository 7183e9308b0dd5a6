//! Building the application: the one path production and tests share.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use domain::{Role, UserId};
use infra::config::Settings;
use infra::db;
use infra::http::extract::BodyTimeout;
use infra::http::metrics::{self, HttpMetrics};
use infra::http::{conventions, limits};
use infra::states::StateCache;
use infra::token::TokenKeys;
use uuid::Uuid;

use crate::passwords::Passwords;
use crate::pipeline::{self, Context};
use crate::routes::{self, auth};
use crate::state::AppState;
use crate::throttle::LoginThrottle;

/// A bound, not yet running, command API.
pub struct Application {
    port: u16,
    server: Server,
    pub state: AppState,
}

impl Application {
    /// Checks the schema, creates the first admin if configured, and binds.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::pool(settings.database_url.expose(), settings.db_pool_size)?;
        db::ensure_migrated(&pool).await?;
        let state = AppState {
            states: StateCache::new(pool.clone(), settings.state_cache_weight),
            pool,
            keys: TokenKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl),
            webhook_secret: settings.payment_webhook_secret.clone(),
            webhook_allow_private: settings.webhook_allow_private,
            passwords: Passwords::start(),
            throttle: Arc::new(LoginThrottle::default()),
            redemptions: Arc::default(),
        };
        if let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) {
            bootstrap_admin(&state, email, password.expose()).await?;
        }
        let listener = TcpListener::bind(&settings.command_addr).with_context(|| {
            format!("cannot listen on {} (set TALLY_COMMAND_ADDR)", settings.command_addr)
        })?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let keys = web::Data::new(state.keys.clone());
        let limits = settings.rate_limits.clone();
        let registry = web::Data::new(prometheus::Registry::new());
        let http_metrics = web::Data::new(HttpMetrics::new(&registry));
        let body_timeout = BodyTimeout(settings.body_timeout);
        let openapi = actix_web::web::Data::new(routes::document());
        // Rate limits are kept in Redis (one limit for every instance); each worker
        // thread gets its own connection, driven by its own runtime.
        let redis = infra::cache::client(settings.redis_url.expose())?;
        let shared = limits::Shared::new(redis.clone(), "command");
        let server = HttpServer::new(move || {
            let shared = shared.with_client(infra::cache::per_worker(&redis));
            let limits = web::Data::new(limits.shared_through(shared));
            App::new()
                .app_data(data.clone())
                .app_data(keys.clone())
                .app_data(limits)
                .app_data(registry.clone())
                .app_data(http_metrics.clone())
                .app_data(openapi.clone())
                .configure(conventions::configure(body_timeout))
                .configure(routes::configure)
                .wrap_fn(conventions::guard)
                .wrap(actix_web::middleware::from_fn(limits::limit_addr))
                .wrap_fn(metrics::observe_requests)
                .wrap_fn(infra::http::request_id::middleware)
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        Ok(Application { port, server, state })
    }

    /// Stops accepting and drains in-flight requests (tests and embedding).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, letting in-flight requests finish.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Creates the first admin from `TALLY_ADMIN_EMAIL` / `TALLY_ADMIN_PASSWORD` if absent.
async fn bootstrap_admin(state: &AppState, email: &str, password: &str) -> anyhow::Result<()> {
    let client = state.pool.get().await?;
    let exists =
        client.query_opt("SELECT 1 FROM users WHERE lower(email) = lower($1)", &[&email]).await?.is_some();
    drop(client);
    if exists {
        return Ok(());
    }
    let user_id = UserId(Uuid::new_v4());
    let user = auth::CreateUser {
        user_id,
        email: email.to_owned(),
        name: "Administrator".into(),
        password_hash: state.passwords.hash(password.to_owned()).await.map_err(|e| anyhow::anyhow!("{e}"))?,
        roles: vec![Role::Admin],
    };
    let ctx = Context {
        request_id: format!("bootstrap-{}", Uuid::new_v4()),
        actor: infra::store::Actor::system("system"),
        command: "BootstrapAdmin",
        now: chrono::Utc::now(),
    };
    match pipeline::execute(state, ctx, None, &user).await {
        Ok(_) => tracing::info!(user_id = %user_id, "created the first admin"),
        // Another instance created it first.
        Err(infra::http::error::ApiError::AlreadyExists(_)) => {}
        Err(e) => anyhow::bail!("creating the first admin: {e}"),
    }
    Ok(())
}
