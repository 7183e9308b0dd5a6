//! Every request gets an id: the caller's `X-Request-Id` when it is sane, otherwise a
//! new uuid. It is echoed in the response, put in error bodies, logged, and stored in
//! the metadata of every event the request appends.

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;
use tracing::Instrument;
use uuid::Uuid;

use super::error::REQUEST_ID;

pub const HEADER: &str = "x-request-id";

/// The id of the request, available to handlers through `req.extensions()`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Middleware body for `App::wrap_fn`.
pub fn middleware<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    // Inner middleware may answer at once (a guard, a rate limit): in the scope too.
    let fut = REQUEST_ID.sync_scope(id.clone(), || srv.call(req));
    REQUEST_ID.scope(
        id.clone(),
        async move {
            let mut res = fut.await?;
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(HeaderName::from_static(HEADER), v);
            }
            tracing::info!(
                status = res.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "handled"
            );
            Ok(res)
        }
        .instrument(span),
    )
}
