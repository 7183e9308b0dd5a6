//! The webhook row of design §9: from a redemption's acknowledgement to its
//! `redemption.placed` arriving at a local receiver, open loop at half the maximum
//! command rate; then the receiver refuses everything for 30 s while orders go on, and
//! every one of them must still arrive once it answers again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::loadgen::open_loop;
use crate::report::Row;
use crate::scenarios::{connect, Bench};

#[derive(Default)]
struct Receiver {
    /// Redemption id → when its `redemption.placed` first arrived.
    arrived: Mutex<HashMap<String, Instant>>,
    down: AtomicBool,
}

async fn receive(body: web::Bytes, receiver: web::Data<Receiver>) -> HttpResponse {
    if receiver.down.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let at = Instant::now();
    let payload: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(id) = payload["data"]["redemption_id"].as_str() {
        receiver.arrived.lock().expect("arrivals").entry(id.to_owned()).or_insert(at);
    }
    HttpResponse::Ok().finish()
}

/// Orders placed at `rate` for the bench's duration: redemption id → acknowledgement.
async fn orders(bench: &Arc<Bench>, rate: f64, duration: Duration) -> (HashMap<String, Instant>, u64) {
    let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (b, a) = (bench.clone(), acks.clone());
    let run = open_loop(rate, duration, move |n| {
        let n = n as usize;
        let req = b.redeem_request(n, &b.products[n % b.products.len()]);
        let acks = a.clone();
        async move {
            let res = req.send().await.ok()?;
            let at = Instant::now();
            let status = res.status().as_u16();
            let body: Value = res.json().await.ok()?;
            if let Some(id) = body["id"].as_str() {
                acks.lock().expect("acks").insert(id.to_owned(), at);
            }
            Some(status)
        }
    })
    .await;
    let acks = std::mem::take(&mut *acks.lock().expect("acks"));
    (acks, run.failures())
}

/// Waits up to `within` for every acknowledged order to arrive; how many never did.
async fn missing_after(receiver: &Receiver, acks: &HashMap<String, Instant>, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let missing = {
            let arrived = receiver.arrived.lock().expect("arrivals");
            acks.keys().filter(|id| !arrived.contains_key(*id)).count()
        };
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn webhook_delivery(bench: &Arc<Bench>, rate: f64) -> anyhow::Result<Row> {
    let receiver = web::Data::new(Receiver::default());
    let data = receiver.clone();
    let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
        .workers(1)
        .bind(("127.0.0.1", 0))?;
    let url = format!("http://127.0.0.1:{}/bench-hook", server.addrs()[0].port());
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    // The dispatcher reads the earlier rows' events too (with no endpoint to send them
    // to): measure from a standing start.
    let db = connect(&bench.db_url).await?;
    dispatcher_caught_up(&db).await?;
    bench.api.webhook_endpoint(&url, &["redemption.placed"]).await?;

    let (acks, failures) = orders(bench, rate, bench.duration).await;
    let missing = missing_after(&receiver, &acks, Duration::from_secs(30)).await;
    let mut delays = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    {
        let arrived = receiver.arrived.lock().expect("arrivals");
        for (id, ack) in &acks {
            if let Some(at) = arrived.get(id) {
                delays.saturating_record(at.saturating_duration_since(*ack).as_micros().max(1) as u64);
            }
        }
    }
    let p = [50.0, 99.0, 99.9].map(|q| delays.value_at_quantile(q / 100.0) as f64 / 1e3);
    let stages = stages(&db).await?;

    // The outage: 30 s of refusals while orders keep coming for part of it.
    receiver.down.store(true, Ordering::Relaxed);
    let outage = Instant::now();
    let (during, outage_failures) =
        orders(bench, rate / 2.0, bench.duration.min(Duration::from_secs(10))).await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;
    receiver.down.store(false, Ordering::Relaxed);
    let lost = missing_after(&receiver, &during, Duration::from_secs(60)).await;
    handle.stop(true).await;

    let met = p[1] <= 100.0 && missing == 0 && lost == 0 && failures + outage_failures == 0;
    Ok(Row::new(
        "Outbound webhooks, event to delivery at a local receiver",
        p[1],
        "ms p99",
        "p99 ≤ 100 ms at half the max rate; a 30 s outage loses nothing",
    )
    .latency(p)
    .met(met)
    .note(format!(
        "at {rate:.0} commands/s: {} delivered, {missing} missing; {stages}; a 30 s outage with {} orders during it: {lost} lost",
        acks.len() - missing,
        during.len()
    )))
}

/// Waits until the dispatcher's checkpoint reaches the store's head (it had the
/// earlier rows' events to read, with no endpoint to send them to).
async fn dispatcher_caught_up(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    for _ in 0..6000 {
        let head = infra::store::safe_head(db).await?;
        let r = db.query_one("SELECT tx_id, position FROM webhooks.cursor", &[]).await?;
        if (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1)) >= (head.tx_id, head.position) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the webhook dispatcher did not catch up within 5 minutes")
}

/// The sender's share, from the delivery rows: queued by the fan-out → delivered
/// (p50 / p99, ms). (The event's `recorded_at` is when its command started, not when it
/// committed, so the fan-out's share is the rest of the end-to-end figure.)
async fn stages(db: &tokio_postgres::Client) -> anyhow::Result<String> {
    let r = db
        .query_one(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at) * 1000)
             FROM webhooks.deliveries WHERE status = 'delivered' AND attempts = 1",
            &[],
        )
        .await?;
    let sent: Vec<f64> = r.get(0);
    Ok(format!("queued → delivered {:.1} / {:.1} ms (p50 / p99)", sent[0], sent[1]))
}
