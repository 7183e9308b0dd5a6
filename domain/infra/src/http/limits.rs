//! Rate limits per user (checked once the bearer token is verified) and per client
//! address (checked before anything else), as token buckets (governor). Over the limit
//! is `429 rate_limited` with `Retry-After`.
//!
//! Configuration: `TALLY_RATE_LIMIT_USER` and `TALLY_RATE_LIMIT_ADDR` (requests per
//! second, `0` turns the limit off), with `…_BURST` for the bucket size (default twice
//! the rate). The address is the TCP peer: behind a load balancer, limit there.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::error::ApiError;

/// Keys kept before idle buckets are dropped.
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Default)]
pub struct RateLimits {
    by_user: Option<Arc<DefaultKeyedRateLimiter<Uuid>>>,
    by_addr: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("by_user", &self.by_user.is_some())
            .field("by_addr", &self.by_addr.is_some())
            .finish()
    }
}

impl RateLimits {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let quota = |name: &str, default: u32| -> anyhow::Result<Option<Quota>> {
            let rate = match var(name) {
                Some(v) => v.parse::<u32>().with_context(|| format!("{name} must be requests per second"))?,
                None => default,
            };
            let Some(rate) = NonZeroU32::new(rate) else { return Ok(None) };
            let burst = match var(&format!("{name}_BURST")) {
                Some(v) => v.parse::<u32>().with_context(|| format!("{name}_BURST must be a number"))?,
                None => rate.get().saturating_mul(2),
            };
            Ok(Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate))))
        };
        Ok(RateLimits {
            by_user: quota("TALLY_RATE_LIMIT_USER", 100)?.map(|q| Arc::new(RateLimiter::keyed(q))),
            by_addr: quota("TALLY_RATE_LIMIT_ADDR", 1000)?.map(|q| Arc::new(RateLimiter::keyed(q))),
        })
    }

    pub fn check_user(&self, user: Uuid) -> Result<(), ApiError> {
        check(self.by_user.as_deref(), &user)
    }

    pub fn check_addr(&self, addr: IpAddr) -> Result<(), ApiError> {
        check(self.by_addr.as_deref(), &addr)
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else { return Ok(()) };
    if limiter.len() > MAX_KEYS {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited(wait.as_secs().max(1))
    })
}

/// Middleware body for `App::wrap_fn`: the per-address limit, before routing.
pub fn limit_addr<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<
    Output = Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error>,
>
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    use actix_web::ResponseError;
    use futures_util::future::{Either, FutureExt};
    let limited = match (req.app_data::<actix_web::web::Data<RateLimits>>(), req.peer_addr()) {
        (Some(limits), Some(peer)) => limits.check_addr(peer.ip()).err(),
        _ => None,
    };
    match limited {
        Some(e) => {
            let res = req.into_response(e.error_response()).map_into_right_body();
            Either::Left(std::future::ready(Ok(res)))
        }
        None => Either::Right(srv.call(req).map(|r| r.map(|res| res.map_into_left_body()))),
    }
}
