//! Configuration from the environment (design §8), shared by every process.
//!
//! Development defaults are marked `dev-only`; with `TALLY_ENV=production` a missing
//! secret is a start-up error instead.

use anyhow::{bail, Context};

/// Settings every process reads.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: String,
    pub jwt_secret: String,
    pub payment_webhook_secret: String,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub command_addr: String,
    pub query_addr: String,
    pub projector_addr: String,
    pub db_pool_size: usize,
    /// Per-user and per-address request limits of both APIs.
    pub rate_limits: crate::http::limits::RateLimits,
}

impl std::fmt::Debug for Settings {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("command_addr", &self.command_addr)
            .field("query_addr", &self.query_addr)
            .field("projector_addr", &self.projector_addr)
            .field("db_pool_size", &self.db_pool_size)
            .finish_non_exhaustive()
    }
}

pub const DEV_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/tally";
pub const DEV_REDIS_URL: &str = "redis://127.0.0.1:56379";
const DEV_JWT_SECRET: &str = "dev-only-jwt-secret-change-me";
const DEV_WEBHOOK_SECRET: &str = "dev-only-webhook-secret-change-me";

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `var`, so tests can pass their own environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let production = var("TALLY_ENV").is_some_and(|v| v == "production");
        let secret = |name: &str, dev: &str| -> anyhow::Result<String> {
            match var(name) {
                Some(v) if !v.is_empty() => Ok(v),
                _ if production => bail!("{name} must be set when TALLY_ENV=production"),
                _ => {
                    tracing::warn!("{name} not set: using the dev-only default");
                    Ok(dev.to_owned())
                }
            }
        };
        Ok(Settings {
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEV_DATABASE_URL.into()),
            redis_url: var("REDIS_URL").unwrap_or_else(|| DEV_REDIS_URL.into()),
            jwt_secret: secret("TALLY_JWT_SECRET", DEV_JWT_SECRET)?,
            payment_webhook_secret: secret("TALLY_PAYMENT_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)?,
            admin_email: var("TALLY_ADMIN_EMAIL"),
            admin_password: var("TALLY_ADMIN_PASSWORD"),
            command_addr: var("TALLY_COMMAND_ADDR").unwrap_or_else(|| "127.0.0.1:8081".into()),
            query_addr: var("TALLY_QUERY_ADDR").unwrap_or_else(|| "127.0.0.1:8082".into()),
            projector_addr: var("TALLY_PROJECTOR_ADDR").unwrap_or_else(|| "127.0.0.1:8083".into()),
            db_pool_size: var("TALLY_DB_POOL_SIZE")
                .map(|v| v.parse().context("TALLY_DB_POOL_SIZE must be a number"))
                .transpose()?
                .unwrap_or(16),
            rate_limits: crate::http::limits::RateLimits::from_lookup(&var)?,
        })
    }
}
