//! The limits kept in Redis: GCRA in one Lua script, on one key per limited user or
//! address (so it works on Redis Cluster too), namespaced by service, so the command
//! API's and the query API's limits stay apart as they do in process.
//!
//! A round trip per request would halve a cached GET's rate (measured: 62,898 →
//! 30,961 req/s), so a process takes a small lease of requests at once — a tenth of
//! the burst, counted in Redis when taken — and spends it locally for at most a
//! second. N processes may then let through up to N leases more than the burst, and
//! never more than the rate over time; with a burst under 20, every request asks Redis.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::{Client, ClientLike, LuaInterface};
use fred::types::scripts::Script;

static GCRA: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(include_str!("gcra.lua")));

/// How long a lease may be spent.
const LEASE: Duration = Duration::from_secs(1);
/// Leases kept before expired ones are dropped.
const MAX_LEASES: usize = 100_000;

/// Requests taken from Redis and not spent yet.
#[derive(Debug, Clone, Copy)]
struct Lease {
    left: u32,
    until: Instant,
}

/// A Redis client (one per worker, like the caches'), the service's name, and the
/// process's leases.
#[derive(Clone)]
pub struct Shared {
    redis: Client,
    service: &'static str,
    leases: Arc<Mutex<HashMap<String, Lease>>>,
    /// Set while Redis does not answer, so the switch is logged once each way.
    local: Arc<AtomicBool>,
}

impl Shared {
    pub fn new(redis: Client, service: &'static str) -> Self {
        Shared { redis, service, leases: Default::default(), local: Arc::new(AtomicBool::new(false)) }
    }

    /// The same limits (and leases) through another client: one per worker thread.
    pub fn with_client(&self, redis: Client) -> Self {
        Shared { redis, ..self.clone() }
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
        if self.spend(&redis_key) {
            return Some(Duration::ZERO);
        }
        let interval = 1_000_000 / u64::from(rate.get()).max(1);
        let wanted = (burst.get() / 10).max(1);
        match self.take(&redis_key, interval, u64::from(burst.get()), wanted).await {
            Ok(granted) if granted > 0 => {
                self.keep(redis_key, granted as u32 - 1);
                Some(Duration::ZERO)
            }
            Ok(wait_us) => Some(Duration::from_micros(wait_us.unsigned_abs())),
            Err(e) => {
                if !self.local.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis does not answer: rate limits fall back to this process");
                }
                None
            }
        }
    }

    /// Spends one request of a live lease on `key`, if there is one.
    fn spend(&self, key: &str) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        match leases.get_mut(key) {
            Some(lease) if lease.left > 0 && lease.until > Instant::now() => {
                lease.left -= 1;
                true
            }
            _ => false,
        }
    }

    fn keep(&self, key: String, left: u32) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.len() >= MAX_LEASES {
            let now = Instant::now();
            leases.retain(|_, l| l.until > now && l.left > 0);
        }
        if left > 0 {
            leases.insert(key, Lease { left, until: Instant::now() + LEASE });
        }
    }

    /// Up to `wanted` requests from the script (see `gcra.lua`).
    async fn take(
        &self,
        key: &str,
        interval: u64,
        burst: u64,
        wanted: u32,
    ) -> Result<i64, fred::error::Error> {
        let redis = &self.redis;
        // While Redis is down, decide at once rather than wait in fred's queue.
        if !redis.is_connected() {
            return Err(fred::error::Error::new(fred::error::ErrorKind::IO, "not connected"));
        }
        let args = vec![interval, burst, u64::from(wanted)];
        let answer = match GCRA.evalsha(redis, key, args.clone()).await {
            // The first call on a server (or after its restart) loads the script.
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                redis.eval(GCRA.lua().cloned().unwrap_or_default(), key, args).await
            }
            answer => answer,
        };
        if answer.is_ok() && self.local.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again: rate limits are shared again");
        }
        answer
    }
}
