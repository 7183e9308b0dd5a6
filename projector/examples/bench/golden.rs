//! The golden-hour row (design §9, §11): one offer with 1,000 units and a limit of 2
//! per customer, announced a few seconds ahead, and a crowd of 256 connections that
//! arrives at its start. Every connection works through its own customers in turn: it
//! redeems for one until the limit refuses it, then moves to the next, until the offer
//! sells out. Requests carry `max_points`, so none pays the list price.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::json;

use crate::report::Row;
use crate::scenarios::{connect, Bench};
use crate::setup::Customer;

const UNITS: i64 = 1_000;
const LIMIT: i64 = 2;
const CONNECTIONS: usize = 256;
/// Enough customers to buy every unit, and some left over to be refused.
const CUSTOMERS: usize = 640;
const OFFER_COST: i64 = 5;

/// What one connection saw.
#[derive(Default)]
struct Tally {
    acknowledged: i64,
    server_errors: u64,
    other: u64,
    /// When this connection's last unit was acknowledged.
    last_ack: Option<Instant>,
}

pub async fn golden_hour(bench: &Arc<Bench>) -> anyhow::Result<Row> {
    let product = bench.api.product(10, 10 * UNITS).await?;
    let customers: Vec<Customer> = stream::iter(0..CUSTOMERS)
        .map(|_| bench.api.customer(1_000))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let customers = Arc::new(customers);
    let lead = Duration::from_secs(3);
    let starts_at = Utc::now() + chrono::Duration::from_std(lead)?;
    let offer = bench
        .api
        .offer(json!({"product_id": product, "point_cost": OFFER_COST, "starts_at": starts_at,
                      "ends_at": starts_at + chrono::Duration::hours(1), "units": UNITS,
                      "per_customer_limit": LIMIT, "title": "Golden hour"}))
        .await?;
    let start = Instant::now() + (starts_at - Utc::now()).to_std().unwrap_or_default();
    let crowd: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (http, base, customers, product) =
                (bench.api.http.clone(), bench.api.base.clone(), customers.clone(), product.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                let mut tally = Tally::default();
                let body = json!({"product_id": product, "quantity": 1, "max_points": OFFER_COST});
                for customer in customers.iter().skip(c).step_by(CONNECTIONS) {
                    loop {
                        let req = http.post(format!("{base}/v1/redemptions")).bearer_auth(&customer.token);
                        let Ok(res) = req.json(&body).send().await else {
                            tally.other += 1;
                            break;
                        };
                        let status = res.status().as_u16();
                        let code = res.json::<serde_json::Value>().await.ok().map(|b| b["code"].clone());
                        match (status, code.as_ref().and_then(|c| c.as_str())) {
                            (201, _) => {
                                tally.acknowledged += 1;
                                tally.last_ack = Some(Instant::now());
                            }
                            // Before the start (clock skew): try again.
                            (422, Some("price_changed")) => {
                                tokio::time::sleep(Duration::from_millis(5)).await
                            }
                            (422, Some("offer_limit_reached")) => break,
                            (422, Some("offer_sold_out")) => return tally,
                            (500.., _) => tally.server_errors += 1,
                            _ => {
                                tally.other += 1;
                                break;
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for t in crowd {
        let t = t.await?;
        total.acknowledged += t.acknowledged;
        total.server_errors += t.server_errors;
        total.other += t.other;
        total.last_ack = total.last_ack.max(t.last_ack);
    }
    let (sold, over_limit) = sold_in_store(bench, &product, &offer).await?;
    let seconds = total.last_ack.map_or(f64::INFINITY, |t| t.duration_since(start).as_secs_f64());
    let met = sold == total.acknowledged
        && sold == UNITS
        && over_limit == 0
        && total.server_errors == 0
        && seconds <= 3.0;
    Ok(Row::new("Golden hour: 1,000 units, 256 connections, limit 2", seconds, "s to sell out", "all sold in ≤ 3 s")
        .met(met)
        .note(format!(
            "{sold} sold in the store for {} acknowledged, {over_limit} customers over the limit, {} 5xx, {} other",
            total.acknowledged, total.server_errors, total.other
        )))
}

/// Units sold at the offer according to the store, and how many customers hold more
/// than the limit.
async fn sold_in_store(bench: &Bench, product: &str, offer: &str) -> anyhow::Result<(i64, usize)> {
    let db = connect(&bench.db_url).await?;
    let rows = db
        .query(
            "SELECT data->>'user_id', (data->>'quantity')::int8 FROM es.events \
             WHERE stream_id = $1 AND event_type = 'StockReserved' AND data->>'offer_id' = $2",
            &[&format!("product-{product}"), &offer],
        )
        .await?;
    let mut by_customer: HashMap<String, i64> = HashMap::new();
    for r in &rows {
        *by_customer.entry(r.get(0)).or_default() += r.get::<_, i64>(1);
    }
    let over = by_customer.values().filter(|n| **n > LIMIT).count();
    Ok((by_customer.values().sum(), over))
}
