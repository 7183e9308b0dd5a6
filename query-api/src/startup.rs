//! Building the query API: pools, Redis, routes, extractor error handlers.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use infra::http::conventions;
use infra::http::extract::BodyTimeout;
use infra::http::limits::Shared;
use infra::token::TokenKeys;
use infra::{cache, config::Settings, db};

use crate::config::QueryConfig;
use crate::fresh::CheckpointWatch;
use crate::metrics::Metrics;
use crate::reco::Recommender;
use crate::replica::Reads;
use crate::routes;
use crate::state::AppState;

/// A bound, not yet running, query API.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Checks the schema, connects, and binds.
    pub async fn build(settings: &Settings, config: QueryConfig) -> anyhow::Result<Self> {
        let pool = db::pool(settings.database_url.expose(), settings.db_pool_size)?;
        db::ensure_migrated(&pool).await?;
        // Checked here; each worker connects its own copy below.
        let redis = cache::client(settings.redis_url.expose())?;
        let metrics = Metrics::new();
        let reads = match &config.read_database_url {
            Some(url) => Reads::with_replica(pool.clone(), url.expose(), metrics.registry())?,
            None => Reads::primary(pool.clone()),
        };
        let checkpoints = CheckpointWatch::start(reads.clone());
        reads.monitor(checkpoints.clone());
        let state =
            AppState { pool, reads, redis, reco: Recommender::new(&config), config, metrics, checkpoints };
        let listener = TcpListener::bind(&settings.query_addr)
            .with_context(|| format!("cannot listen on {} (set TALLY_QUERY_ADDR)", settings.query_addr))?;
        let port = listener.local_addr()?.port();
        let keys = web::Data::new(TokenKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl));
        let limits = settings.rate_limits.clone();
        let body_timeout = BodyTimeout(settings.body_timeout);
        let openapi = actix_web::web::Data::new(routes::document());
        let shared = Shared::new(state.redis.clone(), "query");
        let server = HttpServer::new(move || {
            // Each worker thread gets its own Redis connection, driven by its own runtime,
            // so a cache read never hops threads.
            let mut state = state.clone();
            state.redis = cache::per_worker(&state.redis);
            let http_metrics = web::Data::new(state.metrics.http.clone());
            let limits = web::Data::new(limits.shared_through(shared.with_client(state.redis.clone())));
            App::new()
                .app_data(web::Data::new(state))
                .app_data(limits)
                .app_data(http_metrics)
                .app_data(keys.clone())
                .app_data(openapi.clone())
                .configure(conventions::configure(body_timeout))
                .configure(routes::configure)
                .wrap_fn(conventions::guard)
                .wrap(actix_web::middleware::from_fn(infra::http::limits::limit_addr))
                .wrap_fn(infra::http::metrics::observe_requests)
                .wrap_fn(infra::http::request_id::middleware)
        })
        .listen(listener)?
        // On SIGTERM, accepted requests (read-your-writes waits included) get 30 s.
        .shutdown_timeout(30)
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
