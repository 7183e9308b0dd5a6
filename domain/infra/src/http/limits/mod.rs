//! Rate limits per user (checked once the bearer token is verified) and per client
//! address (checked before anything else). Over the limit is `429 rate_limited` with
//! `Retry-After`.
//!
//! The limits are GCRA (the generic cell rate algorithm): kept in Redis, so N
//! instances of a service enforce one limit between them ([`shared`]), and in the
//! process (governor) while Redis does not answer, so each instance then enforces the
//! limit on its own share of the traffic.
//!
//! Configuration: `TALLY_RATE_LIMIT_USER` and `TALLY_RATE_LIMIT_ADDR` (requests per
//! second, `0` turns the limit off), with `…_BURST` for the bucket size (default twice
//! the rate). The address is the TCP peer: behind a load balancer, limit there.

mod shared;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

pub use shared::Shared;

use super::error::ApiError;

/// Keys kept before idle buckets are dropped.
const MAX_KEYS: usize = 100_000;

/// One limit: its quota, and the in-process limiter used while Redis does not answer.
struct Limit<K: std::hash::Hash + Eq + Clone> {
    rate: NonZeroU32,
    burst: NonZeroU32,
    local: DefaultKeyedRateLimiter<K>,
}

#[derive(Clone, Default)]
pub struct RateLimits {
    by_user: Option<Arc<Limit<Uuid>>>,
    by_addr: Option<Arc<Limit<IpAddr>>>,
    shared: Option<Shared>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("by_user", &self.by_user.is_some())
            .field("by_addr", &self.by_addr.is_some())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl RateLimits {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let quota = |name: &str, default: u32| -> anyhow::Result<Option<(NonZeroU32, NonZeroU32)>> {
            let rate = match var(name) {
                Some(v) => v.parse::<u32>().with_context(|| format!("{name} must be requests per second"))?,
                None => default,
            };
            let Some(rate) = NonZeroU32::new(rate) else { return Ok(None) };
            let burst = match var(&format!("{name}_BURST")) {
                Some(v) => v.parse::<u32>().with_context(|| format!("{name}_BURST must be a number"))?,
                None => rate.get().saturating_mul(2),
            };
            Ok(Some((rate, NonZeroU32::new(burst).unwrap_or(rate))))
        };
        Ok(RateLimits {
            by_user: quota("TALLY_RATE_LIMIT_USER", 100)?.map(Limit::new).map(Arc::new),
            by_addr: quota("TALLY_RATE_LIMIT_ADDR", 1000)?.map(Limit::new).map(Arc::new),
            shared: None,
        })
    }

    /// These limits, kept in Redis through `shared` (the in-process limiters stay the
    /// fallback).
    pub fn shared_through(&self, shared: Shared) -> Self {
        RateLimits { shared: Some(shared), ..self.clone() }
    }

    pub async fn check_user(&self, user: Uuid) -> Result<(), ApiError> {
        check(self.by_user.as_deref(), self.shared.as_ref(), "user", &user).await
    }

    pub async fn check_addr(&self, addr: IpAddr) -> Result<(), ApiError> {
        check(self.by_addr.as_deref(), self.shared.as_ref(), "addr", &addr).await
    }
}

impl<K: std::hash::Hash + Eq + Clone> Limit<K> {
    fn new((rate, burst): (NonZeroU32, NonZeroU32)) -> Self {
        Limit { rate, burst, local: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)) }
    }

    fn check_locally(&self, key: &K) -> Result<(), ApiError> {
        if self.local.len() > MAX_KEYS {
            self.local.retain_recent();
        }
        self.local
            .check_key(key)
            .map_err(|not_until| limited(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

async fn check<K: std::hash::Hash + Eq + Clone + std::fmt::Display>(
    limit: Option<&Limit<K>>,
    shared: Option<&Shared>,
    kind: &str,
    key: &K,
) -> Result<(), ApiError> {
    let Some(limit) = limit else { return Ok(()) };
    match shared {
        Some(shared) => match shared.check(kind, key, limit.rate, limit.burst).await {
            Some(Duration::ZERO) => Ok(()),
            Some(wait) => Err(limited(wait)),
            None => limit.check_locally(key),
        },
        None => limit.check_locally(key),
    }
}

fn limited(wait: Duration) -> ApiError {
    ApiError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64)
}

/// Middleware (`App::wrap(from_fn(limit_addr))`): the per-address limit, before
/// routing.
pub async fn limit_addr(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    use actix_web::ResponseError;
    let limits = req.app_data::<actix_web::web::Data<RateLimits>>().cloned();
    if let (Some(limits), Some(peer)) = (limits, req.peer_addr()) {
        if let Err(e) = limits.check_addr(peer.ip()).await {
            return Ok(req.into_response(e.error_response()).map_into_right_body());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}
