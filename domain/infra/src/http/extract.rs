//! Request extractors: the JSON body (with its raw bytes, for idempotency hashing and
//! webhook signatures), the raw body, and the authenticated caller.
//!
//! Bodies are read with a deadline ([`BODY_TIMEOUT`], like the headers' own), so a
//! client that trickles a body cannot hold a connection; every failure to read one is
//! a problem+json error, never actix's plain-text default.

use std::future::Future;
use std::pin::Pin;

use crate::token::{Claims, TokenError, TokenKeys};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use domain::{Role, UserId};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::limits::RateLimits;

/// The largest request body accepted (huge bodies get `413 payload_too_large`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a client may take to send its whole body once its headers are in, unless
/// `TALLY_BODY_TIMEOUT_MS` says otherwise.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The body deadline of an app, as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// The raw request body, read within the app's deadline and size limit.
#[derive(Debug)]
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = read_body(req, payload);
        Box::pin(async move { read.await.map(RawBody) })
    }
}

fn read_body(req: &HttpRequest, payload: &mut Payload) -> impl Future<Output = Result<web::Bytes, ApiError>> {
    let deadline = req.app_data::<BodyTimeout>().map_or(BODY_TIMEOUT, |t| t.0);
    let bytes = web::Bytes::from_request(req, payload);
    async move {
        match tokio::time::timeout(deadline, bytes).await {
            Err(_) => Err(ApiError::BodyTimeout),
            Ok(Err(e)) => Err(match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => ApiError::PayloadTooLarge,
                _ => ApiError::Malformed("the request body could not be read".into()),
            }),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }
}

/// A JSON body. Syntax errors are `400 malformed_request`; well-formed JSON of the
/// wrong shape (missing fields, wrong types) is `422 validation_failed`.
#[derive(Debug)]
pub struct Json<T> {
    pub value: T,
    pub raw: web::Bytes,
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = read_body(req, payload);
        Box::pin(async move {
            let raw = read.await?;
            let value = parse_json(if raw.is_empty() { b"{}" } else { &raw })?;
            Ok(Json { value, raw })
        })
    }
}

/// Parses a request body: a JSON object (an array or a scalar in its place is
/// `422`, although serde would read an array into a struct field by field), with no
/// NUL character in any string (Postgres cannot store one in text).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: T = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Validation(format!("invalid request body: {e}")),
        _ => ApiError::Malformed(format!("the request body is not valid JSON: {e}")),
    })?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::Validation("the request body must be a JSON object".into()));
    }
    // A NUL can only arrive escaped; the precise check runs only when the escape is there.
    let escaped_nul = bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"));
    if escaped_nul && serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| has_nul(&v)) {
        return Err(ApiError::Validation("text fields must not contain NUL characters".into()));
    }
    Ok(value)
}

fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The caller, authenticated by a bearer token.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    pub fn user_id(&self) -> UserId {
        UserId(self.0.sub)
    }

    pub fn is(&self, role: Role) -> bool {
        self.0.has(role)
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.is(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(role.as_str()))
        }
    }

    /// The role the caller acts in, for event metadata.
    pub fn acting_role(&self, preferred: Role) -> Role {
        if self.is(preferred) {
            preferred
        } else {
            self.0.roles.first().copied().unwrap_or(Role::Customer)
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = authenticate(req);
        let limits = req.app_data::<web::Data<RateLimits>>().cloned();
        Box::pin(async move {
            let caller = caller?;
            if let Some(limits) = limits {
                limits.check_user(caller.0.sub).await?;
            }
            Ok(caller)
        })
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let keys = req
        .app_data::<web::Data<TokenKeys>>()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("token keys missing from the app")))?;
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated("a bearer token is required"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .ok_or(ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`"))?;
    let claims = keys.verify(token.trim()).map_err(|e| match e {
        TokenError::Expired => ApiError::Unauthenticated("the token has expired"),
        TokenError::Invalid => ApiError::Unauthenticated("the token is not valid"),
    })?;
    req.extensions_mut().insert(claims.sub);
    Ok(Caller(claims))
}

/// Parses a path id, answering `404 not_found` for anything that is not a uuid.
pub fn path_id<T>(raw: &str, parse: impl Fn(&str) -> Option<T>, what: &str) -> Result<T, ApiError> {
    parse(raw).ok_or_else(|| ApiError::NotFound(format!("no such {what}")))
}
