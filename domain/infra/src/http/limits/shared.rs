//! The limits kept in Redis: one GCRA script call per check, on one key per limited
//! user or address (so it works on Redis Cluster too), namespaced by service, so the
//! command API's and the query API's limits stay apart as they do in process.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{Client, ClientLike, LuaInterface};
use fred::types::scripts::Script;

static GCRA: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(include_str!("gcra.lua")));

/// A Redis client (one per worker, like the caches') and the service's name.
#[derive(Clone)]
pub struct Shared {
    redis: Client,
    service: &'static str,
    /// Set while Redis does not answer, so the switch is logged once each way.
    local: Arc<AtomicBool>,
}

impl Shared {
    pub fn new(redis: Client, service: &'static str) -> Self {
        Shared { redis, service, local: Arc::new(AtomicBool::new(false)) }
    }

    /// How long the request must wait (zero: it conforms and is counted), or `None`
    /// when Redis did not answer and the caller must decide locally.
    pub async fn check(
        &self,
        kind: &str,
        key: &impl std::fmt::Display,
        rate: NonZeroU32,
        burst: NonZeroU32,
    ) -> Option<Duration> {
        let redis_key = format!("tally:rl:{}:{kind}:{key}", self.service);
        let interval = 1_000_000 / u64::from(rate.get()).max(1);
        let args = vec![interval, u64::from(burst.get())];
        let redis = &self.redis;
        // While Redis is down, decide at once rather than wait in fred's queue.
        let answer: Result<i64, fred::error::Error> = if !redis.is_connected() {
            Err(fred::error::Error::new(fred::error::ErrorKind::IO, "not connected"))
        } else {
            match GCRA.evalsha(redis, redis_key.clone(), args.clone()).await {
                // The first call on a server (or after its restart) loads the script.
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    redis.eval(GCRA.lua().cloned().unwrap_or_default(), redis_key, args).await
                }
                answer => answer,
            }
        };
        match answer {
            Ok(wait_us) => {
                if self.local.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared again");
                }
                Some(Duration::from_micros(wait_us.max(0) as u64))
            }
            Err(e) => {
                if !self.local.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis does not answer: rate limits fall back to this process");
                }
                None
            }
        }
    }
}
