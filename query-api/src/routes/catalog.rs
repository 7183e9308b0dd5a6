//! The catalog (projection `catalog`): categories, products with search, packages.
//!
//! A product search is cached as the ordered list of matching ids, under a key that
//! embeds the catalog version, for five minutes: a catalog change bumps the version
//! and so invalidates every cached search at once, while stock moves (which change no
//! match or rank) do not. Documents are then read from the product cache, so
//! availability is always current. A search with `on_offer` depends on the clock, not
//! only on the catalog, so it is never cached; and every document's `offer` is
//! evaluated at the moment of the read ([`ProductDoc::at`]).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::Role;
use fred::prelude::{Expiration, KeysInterface};
use infra::cache;
use infra::http::error::ApiError;
use infra::http::extract::Caller;
use infra::read_model::{self, Projection};
use infra::views::{self, ProductDoc, PRODUCT_COLUMNS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{id_in_path, with_etag, Page, DEFAULT_LIMIT, MAX_LIMIT};
use crate::fresh::{self, Fresh};
use crate::state::AppState;

const SEARCH_TTL_SECS: i64 = 300;
/// A search with more results than this is not cached (it is answered from Postgres).
const MAX_CACHED_IDS: usize = 250;
/// How many new search entries the cache takes per minute, across instances.
const SEARCH_ADMISSIONS_PER_MINUTE: i64 = 200;
/// How many words of `q` a search uses.
const MAX_SEARCH_TERMS: usize = 16;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Category {
    id: Uuid,
    name: String,
    description: String,
    product_count: i64,
}

/// `GET /v1/categories/{id}`.
pub async fn category(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id_in_path(&path, "category")?;
    fresh::wait_for(&state, &req, &[Projection::Catalog]).await?;
    let client = state.reads.get().await?;
    let row = client
        .query_opt(
            "SELECT c.id, c.name, c.description, \
                    (SELECT count(*) FROM read.products p WHERE p.category_id = c.id AND p.active) \
             FROM read.categories c WHERE c.id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("no such category".into()))?;
    let category =
        Category { id: row.get(0), name: row.get(1), description: row.get(2), product_count: row.get(3) };
    with_etag(&req, &category)
}

pub async fn categories(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    fresh::wait_for(&state, &req, &[Projection::Catalog]).await?;
    let client = state.reads.get().await?;
    let rows = client
        .query(
            "SELECT c.id, c.name, c.description, count(p.id) FILTER (WHERE p.active) \
             FROM read.categories c LEFT JOIN read.products p ON p.category_id = c.id \
             GROUP BY c.id ORDER BY c.name, c.id",
            &[],
        )
        .await?;
    let items: Vec<Category> = rows
        .iter()
        .map(|r| Category { id: r.get(0), name: r.get(1), description: r.get(2), product_count: r.get(3) })
        .collect();
    with_etag(&req, &serde_json::json!({ "items": items }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProductQuery {
    q: Option<String>,
    category_id: Option<String>,
    max_points: Option<i64>,
    in_offer_pool: Option<bool>,
    on_offer: Option<bool>,
    include_inactive: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The filters of a search, validated.
#[derive(Debug, Hash)]
struct Filters {
    q: Option<String>,
    category_id: Option<Uuid>,
    max_points: Option<i64>,
    in_offer_pool: Option<bool>,
    on_offer: Option<bool>,
    /// Delisted products too (admins only).
    include_inactive: bool,
}

impl ProductQuery {
    fn filters(&self) -> Result<Filters, ApiError> {
        let category_id = match self.category_id.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                Uuid::parse_str(c).map_err(|_| ApiError::Validation("category_id must be a uuid".into()))?,
            ),
        };
        if self.max_points.is_some_and(|m| m < 0) {
            return Err(ApiError::Validation("max_points must not be negative".into()));
        }
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 200) {
            return Err(ApiError::Validation("q must be at most 200 characters".into()));
        }
        let q = q.map(search_terms);
        Ok(Filters {
            q,
            category_id,
            max_points: self.max_points,
            in_offer_pool: self.in_offer_pool,
            on_offer: self.on_offer,
            include_inactive: self.include_inactive.unwrap_or(false),
        })
    }
}

/// The words of a search (runs of letters and digits), at most [`MAX_SEARCH_TERMS`],
/// matched all together. Search operators are not honoured: Postgres's own query syntax
/// gave up on a query of 40 dashes (`tsquery stack too small`), and plain words answer
/// any input. No words at all (only punctuation) matches nothing.
fn search_terms(q: &str) -> String {
    let words: Vec<&str> =
        q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(MAX_SEARCH_TERMS).collect();
    words.join(" ")
}

pub async fn products(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Option<Caller>,
    params: web::Query<ProductQuery>,
) -> Result<HttpResponse, ApiError> {
    let filters = params.filters()?;
    if filters.include_inactive {
        let caller = caller.ok_or(ApiError::Unauthenticated("include_inactive needs an admin's token"))?;
        caller.require(Role::Admin)?;
    }
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(ApiError::Validation(format!("limit must be between 1 and {MAX_LIMIT}"))),
    } as usize;
    let offset = match params.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| ApiError::Validation("cursor is not valid".into()))?,
    };
    let fresh = fresh::wait_for(&state, &req, &[Projection::Catalog]).await?;
    let ids = search(&state, fresh, &filters, offset + limit + 1).await?;
    let page: Vec<Uuid> = ids.iter().skip(offset).take(limit).copied().collect();
    let next_cursor = (offset + limit < ids.len()).then(|| (offset + limit).to_string());
    let items = hydrate(&state, fresh, &page).await?;
    with_etag(&req, &Page { items, next_cursor })
}

/// The ids matching `filters`, best match first, at least the first `wanted` of them
/// (all of them when there are fewer): from the search cache when it may be used, else
/// from Postgres. A result that fits the cache whole is cached. No cap: paging reaches
/// the end of any catalog.
async fn search(
    state: &AppState,
    fresh: Fresh,
    filters: &Filters,
    wanted: usize,
) -> Result<Vec<Uuid>, ApiError> {
    if filters.q.as_deref() == Some("") {
        return Ok(Vec::new());
    }
    let redis = cache::fail_fast(&state.redis);
    let key = match fresh.0 {
        // A request that must see a position skips the search cache, and so does one
        // whose answer changes with the clock.
        _ if filters.on_offer.is_some() || filters.include_inactive => None,
        Some(_) => None,
        None => redis.get::<Option<i64>, _>(read_model::CATALOG_VERSION_KEY).await.ok().flatten().map(|v| {
            let digest = Sha256::digest(format!("{filters:?}").as_bytes());
            read_model::search_key(&v.to_string(), &hex::encode(&digest[..16]))
        }),
    };
    if let Some(key) = &key {
        if let Ok(Some(hit)) = redis.get::<Option<String>, _>(key).await {
            if let Ok(ids) = serde_json::from_str::<Vec<Uuid>>(&hit) {
                state.metrics.cache.with_label_values(&["hit"]).inc();
                return Ok(ids);
            }
        }
        state.metrics.cache.with_label_values(&["miss"]).inc();
    }
    let client = state.reads.get().await?;
    let rows = client
        .query(
            "SELECT id FROM read.products p, \
                    LATERAL (SELECT plainto_tsquery('english', COALESCE($1, ''))) q(query) \
             WHERE (p.active OR $7) \
               AND ($1::text IS NULL OR p.search @@ q.query) \
               AND ($2::uuid IS NULL OR p.category_id = $2) \
               AND ($3::int8 IS NULL OR p.point_cost <= $3) \
               AND ($4::bool IS NULL OR p.in_offer_pool = $4) \
               AND ($6::bool IS NULL OR $6 = EXISTS (SELECT 1 FROM read.offers o \
                     WHERE o.product_id = p.id AND o.starts_at <= now() AND o.ends_effective > now() \
                       AND o.point_cost < p.point_cost AND (o.units IS NULL OR o.units_sold < o.units))) \
             ORDER BY CASE WHEN $1::text IS NULL THEN 0 ELSE ts_rank(p.search, q.query) END DESC, p.name, p.id \
             LIMIT $5",
            &[
                &filters.q,
                &filters.category_id,
                &filters.max_points,
                &filters.in_offer_pool,
                &(wanted.max(MAX_CACHED_IDS + 1) as i64),
                &filters.on_offer,
                &filters.include_inactive,
            ],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    if let Some(key) = key.filter(|_| ids.len() <= MAX_CACHED_IDS) {
        if admitted(&redis).await {
            if let Ok(json) = serde_json::to_string(&ids) {
                let _: Result<(), _> =
                    redis.set(key, json, Some(Expiration::EX(SEARCH_TTL_SECS)), None, false).await;
            }
        }
    }
    Ok(ids)
}

/// Whether the search cache may take one more entry this minute. With at most
/// [`SEARCH_ADMISSIONS_PER_MINUTE`] new entries a minute, each living
/// [`SEARCH_TTL_SECS`] and holding at most [`MAX_CACHED_IDS`] ids, the search cache
/// never holds more than about 1,000 entries of 10 KB (10 MB), whatever anonymous
/// clients send. Shared by every instance through Redis itself.
async fn admitted(redis: &impl KeysInterface) -> bool {
    let minute = chrono::Utc::now().timestamp() / 60;
    let key = read_model::search_admission_key(minute);
    match redis.incr::<i64, _>(&key).await {
        Ok(1) => {
            let _: Result<(), _> = redis.expire(&key, 120, None).await;
            true
        }
        Ok(n) => n <= SEARCH_ADMISSIONS_PER_MINUTE,
        Err(_) => false,
    }
}

/// The documents of `ids`, in order: cached ones from Redis, the rest from Postgres.
async fn hydrate(state: &AppState, fresh: Fresh, ids: &[Uuid]) -> Result<Vec<ProductDoc>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut docs: HashMap<Uuid, ProductDoc> = HashMap::new();
    if fresh.0.is_none() {
        let keys: Vec<String> = ids.iter().map(|id| read_model::product_key(*id)).collect();
        if let Ok(values) = cache::fail_fast(&state.redis).mget::<Vec<Option<String>>, _>(keys).await {
            for doc in
                values.into_iter().flatten().filter_map(|v| serde_json::from_str::<ProductDoc>(&v).ok())
            {
                docs.insert(doc.id, doc);
            }
        }
    }
    let missing: Vec<Uuid> = ids.iter().filter(|id| !docs.contains_key(id)).copied().collect();
    let now = chrono::Utc::now();
    if !missing.is_empty() {
        let client = state.reads.get().await?;
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM read.products p WHERE p.id = ANY($1)");
        for row in client.query(&sql, &[&missing]).await? {
            let doc = ProductDoc::from_row(&row);
            docs.insert(doc.id, doc);
        }
    }
    Ok(ids.iter().filter_map(|id| docs.remove(id)).map(|doc| doc.at(now)).collect())
}

pub async fn product(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_in_path(&path, "product")?;
    let fresh = fresh::wait_for(&state, &req, &[Projection::Catalog]).await?;
    let doc =
        match fresh::cached::<ProductDoc>(&state, fresh, Projection::Catalog, &read_model::product_key(id))
            .await
        {
            Some(doc) => doc,
            None => {
                let client = state.reads.get().await?;
                views::load_product(&**client, id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound("no such product".into()))?
            }
        };
    with_etag(&req, &doc.at(chrono::Utc::now()))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Package {
    id: Uuid,
    name: String,
    description: String,
    price: String,
    currency: String,
    points: i64,
    points_valid_days: Option<i32>,
    active: bool,
}

pub async fn packages(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    fresh::wait_for(&state, &req, &[Projection::Catalog]).await?;
    let client = state.reads.get().await?;
    let rows = client
        .query(
            "SELECT id, name, description, price::text, currency, points, points_valid_days, active \
             FROM read.packages ORDER BY created_at, id",
            &[],
        )
        .await?;
    let items: Vec<Package> = rows
        .iter()
        .map(|r| Package {
            id: r.get(0),
            name: r.get(1),
            description: r.get(2),
            price: r.get(3),
            currency: r.get(4),
            points: r.get(5),
            points_valid_days: r.get(6),
            active: r.get(7),
        })
        .collect();
    with_etag(&req, &serde_json::json!({ "items": items }))
}
