//! Configuration from the environment, shared by every process (the README's
//! configuration table lists every variable).
//!
//! Development defaults are marked `dev-only`. With `TALLY_ENV=production` a secret
//! that is missing, shorter than 32 bytes or equal to a dev default is a start-up
//! error instead.

use anyhow::{bail, Context};

/// A value that must never reach a log line or an error message: its `Debug` prints
/// only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The shortest secret production accepts.
pub const MIN_SECRET_BYTES: usize = 32;

/// Settings every process reads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// May carry a password, so it is a secret too.
    pub database_url: Secret,
    pub redis_url: Secret,
    pub jwt_secret: Secret,
    pub payment_webhook_secret: Secret,
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    pub command_addr: String,
    pub query_addr: String,
    pub projector_addr: String,
    pub db_pool_size: usize,
    /// How much the command API keeps of recent stream states
    /// (`TALLY_STATE_CACHE_WEIGHT`, see [`crate::states`]; 0 keeps none).
    pub state_cache_weight: usize,
    /// How long a client may take to send a request body (`TALLY_BODY_TIMEOUT_MS`).
    pub body_timeout: std::time::Duration,
    /// Per-user and per-address request limits of both APIs.
    pub rate_limits: crate::http::limits::RateLimits,
    /// How long an access token lives (`TALLY_ACCESS_TOKEN_TTL`, seconds; 900).
    pub access_token_ttl: chrono::Duration,
    /// `TALLY_WEBHOOK_ALLOW_PRIVATE=true`: outbound webhooks may target private,
    /// loopback and link-local addresses (tests, closed networks).
    pub webhook_allow_private: bool,
}

/// How many characters a password may have: registration, password changes and the
/// bootstrap admin follow the same rule.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;

pub fn is_acceptable_password(password: &str) -> bool {
    PASSWORD_CHARS.contains(&password.chars().count())
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
        let secret = |name: &str, dev: &str| -> anyhow::Result<Secret> {
            match var(name) {
                Some(v) if production && (v.len() < MIN_SECRET_BYTES || v == dev) => bail!(
                    "{name} must be at least {MIN_SECRET_BYTES} bytes and not the dev-only default \
                     when TALLY_ENV=production"
                ),
                Some(v) if !v.is_empty() => Ok(Secret(v)),
                _ if production => bail!("{name} must be set when TALLY_ENV=production"),
                _ => {
                    tracing::warn!("{name} not set: using the dev-only default");
                    Ok(Secret(dev.to_owned()))
                }
            }
        };
        let admin_password = var("TALLY_ADMIN_PASSWORD").map(Secret);
        if admin_password.as_ref().is_some_and(|p| !is_acceptable_password(p.expose())) {
            bail!("TALLY_ADMIN_PASSWORD must be {PASSWORD_CHARS:?} characters, like any password");
        }
        Ok(Settings {
            database_url: Secret(var("DATABASE_URL").unwrap_or_else(|| DEV_DATABASE_URL.into())),
            redis_url: Secret(var("REDIS_URL").unwrap_or_else(|| DEV_REDIS_URL.into())),
            jwt_secret: secret("TALLY_JWT_SECRET", DEV_JWT_SECRET)?,
            payment_webhook_secret: secret("TALLY_PAYMENT_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)?,
            admin_email: var("TALLY_ADMIN_EMAIL"),
            admin_password,
            command_addr: var("TALLY_COMMAND_ADDR").unwrap_or_else(|| "127.0.0.1:8081".into()),
            query_addr: var("TALLY_QUERY_ADDR").unwrap_or_else(|| "127.0.0.1:8082".into()),
            projector_addr: var("TALLY_PROJECTOR_ADDR").unwrap_or_else(|| "127.0.0.1:8083".into()),
            db_pool_size: var("TALLY_DB_POOL_SIZE")
                .map(|v| v.parse().context("TALLY_DB_POOL_SIZE must be a number"))
                .transpose()?
                .unwrap_or(16),
            state_cache_weight: var("TALLY_STATE_CACHE_WEIGHT")
                .map(|v| v.parse().context("TALLY_STATE_CACHE_WEIGHT must be a number"))
                .transpose()?
                .unwrap_or(crate::states::DEFAULT_CAPACITY),
            body_timeout: var("TALLY_BODY_TIMEOUT_MS")
                .map(|v| v.parse().context("TALLY_BODY_TIMEOUT_MS must be milliseconds"))
                .transpose()?
                .map_or(crate::http::extract::BODY_TIMEOUT, std::time::Duration::from_millis),
            rate_limits: crate::http::limits::RateLimits::from_lookup(&var)?,
            access_token_ttl: chrono::Duration::seconds(
                var("TALLY_ACCESS_TOKEN_TTL")
                    .map(|v| v.parse::<i64>().ok().filter(|s| (1..=86_400).contains(s)))
                    .map(|v| v.context("TALLY_ACCESS_TOKEN_TTL must be seconds, from 1 to 86400"))
                    .transpose()?
                    .unwrap_or(900),
            ),
            webhook_allow_private: match var("TALLY_WEBHOOK_ALLOW_PRIVATE").as_deref() {
                None | Some("" | "false" | "0") => false,
                Some("true" | "1") => true,
                Some(v) => bail!("TALLY_WEBHOOK_ALLOW_PRIVATE must be true or false, not {v:?}"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    const STRONG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn production_refuses_missing_short_and_dev_default_secrets() {
        let prod = ("TALLY_ENV", "production");
        let webhook = ("TALLY_PAYMENT_WEBHOOK_SECRET", STRONG);
        assert!(settings(&[prod, webhook, ("TALLY_JWT_SECRET", STRONG)]).is_ok());
        for bad in ["", "x", &STRONG[1..], DEV_JWT_SECRET] {
            let e = settings(&[prod, webhook, ("TALLY_JWT_SECRET", bad)]).expect_err(bad);
            assert!(e.to_string().contains("TALLY_JWT_SECRET"), "{e}");
        }
        let e = settings(&[
            prod,
            ("TALLY_JWT_SECRET", STRONG),
            ("TALLY_PAYMENT_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
        ])
        .expect_err("dev webhook secret");
        assert!(e.to_string().contains("TALLY_PAYMENT_WEBHOOK_SECRET"), "{e}");
        // Development keeps its marked defaults.
        assert_eq!(settings(&[]).expect("dev").jwt_secret.expose(), DEV_JWT_SECRET);
    }

    #[test]
    fn the_bootstrap_admin_password_follows_the_registration_rule() {
        for bad in ["x", "seven77", &"p".repeat(257)] {
            let e = settings(&[("TALLY_ADMIN_PASSWORD", bad)]).expect_err(bad);
            assert!(e.to_string().contains("TALLY_ADMIN_PASSWORD"), "{e}");
        }
        assert!(settings(&[("TALLY_ADMIN_PASSWORD", "eight888")]).is_ok());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = settings(&[("TALLY_JWT_SECRET", STRONG), ("TALLY_ADMIN_PASSWORD", "hunter2hunter2")])
            .expect("dev");
        let shown = format!("{s:?}");
        assert!(!shown.contains(STRONG) && !shown.contains("hunter2") && !shown.contains("55432"), "{shown}");
    }
}
