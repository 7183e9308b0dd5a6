//! The limits kept in Redis: GCRA in one Lua script, on one key per limited user or
//! address (so it works on Redis Cluster too), namespaced by service, so the command
//! API's and the query API's limits stay apart as they do in process.
//!
//! A round trip per request would halve a cached GET's rate (measured: 62,898 →
//! 30,961 req/s), so a process takes a small lease of requests at once — a tenth of
//! the burst, counted in Redis when taken — and spends it locally for at most a
//! second. N processes may then let through up to N leases more than the burst, and
//! never more than the rate over time; with a burst under 20, every request asks Redis.
//! A key Redis refused is refused here until the wait Redis named has passed, so a
//! client over its limit costs no round trip per request.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::{Client, ClientLike, LuaInterface};
use fred::types::scripts::Script;

static GCRA: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(include_str!("gcra.lua")));

/// How long a lease may be spent.
const LEASE: Duration = Duration::from_secs(1);
/// After Redis failed to answer, how long checks stay local before asking again.
const BACK_OFF: Duration = Duration::from_secs(1);
/// Leases kept before expired ones are dropped.
const MAX_LEASES: usize = 100_000;

/// Requests taken from Redis for one key and not spent yet; until when Redis said the
/// key may not send another (answered here meanwhile, without asking again); and the
/// lock that one refill at a time holds, so when a lease runs out one request refills
/// it while the others of that key wait for it, instead of all asking Redis at once.
#[derive(Debug)]
struct Lease {
    left: u32,
    until: Instant,
    refused_until: Instant,
    refill: Arc<tokio::sync::Mutex<()>>,
}

impl Lease {
    /// The answer the lease gives on its own: a request spent (zero), or the wait
    /// Redis last set; `None` when Redis must be asked.
    fn answer(&mut self, now: Instant) -> Option<Duration> {
        if self.left > 0 && self.until > now {
            self.left -= 1;
            return Some(Duration::ZERO);
        }
        (self.refused_until > now).then(|| self.refused_until - now)
    }
}

type Leases = Arc<Mutex<HashMap<String, Lease>>>;

/// A Redis client (one per worker, like the caches'), the service's name, and the
/// process's leases.
#[derive(Clone)]
pub struct Shared {
    redis: Client,
    service: &'static str,
    leases: Leases,
    /// Until when Redis is not asked (it just failed to answer); `Some` also means the
    /// switch to local limits was logged.
    down_until: Arc<Mutex<Option<Instant>>>,
}

impl Shared {
    pub fn new(redis: Client, service: &'static str) -> Self {
        Shared { redis, service, leases: Default::default(), down_until: Default::default() }
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
        let refill = match self.local_answer(&redis_key) {
            Ok(answer) => return Some(answer),
            Err(refill) => refill,
        };
        let _refilling = refill.lock().await;
        // Another request may have refilled it (or been refused) while this one waited.
        if let Ok(answer) = self.local_answer(&redis_key) {
            return Some(answer);
        }
        let now = Instant::now();
        if lock(&self.down_until).is_some_and(|until| until > now) {
            return None;
        }
        let interval = 1_000_000 / u64::from(rate.get()).max(1);
        let wanted = (burst.get() / 10).max(1);
        match self.take(&redis_key, interval, u64::from(burst.get()), wanted).await {
            Ok(granted) if granted > 0 => {
                if let Some(lease) = lock(&self.leases).get_mut(&redis_key) {
                    (lease.left, lease.until) = (granted as u32 - 1, Instant::now() + LEASE);
                }
                Some(Duration::ZERO)
            }
            Ok(wait_us) => {
                // No request of this key conforms before then, whatever other
                // instances do: the next ones are refused here without asking.
                let wait = Duration::from_micros(wait_us.unsigned_abs());
                if let Some(lease) = lock(&self.leases).get_mut(&redis_key) {
                    lease.refused_until = Instant::now() + wait;
                }
                Some(wait)
            }
            Err(e) => {
                // Not connected is known at once; a command that failed or timed out
                // was not, so the next ones stay local for a while.
                let back_off = if self.redis.is_connected() { BACK_OFF } else { Duration::ZERO };
                if lock(&self.down_until).replace(Instant::now() + back_off).is_none() {
                    tracing::warn!(error = %e, "Redis does not answer: rate limits fall back to this process");
                }
                None
            }
        }
    }

    /// What `key`'s lease answers on its own (see [`Lease::answer`]), or the lock to
    /// hold while asking Redis (an empty lease is made if there is none).
    fn local_answer(&self, key: &str) -> Result<Duration, Arc<tokio::sync::Mutex<()>>> {
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        if let Some(lease) = leases.get_mut(key) {
            return lease.answer(now).ok_or_else(|| lease.refill.clone());
        }
        if leases.len() >= MAX_LEASES {
            leases.retain(|_, l| (l.until > now && l.left > 0) || l.refused_until > now);
        }
        let lease = Lease { left: 0, until: now, refused_until: now, refill: Default::default() };
        let refill = lease.refill.clone();
        leases.insert(key.to_owned(), lease);
        Err(refill)
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
        if answer.is_ok() && lock(&self.down_until).take().is_some() {
            tracing::info!("Redis answers again: rate limits are shared again");
        }
        answer
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
