//! `ApiError`: every failure a client can see, rendered as `application/problem+json`
//! with a stable `code` (the README's error table). 5xx causes are logged whole and never shown.

use crate::store::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use domain::account::AccountError;
use domain::category::CategoryError;
use domain::experiment::ExperimentError;
use domain::package::PackageError;
use domain::product::ProductError;
use domain::purchase::PurchaseError;
use domain::redemption::RedemptionError;
use tokio_postgres::error::SqlState;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for error bodies.
    pub static REQUEST_ID: String;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("this action needs the {0} role")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    /// A concurrent change: the pipeline retries these before a client sees one.
    #[error("{0}")]
    Conflict(String),
    /// A unique thing (an email) exists already: final, never retried.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InsufficientPoints(String),
    #[error("{0}")]
    OutOfStock(String),
    #[error("{0}")]
    ProductUnavailable(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    OfferSoldOut(String),
    #[error("{0}")]
    OfferLimitReached(String),
    /// The order costs more than the request's `max_points`; the body names the price.
    #[error("the price is now {} points, above max_points", .0.points)]
    PriceChanged(domain::product::Quote),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("{0}")]
    InvalidSignature(&'static str),
    #[error("{0}")]
    ProjectionLagging(String),
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("an unexpected error occurred")]
    Unexpected(#[source] anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed_request",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) | ApiError::AlreadyExists(_) => "conflict",
            ApiError::InsufficientPoints(_) => "insufficient_points",
            ApiError::OutOfStock(_) => "out_of_stock",
            ApiError::ProductUnavailable(_) => "product_unavailable",
            ApiError::InvalidState(_) => "invalid_state",
            ApiError::OfferSoldOut(_) => "offer_sold_out",
            ApiError::OfferLimitReached(_) => "offer_limit_reached",
            ApiError::PriceChanged(_) => "price_changed",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::BodyTimeout => "request_timeout",
            ApiError::InvalidSignature(_) => "invalid_signature",
            ApiError::ProjectionLagging(_) => "projection_lagging",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Unexpected(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::BAD_REQUEST => "Malformed request",
            StatusCode::UNAUTHORIZED => "Unauthenticated",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
            StatusCode::REQUEST_TIMEOUT => "Request timeout",
            StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable request",
            StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            _ => "Internal error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) | ApiError::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::AlreadyExists(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::ProjectionLagging(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?cause_chain(self), code = self.code(), "request failed");
        }
        let request_id = REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default();
        let mut body = serde_json::json!({
            "type": format!("https://tally.dev/problems/{}", self.code().replace('_', "-")),
            "title": self.title(),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
            "request_id": request_id,
        });
        if let ApiError::PriceChanged(quote) = self {
            // The current price, so the client can ask its customer and retry.
            body["points"] = quote.points.into();
            body["point_cost"] = quote.point_cost.into();
            body["offer_id"] = serde_json::json!(quote.offer_id);
        }
        let mut res = HttpResponse::build(status);
        res.extensions_mut().insert(super::metrics::ProblemCode(self.code()));
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unauthenticated(_) => _ = res.insert_header((header::WWW_AUTHENTICATE, "Bearer")),
            ApiError::RateLimited(secs) => _ = res.insert_header((header::RETRY_AFTER, secs.to_string())),
            ApiError::ProjectionLagging(_) => _ = res.insert_header((header::RETRY_AFTER, "1")),
            _ => {}
        }
        res.body(body.to_string())
    }
}

fn cause_chain(e: &ApiError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_retryable() => ApiError::Conflict("the resource changed concurrently; retry".into()),
            // Text Postgres cannot store (a NUL character): the client's input, not a fault.
            StoreError::Database(ref db)
                if db.code().is_some_and(|c| {
                    *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *c == SqlState::UNTRANSLATABLE_CHARACTER
                }) =>
            {
                ApiError::Validation("text must not contain NUL characters".into())
            }
            StoreError::Pool(_) => ApiError::Unavailable(e.into()),
            // No SQLSTATE: the connection broke (a restart, a network fault), not the SQL.
            StoreError::Database(ref db) if db.code().is_none() => ApiError::Unavailable(e.into()),
            // The server is shutting down or refusing connections.
            StoreError::Database(ref db)
                if db.code().is_some_and(|c| {
                    *c == SqlState::ADMIN_SHUTDOWN
                        || *c == SqlState::CRASH_SHUTDOWN
                        || *c == SqlState::CANNOT_CONNECT_NOW
                        || c.code().starts_with("08")
                }) =>
            {
                ApiError::Unavailable(e.into())
            }
            other => ApiError::Unexpected(other.into()),
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Database(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::Unavailable(e.into())
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::NotOpened => ApiError::NotFound("no such account".into()),
            AccountError::InsufficientPoints { .. } => ApiError::InsufficientPoints(e.to_string()),
            AccountError::InvalidAmount | AccountError::ReasonRequired => ApiError::Validation(e.to_string()),
            AccountError::AlreadyOpened | AccountError::UnknownRedemption | AccountError::OwnAdminRole => {
                ApiError::InvalidState(e.to_string())
            }
        }
    }
}

impl From<ProductError> for ApiError {
    fn from(e: ProductError) -> Self {
        match e {
            ProductError::NotFound => ApiError::NotFound("no such product".into()),
            ProductError::Invalid(_) => ApiError::Validation(e.to_string()),
            ProductError::Unavailable => ApiError::ProductUnavailable(e.to_string()),
            ProductError::OutOfStock { .. } => ApiError::OutOfStock(e.to_string()),
            ProductError::OfferSoldOut { .. } => ApiError::OfferSoldOut(e.to_string()),
            ProductError::OfferLimitReached { .. } => ApiError::OfferLimitReached(e.to_string()),
            ProductError::PriceChanged(quote) => ApiError::PriceChanged(quote),
            ProductError::OfferOverlaps => ApiError::Validation(e.to_string()),
            ProductError::UnknownOffer => ApiError::NotFound(e.to_string()),
            ProductError::AlreadyListed
            | ProductError::AlreadyInState(_)
            | ProductError::UnknownReservation
            | ProductError::OfferOver => ApiError::InvalidState(e.to_string()),
        }
    }
}

impl From<CategoryError> for ApiError {
    fn from(e: CategoryError) -> Self {
        match e {
            CategoryError::NotFound => ApiError::NotFound("no such category".into()),
            CategoryError::InvalidName | CategoryError::InvalidDescription => {
                ApiError::Validation(e.to_string())
            }
            CategoryError::AlreadyExists => ApiError::InvalidState(e.to_string()),
        }
    }
}

impl From<PackageError> for ApiError {
    fn from(e: PackageError) -> Self {
        match e {
            PackageError::NotFound => ApiError::NotFound("no such credit package".into()),
            PackageError::Invalid(_) => ApiError::Validation(e.to_string()),
            PackageError::Retired => ApiError::ProductUnavailable(e.to_string()),
            PackageError::AlreadyExists => ApiError::InvalidState(e.to_string()),
        }
    }
}

impl From<PurchaseError> for ApiError {
    fn from(e: PurchaseError) -> Self {
        match e {
            PurchaseError::NotFound => ApiError::NotFound("no such purchase".into()),
            _ => ApiError::InvalidState(e.to_string()),
        }
    }
}

impl From<RedemptionError> for ApiError {
    fn from(e: RedemptionError) -> Self {
        match e {
            RedemptionError::NotFound => ApiError::NotFound("no such redemption".into()),
            RedemptionError::NotOwner => ApiError::Forbidden("owner or admin"),
            _ => ApiError::InvalidState(e.to_string()),
        }
    }
}

impl From<ExperimentError> for ApiError {
    fn from(e: ExperimentError) -> Self {
        match e {
            ExperimentError::NotFound => ApiError::NotFound("no such experiment".into()),
            ExperimentError::Invalid(_) | ExperimentError::KeyTaken => ApiError::Validation(e.to_string()),
            ExperimentError::Stopped | ExperimentError::AlreadyStarted => {
                ApiError::InvalidState(e.to_string())
            }
        }
    }
}

/// Every problem `code` with its status, for the OpenAPI documents: one example of each
/// variant, so the table cannot disagree with [`ApiError::code`] and the status.
pub fn catalogue() -> Vec<(&'static str, u16)> {
    let s = String::new;
    let examples = [
        ApiError::Malformed(s()),
        ApiError::Validation(s()),
        ApiError::Unauthenticated(""),
        ApiError::Forbidden(""),
        ApiError::NotFound(s()),
        ApiError::AlreadyExists(s()),
        ApiError::InsufficientPoints(s()),
        ApiError::OutOfStock(s()),
        ApiError::ProductUnavailable(s()),
        ApiError::InvalidState(s()),
        ApiError::OfferSoldOut(s()),
        ApiError::OfferLimitReached(s()),
        ApiError::IdempotencyKeyReused,
        ApiError::PayloadTooLarge,
        ApiError::BodyTimeout,
        ApiError::InvalidSignature(""),
        ApiError::ProjectionLagging(s()),
        ApiError::RateLimited(1),
        ApiError::Unavailable(anyhow::anyhow!("")),
        ApiError::Unexpected(anyhow::anyhow!("")),
    ];
    let mut codes: Vec<(&'static str, u16)> =
        examples.iter().map(|e| (e.code(), e.status_code().as_u16())).collect();
    // `price_changed` carries a quote; it is a 422 like every decision the model refuses.
    codes.push(("price_changed", 422));
    codes
}
