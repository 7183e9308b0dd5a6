//! What every app of Tally's sets up the same way: body limits and deadlines, problem
//! bodies for query and path errors and unknown endpoints, and [`guard`], a middleware
//! that refuses NUL characters before they reach Postgres and sets the response headers
//! every answer carries.

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse, ResponseError};
use futures_util::future::{Either, FutureExt};

use super::error::ApiError;
use super::extract::{BodyTimeout, MAX_BODY_BYTES};

/// Registers the shared app data and the unknown-endpoint answer.
pub fn configure(body_timeout: BodyTimeout) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(body_timeout)
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::Validation(format!("invalid query: {e}")).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::NotFound(format!("not found: {e}")).into()),
            )
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound("no such endpoint".into()))
            }));
    }
}

/// Middleware body for `App::wrap_fn`. A NUL character (`%00`) in the path names
/// nothing (`404`); in the query it is `422 validation_failed`. Every response gets
/// `X-Content-Type-Options: nosniff`, and one to an authenticated request
/// `Cache-Control: no-store` unless the handler chose its own caching.
pub fn guard<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let has_nul = |raw: &str| raw.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
    let refused = if has_nul(req.path()) {
        Some(ApiError::NotFound("no such resource".into()))
    } else if has_nul(req.query_string()) {
        Some(ApiError::Validation("query parameters must not contain NUL characters".into()))
    } else {
        None
    };
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    match refused {
        Some(e) => {
            let mut res = req.into_response(e.error_response()).map_into_right_body();
            set_headers(res.headers_mut(), authenticated);
            Either::Left(std::future::ready(Ok(res)))
        }
        None => Either::Right(srv.call(req).map(move |r| {
            r.map(|mut res| {
                set_headers(res.headers_mut(), authenticated);
                res.map_into_left_body()
            })
        })),
    }
}

fn set_headers(headers: &mut header::HeaderMap, authenticated: bool) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if authenticated && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
