//! The query API's HTTP surface, one module per area. The table below is the only place
//! routes are registered, and the OpenAPI document is generated from the same lines.

pub mod accounts;
pub mod audit;
pub mod catalog;
pub mod experiments;
pub mod export;
pub mod health;
pub mod offers;
pub mod orders;
pub mod recommendations;
pub mod users;
pub mod webhooks;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use domain::Role;
use infra::http::error::ApiError;
use infra::http::extract::{path_id, Caller};
use infra::http::openapi::{doc, object, Access::*};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

infra::api_routes! {
    get "/healthz" => health::healthz;
        doc("Liveness", Public).reply(200, object(&[("status", "string")]));
    get "/readyz" => health::readyz;
        doc("Readiness: Postgres, Redis and projection lag (503 when not ready)", Public).reply(200, object(&[("status", "string")]));
    get "/metrics" => health::metrics;
        doc("Prometheus metrics", Public).text("text/plain; version=0.0.4");
    get "/v1/me" => users::me;
        doc("One's own profile", SignedIn).reply_type::<users::Profile>(200);
    get "/v1/me/export" => export::export;
        doc("Everything Tally holds about oneself, in one document (GDPR art. 15/20)", SignedIn)
            .reply(200, object(&[("exported_at", "time"), ("profile", "object"), ("balance", "object"), ("ledger", "array"), ("purchases", "array"), ("redemptions", "array"), ("interactions", "array"), ("recommendations", "array")]));
    get "/v1/users" => users::find;
        doc("Find a user by e-mail (exact, case-insensitive)", Admin).query::<users::Lookup>().list_of::<users::Profile>();
    get "/v1/users/{id}" => users::user;
        doc("A user's profile (or that it was erased)", Staff).reply_type::<users::Profile>(200);
    get "/v1/me/balance" => accounts::my_balance;
        doc("One's own balance", SignedIn).reply_type::<accounts::Balance>(200).problems(&["projection_lagging"]);
    get "/v1/accounts/{id}/balance" => accounts::balance;
        doc("An account's balance, with the lots about to expire", Owner).reply_type::<accounts::Balance>(200).problems(&["projection_lagging"]);
    get "/v1/accounts/{id}/ledger" => accounts::ledger;
        doc("An account's points movements, newest first", Owner).query::<PageParams>().page_of::<accounts::LedgerLine>().problems(&["projection_lagging"]);
    get "/v1/accounts/{id}/redemptions" => orders::account_redemptions;
        doc("An account's redemptions, newest first", Owner).query::<PageParams>().page_of::<orders::Redemption>().problems(&["projection_lagging"]);
    get "/v1/accounts/{id}/purchases" => orders::account_purchases;
        doc("An account's purchases, newest first", Owner).query::<PageParams>().page_of::<orders::PurchaseLine>().problems(&["projection_lagging"]);
    get "/v1/redemptions" => orders::queue;
        doc("The fulfilment queue, oldest first", Staff).query::<orders::QueueQuery>().page_of::<orders::Redemption>().problems(&["projection_lagging"]);
    get "/v1/categories" => catalog::categories;
        doc("Every category", Public).list_of::<catalog::Category>().problems(&["projection_lagging"]);
    get "/v1/categories/{id}" => catalog::category;
        doc("One category", Public).reply_type::<catalog::Category>(200).problems(&["projection_lagging"]);
    get "/v1/products" => catalog::products;
        doc("Products: search, filter and page (no cap)", Public).query::<catalog::ProductQuery>().reply_type::<Page<infra::views::ProductDoc>>(200).problems(&["projection_lagging", "forbidden"]);
    get "/v1/products/{id}" => catalog::product;
        doc("One product, its live offer evaluated now", Public).reply_type::<infra::views::ProductDoc>(200).problems(&["projection_lagging"]);
    get "/v1/offers" => offers::offers;
        doc("Golden-hour offers: live, upcoming or ended", Public).query::<offers::OfferQuery>().page_of::<offers::Offer>().problems(&["projection_lagging"]);
    get "/v1/credit-packages" => catalog::packages;
        doc("Credit packages on sale", Public).list_of::<catalog::Package>().problems(&["projection_lagging"]);
    get "/v1/credit-purchases/{id}" => orders::purchase;
        doc("One purchase", Owner).reply_type::<orders::Purchase>(200).problems(&["projection_lagging"]);
    get "/v1/redemptions/{id}" => orders::redemption;
        doc("One redemption", Owner).reply_type::<orders::Redemption>(200).problems(&["projection_lagging"]);
    post "/v1/recommendations" => recommendations::recommend;
        doc("Recommendations (rules, popular, or an LLM with rules as the fallback)", Customer).body::<recommendations::Request>().reply_type::<recommendations::Answer>(200).problems(&["projection_lagging"]);
    get "/v1/experiments/{id}/assignment" => experiments::assignment;
        doc("One's sticky variant in an experiment", Customer).reply(200, object(&[("experiment_id", "uuid"), ("key", "string"), ("variant", "string"), ("running", "boolean")]));
    get "/v1/experiments/{id}/results" => experiments::results;
        doc("Results per variant, with the two-proportion comparison", Staff).reply(200, object(&[("experiment", "object"), ("baseline", "string?"), ("variants", "array")])).problems(&["projection_lagging"]);
    get "/v1/webhook-endpoints" => webhooks::endpoints;
        doc("Webhook endpoints (never their secrets)", Admin).list_of::<webhooks::Endpoint>();
    get "/v1/webhook-endpoints/{id}/deliveries" => webhooks::deliveries;
        doc("An endpoint's deliveries, newest first", Admin).query::<webhooks::DeliveryQuery>().page_of::<webhooks::Delivery>();
    get "/v1/audit/events" => audit::events;
        doc("The event feed in the safe global order", Staff).query::<audit::FeedParams>().reply(200, object(&[("items", "array"), ("next", "string?")]));
    get "/v1/audit/streams/{stream_id}" => audit::stream;
        doc("One stream's events, in version order", Staff).reply(200, object(&[("stream_id", "string"), ("items", "array")]));
    get "/v1/audit/accounts/{id}/balance" => audit::balance_as_of;
        doc("An account's balance as of an instant, folded from the events", Staff).query::<audit::AsOfParams>().reply_type::<infra::history::BalanceAsOf>(200);
}

/// The document `/openapi.json` serves.
pub fn document() -> infra::http::openapi::Document {
    infra::http::openapi::Document::new(
        "Tally query API",
        "Every read of Tally, from the projections. Send `X-Tally-Min-Position` to read your own writes. Errors are application/problem+json with a stable `code`.",
        &operations(),
    )
}

/// `limit` and `cursor` of a paged list.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::Validation(format!("limit must be between 1 and {MAX_LIMIT}"))),
        }
    }

    /// The cursor, decoded by `parse`; a cursor it refuses is `422`.
    pub fn cursor<C>(&self, parse: impl Fn(&str) -> Option<C>) -> Result<Option<C>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| parse(c).ok_or_else(|| ApiError::Validation("cursor is not valid".into())))
            .transpose()
    }
}

/// The cursor of a list ordered by `(time, id)`: `<µs since the epoch>_<uuid>` of the
/// row's columns `at` and `id`.
pub fn time_cursor(row: &tokio_postgres::Row, at: usize, id: usize) -> String {
    format!(
        "{}_{}",
        row.get::<_, chrono::DateTime<chrono::Utc>>(at).timestamp_micros(),
        row.get::<_, Uuid>(id)
    )
}

/// A [`time_cursor`] read back.
pub fn parse_time_cursor(c: &str) -> Option<(chrono::DateTime<chrono::Utc>, Uuid)> {
    let (at, id) = c.split_once('_')?;
    Some((chrono::DateTime::from_timestamp_micros(at.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched rows: the extra row only says there is a
    /// next page, whose cursor is that of the last row shown.
    pub fn from_rows(
        rows: &[tokio_postgres::Row],
        limit: i64,
        item: impl Fn(&tokio_postgres::Row) -> T,
        cursor: impl Fn(&tokio_postgres::Row) -> String,
    ) -> Self {
        let shown = &rows[..rows.len().min(limit as usize)];
        let next_cursor = if rows.len() > shown.len() { shown.last().map(cursor) } else { None };
        Page { items: shown.iter().map(item).collect(), next_cursor }
    }
}

/// An id from the path; one that is not a uuid names no `what` (404).
pub fn id_in_path(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    path_id(raw, |s| Uuid::parse_str(s).ok(), what)
}

/// A user id from the path; an id that is not a uuid names no account.
pub fn user_in_path(raw: &str) -> Result<Uuid, ApiError> {
    id_in_path(raw, "account")
}

/// `404` unless the account exists in the event store (the source of truth, so a
/// lagging projection cannot make a new account look unknown).
pub async fn account_exists(client: &deadpool_postgres::Client, user: Uuid) -> Result<(), ApiError> {
    if infra::store::stream_exists(&***client, &domain::UserId(user).stream()).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound("no such account".into()))
    }
}

/// Customers see only their own data; admins and auditors see everyone's.
pub fn owner_or_staff(caller: &Caller, owner: Uuid) -> Result<(), ApiError> {
    if caller.0.sub == owner || caller.is(Role::Admin) || caller.is(Role::Auditor) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("owner, admin or auditor"))
    }
}

pub fn staff(caller: &Caller) -> Result<(), ApiError> {
    if caller.is(Role::Admin) || caller.is(Role::Auditor) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("auditor or admin"))
    }
}

/// A JSON response with a strong `ETag`; `304 Not Modified` when the client has it.
pub fn with_etag(req: &HttpRequest, body: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Unexpected(e.into()))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::ETAG, etag)).insert_header((header::CACHE_CONTROL, "no-cache"));
    Ok(if matches { res.finish() } else { res.content_type("application/json").body(bytes) })
}
