//! `GET /v1/offers?state=live|upcoming|ended` (anyone): golden-hour offers with their
//! product, from the catalog projection. Whether an offer is live is decided at the
//! moment of the read, against its window, never cached.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use infra::http::error::ApiError;
use infra::read_model::Projection;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{parse_time_cursor, time_cursor, Page, PageParams};
use crate::fresh;
use crate::state::AppState;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct OfferQuery {
    state: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Which offers, and in what order: live ones ending soonest first, upcoming ones
/// starting soonest first, ended ones most recently ended first.
#[derive(Debug, Clone, Copy)]
enum State {
    Live,
    Upcoming,
    Ended,
}

impl State {
    fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s.unwrap_or("live") {
            "live" => Ok(State::Live),
            "upcoming" => Ok(State::Upcoming),
            "ended" => Ok(State::Ended),
            _ => Err(ApiError::Validation("state must be live, upcoming or ended".into())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Upcoming => "upcoming",
            State::Ended => "ended",
        }
    }

    /// The filter, the sort key (also the cursor's), and the direction.
    fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            State::Live => ("o.starts_at <= now() AND o.ends_effective > now()", "o.ends_effective", ">"),
            State::Upcoming => ("o.starts_at > now() AND o.ends_effective > now()", "o.starts_at", ">"),
            State::Ended => ("o.ends_effective <= now()", "o.ends_effective", "<"),
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Offer {
    id: Uuid,
    title: Option<String>,
    state: &'static str,
    point_cost: i64,
    starts_at: DateTime<Utc>,
    /// When it stops (stopped) selling: sooner than planned if it was cancelled.
    ends_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    ends_in_seconds: i64,
    units: Option<i64>,
    units_sold: i64,
    units_left: Option<i64>,
    per_customer_limit: Option<i64>,
    product: ProductRef,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProductRef {
    id: Uuid,
    name: String,
    point_cost: i64,
    available: i64,
    active: bool,
    image_url: Option<String>,
}

pub async fn offers(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: web::Query<OfferQuery>,
) -> Result<HttpResponse, ApiError> {
    let which = State::parse(params.state.as_deref())?;
    let page = PageParams { limit: params.limit, cursor: params.cursor.clone() };
    let limit = page.limit()?;
    let (after_at, after_id) = page.cursor(parse_time_cursor)?.unzip();
    fresh::wait_for(&state, &req, &[Projection::Catalog]).await?;
    let (filter, key, direction) = which.sql();
    let order = if direction == ">" { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT o.id, o.title, o.point_cost, o.starts_at, o.ends_effective, o.cancelled_at, \
                GREATEST(0, ceil(extract(epoch FROM o.ends_effective - now())))::int8, \
                o.units, o.units_sold, o.per_customer_limit, \
                p.id, p.name, p.point_cost, p.available, p.active, p.image_url, {key} \
         FROM read.offers o JOIN read.products p ON p.id = o.product_id \
         WHERE {filter} AND ($1::timestamptz IS NULL OR ({key}, o.id) {direction} ($1, $2::uuid)) \
         ORDER BY {key} {order}, o.id {order} LIMIT $3"
    );
    let client = state.reads.get().await?;
    let rows = client.query(&sql, &[&after_at, &after_id, &(limit + 1)]).await?;
    let item = |r: &Row| offer_from(r, which);
    let cursor = |r: &Row| time_cursor(r, 16, 0);
    Ok(HttpResponse::Ok().json(Page::from_rows(&rows, limit, item, cursor)))
}

fn offer_from(r: &Row, state: State) -> Offer {
    let units: Option<i64> = r.get(7);
    let units_sold: i64 = r.get(8);
    Offer {
        id: r.get(0),
        title: r.get(1),
        state: state.name(),
        point_cost: r.get(2),
        starts_at: r.get(3),
        ends_at: r.get(4),
        cancelled_at: r.get(5),
        ends_in_seconds: r.get(6),
        units,
        units_sold,
        units_left: units.map(|u| u - units_sold),
        per_customer_limit: r.get(9),
        product: ProductRef {
            id: r.get(10),
            name: r.get(11),
            point_cost: r.get(12),
            available: r.get(13),
            active: r.get(14),
            image_url: r.get(15),
        },
    }
}
